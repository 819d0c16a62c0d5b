"""Attacks, on REST and on the WebSocket handshake, in one place.

What other files already prove is referenced, not repeated:
- test_auth.py::test_forged_tokens_are_refused: alg none, wrong key, HS512, stripped
  signature, tampered payload, expired, no user_id, garbage, on REST;
  test_refresh_rejects_access_tokens_and_the_reverse, test_token_of_a_deleted_user,
  test_inactive_user_cannot_log_in_or_refresh, test_expired_access_token: REST.
- test_websocket.py::test_handshake_refusals: garbage, expired, wrong-key and refresh tokens,
  and a foreign Origin, on the handshake; test_allowed_origins_setting.
- test_throttle.py: login throttling per account and per address with configured limits
  behind a trusted proxy, X-Forwarded-For ignored from untrusted peers.
- test_permissions.py: the REST permission matrix, outsiders' 404 equal to a missing id's,
  global search and lists.
- test_admin.py::test_deactivation_locks_the_user_out_and_closes_their_sockets (sockets
  closed with 4003 within 3.5 s, tokens refused, handshakes refused) and
  test_deactivation_closes_sockets_on_every_node.

Added here:
1. every forgery (those of test_auth plus RS256/ES256 with a public key as the HMAC secret,
   HS384, alg none/None/NONE/nOnE, alg missing or not a string, kid/jku/jwk/x5u headers
   pointing at attacker keys, a signature lifted from another token, extra segments) on
   REST and on both handshakes with the token in the query, the Authorization header and
   the subprotocol; a token of a deleted user on the handshake;
2. cross-site WebSocket hijacking: Origin variants (null, other ports and schemes, userinfo
   and path tricks, look-alike hosts) with every token carrier, and DNS rebinding (a
   foreign Host with a matching Origin);
3. login brute force with the default limits from real peer addresses (127.0.0.x): the
   attacker's address is throttled, the real user from elsewhere is not locked out;
4. the permission matrix on the WebSocket side: an outsider's events naming another's chat
   or message get the same error as a missing id, and nothing of that chat reaches the
   outsider's sockets, replay or event feed;
5. sockets of a deactivated user and of a logged-out session closed within 1 s;
6. tokens and passwords never in the log, at trace level;
7. a flood of 1,000 connections (idle TCP and half-open handshakes), oversized frames and
   oversized bodies: chatd's RSS stays bounded and a normal user logs in and chats."""
import asyncio
import json
import os
import resource
import socket
import struct
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

import conftest
import figures
from conftest import Client, b64url, jwt_parts, psql, raw_upgrade, sign_jwt, unique_name
from test_admin import CLOSE_DEACTIVATED, make_staff, set_flags
from test_auth import forged_tokens
from test_bad_input import client_frame, raw_ws, read_until_close
from test_websocket import (chat_ws, connect, group_chat, is_, private_chat, raw_handshake, read_raw_frames,
                            refused, rest_send, run, uid, uname, user_ws)

RSA_PUBLIC_PEM = (  # a public key an attacker could fetch and try as an HMAC secret
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo\n"
    "4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u\n"
    "+qKhbwKfBstIs+bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyeh\n"
    "kd3qqGElvW/VDL5AaWTg0nLVkjRo9z+40RQzuVaE8AkAFmxZzow3x+VJYKdjykkJ\n"
    "0iT9wCS0DRTXu269V264Vf/3jvredZiKRkgwlL9xNAwxXFg0x/XFw005UWVRIkdg\n"
    "cKWTjpBP2dPwVZ4WWC+9aGVd+Gyn1o0CLelf4rEjGoXbAAEgAqeGUxrcIlbjXfbc\n"
    "mwIDAQAB\n"
    "-----END PUBLIC KEY-----\n")
EC_PUBLIC_PEM = (
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEVs/o5+uQbTjL3chynL4wXgUg2R9\n"
    "q9UU8I5mEovUf86QZ7kOBIjJwqnzD1omageEHWwHdBO6B+dFabmdT9POxg==\n"
    "-----END PUBLIC KEY-----\n")
ATTACKER_KEY = "attacker-controlled-key-" * 3
INVALID_TOKEN_CODES = {"token_not_valid", "user_not_found", "user_inactive"}


def unsigned(header, payload, signature=""):
    return b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode()) + "." + signature


def claims(user_id, **over):
    now = int(time.time())
    return {"token_type": "access", "exp": now + 300, "iat": now, "jti": uuid.uuid4().hex,
            "user_id": user_id, **over}


def new_forgeries(user_id, other_token):
    """Forgeries test_auth does not try. `other_token`: a genuine token of another user,
    whose signature is lifted."""
    good = claims(user_id)
    hs256 = {"alg": "HS256", "typ": "JWT"}
    genuine = sign_jwt(hs256, good)
    genuine_sig = genuine.split(".")[2]
    out = {
        "rs256_public_key_as_hmac_secret": sign_jwt({"alg": "RS256", "typ": "JWT"}, good, key=RSA_PUBLIC_PEM),
        "es256_public_key_as_hmac_secret": sign_jwt({"alg": "ES256", "typ": "JWT"}, good, key=EC_PUBLIC_PEM),
        "rs256_header_hmac_with_the_secret": sign_jwt({"alg": "RS256", "typ": "JWT"}, good),
        "ps256_header_hmac_with_the_secret": sign_jwt({"alg": "PS256", "typ": "JWT"}, good),
        "hs384_with_the_secret": sign_jwt({"alg": "HS384", "typ": "JWT"}, good, alg="sha384"),
        "hs256_with_an_empty_key": sign_jwt(hs256, good, key=""),
        "alg_missing": sign_jwt({"typ": "JWT"}, good),
        "alg_list": sign_jwt({"alg": ["HS256"], "typ": "JWT"}, good),
        "alg_null": sign_jwt({"alg": None, "typ": "JWT"}, good),
        "header_not_an_object": b64url(b'"HS256"') + "." + genuine.split(".", 1)[1],
        "kid_path_traversal_empty_key": sign_jwt({**hs256, "kid": "../../../../../../dev/null"}, good, key=""),
        "kid_sql_injection": sign_jwt({**hs256, "kid": "x' UNION SELECT 'attacker' --"}, good, key="attacker"),
        "jku_attacker_keys": sign_jwt({**hs256, "jku": "http://127.0.0.1:1/jwks.json", "kid": "k1"}, good,
                                      key=ATTACKER_KEY),
        "x5u_attacker_cert": sign_jwt({**hs256, "x5u": "http://127.0.0.1:1/cert.pem"}, good, key=ATTACKER_KEY),
        "embedded_jwk": sign_jwt({**hs256, "jwk": {"kty": "oct", "k": b64url(ATTACKER_KEY.encode())}}, good,
                                 key=ATTACKER_KEY),
        "signature_of_another_token": genuine.rsplit(".", 1)[0] + "." + other_token.split(".")[2],
        "extra_segment": genuine + "." + genuine_sig,
        "trailing_dot": genuine + ".",
        "user_id_as_string_wrong_key": sign_jwt(hs256, {**good, "user_id": str(user_id)}, key=ATTACKER_KEY),
        "empty": "",
        "dots_only": "..",
    }
    for alg in ("none", "None", "NONE", "nOnE"):
        out[f"alg_{alg}_unsigned"] = unsigned({"alg": alg, "typ": "JWT"}, good)
        out[f"alg_{alg}_with_a_genuine_signature"] = unsigned({"alg": alg, "typ": "JWT"}, good, genuine_sig)
    return out


def rest_status(c, token):
    r = c.request("GET", "/api/users/me/", headers={"Authorization": f"Bearer {token}"})
    return r


# ---- 1. forged tokens ---------------------------------------------------------------------------

def test_forgeries_are_refused_on_rest_and_on_both_handshakes(make_server):
    s = make_server()
    c = Client(s)
    a, b = c.register(), c.register()
    chat = private_chat(c, a, b)
    user_id = uid(a)
    # Controls: tokens made by hand with the server's key work, also with kid/jku headers
    # (ignored, never used to pick a key), so every refusal below is the forgery's doing.
    genuine = sign_jwt({"alg": "HS256", "typ": "JWT"}, claims(user_id))
    with_kid = sign_jwt({"alg": "HS256", "typ": "JWT", "kid": "../../dev/null", "jku": "http://127.0.0.1:1/k"},
                        claims(user_id))
    for token in (genuine, with_kid):
        r = rest_status(c, token)
        assert r.status_code == 200 and r.json()["id"] == user_id, r.text

    new = new_forgeries(user_id, b["access"])
    for name, token in new.items():
        r = rest_status(c, token) if token else c.get("/api/users/me/", headers={"Authorization": "Bearer "})
        assert r.status_code == 401, (name, r.status_code, r.text)
        assert r.json().get("code") in INVALID_TOKEN_CODES | {"bad_authorization_header"}, (name, r.text)

    every = {**{f"auth:{k}": v for k, v in forged_tokens(user_id).items() if k != "garbage"}, **new,
             "refresh_as_access": a["refresh"]}

    async def main():
        for path in ("/ws/", f"/ws/chat/{chat}/"):
            ok = await connect(s, genuine, path)
            await ok.close()
            ok = await connect(s, with_kid, path)
            await ok.close()
            for name, token in every.items():
                if token:
                    assert await refused(s, path, token) == 401, (path, "query", name)
                    assert await refused(s, path, headers={"Authorization": f"Bearer {token}"}) == 401, \
                        (path, "header", name)
                    if "," not in token and " " not in token:
                        assert await refused(s, path, subprotocols=["access_token", token]) == 401, \
                            (path, "subprotocol", name)
                else:
                    assert await refused(s, path, "") == 401, (path, name)

    run(main(), timeout=120)
    print(f"\nforgeries: {len(new)} new on REST; {len(every)} on 2 handshakes x 3 carriers")
    figures.record("Forged tokens", rest=len(new), handshake=len(every) * 2 * 3, accepted=0)


def test_token_of_a_deleted_user_is_refused_on_the_handshake(make_server):
    s = make_server()
    c = Client(s)
    a = c.register()
    s.db.execute("DELETE FROM users WHERE id = ?", uid(a))

    async def main():
        assert await refused(s, "/ws/", a["access"]) == 401
        assert await refused(s, "/ws/", headers={"Authorization": f"Bearer {a['access']}"}) == 401
        assert await refused(s, "/ws/", subprotocols=["access_token", a["access"]]) == 401

    run(main())


# ---- 2. cross-site WebSocket hijacking -----------------------------------------------------------

def foreign_origins(port):
    return ["null", "http://127.0.0.1", f"http://127.0.0.1:{port + 1}", f"http://localhost:{port}",
            f"http://127.0.0.1:{port}@evil.example", f"http://evil.example/127.0.0.1:{port}",
            f"http://evil.example#127.0.0.1:{port}", "file://",
            "chrome-extension://abcdefghijklmnop", f"http://evil.example:{port}", "http://127.0.0.1.evil.example",
            f"http://xn--127-0-0-1-evil.example:{port}"]


def test_cross_site_websocket_hijacking_is_refused(server, client):
    a, b = client.register(), client.register()
    chat = private_chat(client, a, b)
    tok = a["access"]

    async def main():
        n = 0
        for path in ("/ws/", f"/ws/chat/{chat}/"):
            for origin in foreign_origins(server.port):
                for carrier in ("query", "header", "subprotocol"):
                    kw = {"origin": origin}
                    if carrier == "query":
                        kw["token"] = tok
                    elif carrier == "header":
                        kw["headers"] = {"Authorization": f"Bearer {tok}"}
                    else:
                        kw["subprotocols"] = ["access_token", tok]
                    assert await refused(server, path, **kw) == 403, (path, origin, carrier)
                    n += 1
            # The page's own origin is accepted (case-insensitive host).
            ws = await connect(server, tok, path, origin=f"HTTP://127.0.0.1:{server.port}")
            await ws.close()
        return n

    n = run(main(), timeout=120)
    print(f"\ncross-site handshakes refused: {n}")


def raw_handshake_status(server, host, origin, token):
    head = raw_upgrade(server.port, token, f"Host: {host}\r\nOrigin: {origin}\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
    return int(head.split(b" ")[1]) if head.startswith(b"HTTP/1.1 ") else None


@pytest.mark.parametrize("key_line", ["Sec-WebSocket-Key: short\r\n", "Sec-WebSocket-Key: \r\n", "",
                                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==\r\n",
                                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=\r\n"])
def test_a_handshake_without_a_proper_key_is_a_400(server, client, key_line):
    """RFC 6455 4.2.1: the key is 16 bytes in base64; anything else is a 400 with a DRF body."""
    a = client.register()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall((f"GET /ws/?token={a['access']} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                      f"Upgrade: websocket\r\nConnection: Upgrade\r\n{key_line}"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b'"detail"' in answer, answer


def test_dns_rebinding_is_refused_by_the_host_check(server, client):
    """A page of evil.example whose name resolves to the server: its Origin matches the Host
    the browser sends, so only ALLOWED_HOSTS stands in the way."""
    a = client.register()
    port = server.port
    assert raw_handshake_status(server, f"127.0.0.1:{port}", f"http://127.0.0.1:{port}", a["access"]) == 101
    for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}"):
        status = raw_handshake_status(server, host, f"http://{host}", a["access"])
        assert status is not None and 400 <= status < 500, (host, status)


def test_allowed_origins_are_matched_exactly(make_server):
    s = make_server(ALLOWED_ORIGINS="http://app.example")
    c = Client(s)
    a = c.register()

    async def main():
        for origin in ("http://app.example.evil.com", "http://evil.com?http://app.example", "https://app.example",
                       "http://app.example:8080", "http://sub.app.example", "null", "http://app.examplee"):
            assert await refused(s, "/ws/", a["access"], origin=origin) == 403, origin
            assert await refused(s, "/ws/", subprotocols=["access_token", a["access"]], origin=origin) == 403, origin
        ws = await connect(s, a["access"], "/ws/", origin="HTTP://APP.EXAMPLE")
        await ws.close()

    run(main())


# ---- 3. login brute force --------------------------------------------------------------------------

class FromAddress(requests.adapters.HTTPAdapter):
    """Connects from another loopback address: a real peer address, no proxy header."""

    def __init__(self, address, **kw):
        self.address = address
        super().__init__(**kw)

    def init_poolmanager(self, *args, **kw):
        kw["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kw)


def client_from(server, address):
    c = Client(server)
    c.http.mount("http://", FromAddress(address))
    return c


def test_login_brute_force_is_throttled_without_locking_out_the_real_user(make_server):
    s = make_server()  # the default limits: 10 failures per account and address, 100 per address
    attacker, victim_device, other = (client_from(s, f"127.0.0.{i}") for i in (1, 2, 3))
    victim = attacker.register()
    name, password = uname(victim), victim["password"]
    variants = [name, name.upper(), f"  {name}  ", name.lower()]

    def login(c, username, pw):
        return c.post("/api/auth/login/", json={"username": username, "password": pw})

    for i in range(10):  # spread over spellings of the name: one account all the same
        r = login(attacker, variants[i % len(variants)], f"guess-{i}")
        assert r.status_code == 401, (i, r.text)
    r = login(attacker, name, "guess-10")
    assert r.status_code == 429, r.text
    retry = int(r.headers["Retry-After"])
    assert 0 < retry <= 15 * 60, retry
    # No oracle: the right password from the attacker's address is throttled too.
    assert login(attacker, name, password).status_code == 429
    # The real user, from their own address, logs in and is served.
    r = login(victim_device, name, password)
    assert r.status_code == 200, r.text
    assert victim_device.get("/api/users/me/", token=r.json()["access"]).json()["id"] == uid(victim)
    # Their success does not lift the attacker's block.
    assert login(attacker, name, "guess-11").status_code == 429
    # Another address still has its own allowance for the account.
    assert login(other, name, "guess-12").status_code == 401

    # Spraying over many accounts from one address: 100 failures, then that address is
    # throttled for every name; the victim elsewhere is not.
    sprayer = client_from(s, "127.0.0.4")
    for i in range(100):
        r = login(sprayer, unique_name("spray"), "guess-password")
        assert r.status_code == 401, (i, r.text)
    r = login(sprayer, name, password)
    assert r.status_code == 429, r.text
    assert int(r.headers["Retry-After"]) > 0
    assert login(victim_device, name, password).status_code == 200
    figures.record("Login brute force", attempts=10 + 3 + 100 + 1, throttled_after_account=10,
                   throttled_after_address=100, victim_locked_out=0)


# ---- 4. the permission matrix on the WebSocket side -----------------------------------------------

def test_outsider_events_look_like_missing_ids_and_nothing_leaks(make_server):
    # ~130 frames on one socket: past the default burst of 60 (test_frame_size_and_rate_limits).
    server = make_server(WS_EVENTS_PER_SECOND=1000, WS_EVENT_BURST=1000)
    client = Client(server)
    ann, bob, eve = client.register(), client.register(), client.register()
    secret = "sx" + uuid.uuid4().hex[:14]
    target = group_chat(client, ann, bob, name=f"group {secret}")
    own = private_chat(client, eve, bob)  # eve's own chat with bob
    target_msg = rest_send(client, ann, target, f"hello {secret}")["id"]
    own_msg = rest_send(client, eve, own, "eve's message")["id"]
    BOGUS_CHAT, BOGUS_MSG = 987_654_321_987, 987_654_321_988

    def events(chat_id, message_id):
        return [
            {"type": "message", "chat_id": chat_id, "text": "let me in"},
            {"type": "typing", "chat_id": chat_id, "is_typing": True},
            {"type": "read", "chat_id": chat_id, "last_read_message_id": message_id},
            {"type": "edit", "chat_id": chat_id, "message_id": message_id, "text": "mine"},
            {"type": "delete", "chat_id": chat_id, "message_id": message_id},
            {"type": "delete", "chat_id": chat_id, "message_id": message_id, "for_me": True},
            {"type": "pin", "chat_id": chat_id, "message_id": message_id},
            {"type": "unpin", "chat_id": chat_id, "message_id": message_id},
            {"type": "forward", "chat_id": chat_id, "message_id": message_id, "target_chat_id": own},
        ]

    def in_own_chat(message_id):
        # Naming one's own chat and someone else's message (or a missing one).
        return [
            {"type": "edit", "chat_id": own, "message_id": message_id, "text": "mine"},
            {"type": "delete", "chat_id": own, "message_id": message_id},
            {"type": "pin", "chat_id": own, "message_id": message_id},
            {"type": "unpin", "chat_id": own, "message_id": message_id},
            {"type": "forward", "chat_id": own, "message_id": message_id, "target_chat_id": own},
            # A watermark past one's own chat is accepted as "read everything" (no error
            # either way), so it must not matter whose message the id names.
            {"type": "read", "chat_id": own, "last_read_message_id": message_id},
            # Forwarding one's own message into someone else's chat (or a missing one).
            {"type": "forward", "chat_id": own, "message_id": own_msg,
             "target_chat_id": target if message_id == target_msg else BOGUS_CHAT},
        ]

    async def answer(ws, event):
        """The error event the event gets (or the pong of the ping after it, if none)."""
        await ws.send(event)
        await ws.send({"type": "ping"})
        f = await ws.until(lambda f: f["type"] in ("error", "pong"))
        if f["type"] == "error":
            await ws.until(is_("pong"))
        return f

    async def main():
        eve_ws = await user_ws(server, eve)
        compared = 0
        for real, missing in zip(events(target, target_msg) + in_own_chat(target_msg),
                                 events(BOGUS_CHAT, BOGUS_MSG) + in_own_chat(BOGUS_MSG)):
            got_real = await answer(eve_ws, real)
            got_missing = await answer(eve_ws, missing)
            if real["chat_id"] != own or real["type"] != "read":
                assert got_real["type"] == "error", (real, got_real)
            # Byte for byte the answer for an id that does not exist: nothing learnt.
            assert got_real == got_missing, (real, got_real, got_missing)
            compared += 1
        # Meanwhile the chat lives on; none of it reaches eve's socket.
        ann_ws = await chat_ws(server, ann, target)
        await ann_ws.send({"type": "message", "text": f"more {secret}"})
        m = await ann_ws.until(is_("message"))
        await ann_ws.send({"type": "typing", "is_typing": True})
        await ann_ws.send({"type": "edit", "message_id": m["message_id"], "text": f"edited {secret}"})
        await ann_ws.send({"type": "pin", "message_id": m["message_id"]})
        await ann_ws.until(is_("pin", message_id=m["message_id"]))
        r = client.post(f"/api/chats/{target}/read/", token=bob["access"], json={"last_read_message_id": m["message_id"]})
        assert r.status_code == 200, r.text
        await eve_ws.drain(1.0)
        await eve_ws.ping()
        assert secret not in json.dumps(eve_ws.seen), eve_ws.seen
        assert all(f.get("chat_id") != target for f in eve_ws.seen), eve_ws.seen
        # The replay from the start of time and the event feed show none of it either.
        replay = await connect(server, eve["access"], "/ws/", since=0)
        await replay.until(is_("synced"))
        assert secret not in json.dumps(replay.seen) and all(f.get("chat_id") != target for f in replay.seen), \
            replay.seen
        feed = client.get("/api/events/?since=0&limit=500", token=eve["access"]).json()
        assert secret not in json.dumps(feed) and all(e.get("chat_id") != target for e in feed["results"]), feed
        # Neither the chat list nor the (global) search.
        r = client.get("/api/chats/", token=eve["access"])
        assert secret not in r.text and target not in [ch["id"] for ch in r.json()], r.text
        r = client.get(f"/api/messages/search/?q={secret}", token=eve["access"])
        assert r.status_code == 200 and r.json()["results"] == [], r.text
        # And the chat is untouched by eve's attempts.
        hist = client.get(f"/api/messages/?chat={target}", token=ann["access"]).json()["results"]
        texts = {x["id"]: x["text"] for x in hist}
        assert texts[target_msg] == f"hello {secret}" and "let me in" not in texts.values()
        for ws in (eve_ws, ann_ws, replay):
            await ws.close()
        return compared

    compared = run(main())
    print(f"\nWebSocket events compared with missing ids: {compared}")
    figures.record("WebSocket permission matrix", events=compared * 2, leaks=0)


# ---- 5. sockets of a deactivated user and of a revoked session -----------------------------------

def test_sockets_of_a_deactivated_user_close_within_one_second(server, client):
    staff = make_staff(server, client)
    bob, carol = client.register(), client.register()
    second = client.login(uname(bob), bob["password"])
    chat = private_chat(client, bob, carol)

    async def main():
        sockets = [
            await user_ws(server, bob),
            await connect(server, path=f"/ws/chat/{chat}/", headers={"Authorization": f"Bearer {bob['access']}"}),
            await connect(server, path="/ws/", subprotocols=["access_token", second["access"]]),
            await chat_ws(server, {**bob, "access": second["access"]}, chat),
        ]
        carol_ws = await user_ws(server, carol)
        started = time.monotonic()

        async def closed_at(ws):
            code = await ws.closed(timeout=3)
            return code, time.monotonic() - started

        waits = [asyncio.create_task(closed_at(ws)) for ws in sockets]
        await asyncio.to_thread(set_flags, client, staff, uid(bob), is_active=False)
        results = await asyncio.gather(*waits)
        for code, elapsed in results:
            assert code == CLOSE_DEACTIVATED, results
            assert elapsed < 1.0, results
        await carol_ws.ping()
        await carol_ws.close()
        return max(e for _, e in results)

    slowest = run(main())
    print(f"\nslowest close after deactivation: {slowest * 1000:.0f} ms")
    figures.record("Deactivated user's sockets", sockets=4, slowest_close_ms=round(slowest * 1000))


async def still_served(client, sender, chat, sockets, text):
    """The sockets that should stay open answer a ping and receive a new message of the
    chat; then they are closed."""
    for ws in sockets:
        await ws.ping()
    m = await asyncio.to_thread(rest_send, client, sender, chat, text)
    for ws in sockets:
        await ws.until(is_("message", message_id=m["id"]))
        await ws.close()


def test_sockets_of_a_logged_out_session_close_within_one_second(server, client):
    """Logout revokes one session (its refresh token, API.md). The sockets opened with that
    session's access tokens end with it, within 1 s, with 4003 as for a deactivated
    account; the user's other session keeps its sockets."""
    ann, bob = client.register(), client.register()
    other = client.login(uname(ann), ann["password"])  # a second device
    chat = private_chat(client, ann, bob)
    # The first session's access token, refreshed once: it belongs to the session too.
    r = client.post("/api/auth/refresh/", json={"refresh": ann["refresh"]})
    assert r.status_code == 200, r.text
    refreshed = r.json()["access"]

    async def main():
        ending = [await user_ws(server, ann), await chat_ws(server, ann, chat),
                  await user_ws(server, {**ann, "access": refreshed})]
        staying = [await user_ws(server, {**ann, "access": other["access"]}),
                   await chat_ws(server, {**ann, "access": other["access"]}, chat)]
        started = time.monotonic()

        async def closed_at(ws):
            try:
                code = await ws.closed(timeout=3)
            except AssertionError:
                return None, None
            return code, time.monotonic() - started

        waits = [asyncio.create_task(closed_at(ws)) for ws in ending]
        r = await asyncio.to_thread(client.post, "/api/auth/logout/", json={"refresh": ann["refresh"]})
        assert r.status_code == 205, r.text
        results = await asyncio.gather(*waits)
        assert all(code is not None for code, _ in results), \
            f"sockets of the logged-out session still open 3 s after logout: {results}"
        for code, elapsed in results:
            assert code == CLOSE_DEACTIVATED and elapsed < 1.0, results
        # The session's access tokens do not open new sockets either.
        for token in (ann["access"], refreshed):
            assert await refused(server, "/ws/", token) == 401
        # The other device is unaffected.
        await still_served(client, bob, chat, staying, "still there?")

    run(main())


def handshake_answer(server, token):
    """What a user-socket handshake gets back: the head of a 101, or a whole refusal."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall((f"GET /ws/?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        answer = b""
        while not (answer.startswith(b"HTTP/1.1 101") and b"\r\n\r\n" in answer):
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
        return answer


def test_a_logout_during_the_handshake_refuses_the_socket(make_server):
    """The gate admits a token; the handshake then reads the user's chats before this node
    listens for the user's "close the sockets" messages. A logout in between publishes its
    message to no one here, so once it listens the handshake looks at the session again
    and answers 401, as a new handshake with that token would. PostgreSQL only: a lock on
    chat_members holds the handshake in that window there."""
    if conftest.BACKEND != "postgres":
        pytest.skip("holds the handshake's read with a PostgreSQL table lock")
    s = make_server()
    c = Client(s)
    ann = c.register()
    device = c.login(uname(ann), ann["password"])
    info = conftest._conninfo()
    holder = subprocess.Popen(
        ["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h", info["host"], "-p", str(info["port"]),
         "-U", info["user"], "-d", s.db.name],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, PGPASSWORD=info["password"], PGCONNECT_TIMEOUT="10"))
    try:
        holder.stdin.write("BEGIN;\nLOCK TABLE chat_members IN ACCESS EXCLUSIVE MODE;\nSELECT 'locked';\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "locked"
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(handshake_answer, s, device["access"])
            # chatd's read of the chats waits for the lock: the gate has admitted the token.
            waiting = "0"
            deadline = time.monotonic() + 15
            while waiting == "0" and time.monotonic() < deadline:
                time.sleep(0.05)
                waiting = psql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                               "AND wait_event_type = 'Lock' AND query ILIKE '%chat_members%' "
                               "AND pid <> pg_backend_pid()", s.db.name)[0][0]
            assert waiting != "0", "the handshake never reached its read of the chats"
            r = c.post("/api/auth/logout/", json={"refresh": device["refresh"]})
            assert r.status_code == 205, r.text
            holder.stdin.write("COMMIT;\n")
            holder.stdin.close()
            refusal = answer.result(timeout=30)
        assert refusal.startswith(b"HTTP/1.1 401"), refusal[:300]
        assert b'"code":"token_not_valid"' in refusal.replace(b" ", b""), refusal
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait(timeout=10)
    # The user's first session goes on.
    assert handshake_answer(s, ann["access"]).startswith(b"HTTP/1.1 101")


def test_a_password_change_closes_the_other_sessions_sockets(server, client):
    """A stolen session must not outlive the password change meant to end it: the other
    sessions' sockets close with 4003 and their tokens open no new ones; the session that
    changed the password keeps its sockets."""
    ann, bob = client.register(), client.register()
    thief = client.login(uname(ann), ann["password"])
    chat = private_chat(client, ann, bob)

    async def main():
        ending = [await user_ws(server, {**ann, "access": thief["access"]}),
                  await chat_ws(server, {**ann, "access": thief["access"]}, chat)]
        staying = [await user_ws(server, ann), await chat_ws(server, ann, chat)]
        waits = [asyncio.create_task(ws.closed(timeout=3)) for ws in ending]
        r = await asyncio.to_thread(client.patch, "/api/users/me/", token=ann["access"],
                                    json={"password": "changed-after-theft-7",
                                          "current_password": ann["password"]})
        assert r.status_code == 200, r.text
        assert await asyncio.gather(*waits) == [CLOSE_DEACTIVATED, CLOSE_DEACTIVATED]
        assert await refused(server, "/ws/", thief["access"]) == 401
        await still_served(client, bob, chat, staying, "still yours")

    run(main())


def test_logins_racing_a_password_change_get_no_session_that_outlives_it(make_server):
    """Logins with the old password while it is changed: a login that checked it just
    before the change may still be answered after it, and must not get a session the
    change's end of the other sessions missed. Every session such a login got is refused
    afterwards (refresh and access token), however the race fell."""
    server = make_server(LOGIN_FAILURES_PER_USER=100000, LOGIN_FAILURES_PER_ADDRESS=100000,
                         PASSWORD_HASH_MEMORY_KIB=8, PASSWORD_HASH_OPS=1)
    client = Client(server)
    got, logins = [], 0
    for k in range(25):
        ann = client.register()
        old, stop = ann["password"], [False]

        def login(_):
            s = Client(server)
            won = []
            while not stop[0] and len(won) < 200:
                r = s.post("/api/auth/login/", json={"username": uname(ann), "password": old})
                if r.status_code != 200:
                    break
                won.append(r.json())
            return won
        with ThreadPoolExecutor(4) as pool:
            tries = [pool.submit(login, i) for i in range(4)]
            time.sleep(0.03)
            r = client.patch("/api/users/me/", token=ann["access"],
                             json={"password": f"changed-{k}-{uuid.uuid4().hex}", "current_password": old})
            assert r.status_code == 200, r.text
            stop[0] = True
            won = [pair for t in tries for pair in t.result()]
        logins += len(won)
        got += won
    assert logins > 0  # the race was run
    alive = still_working(client, got)
    assert not alive, f"{len(alive)} of {logins} sessions outlived the change: {alive[:5]}"


def still_working(client, pairs):
    """(refresh status, access status) of each session whose refresh or access token still
    works."""
    alive = []
    for pair in pairs:
        r = client.post("/api/auth/refresh/", json={"refresh": pair["refresh"]})
        me = client.get("/api/users/me/", token=pair["access"])
        if r.status_code != 401 or me.status_code != 401:
            alive.append((r.status_code, me.status_code))
    return alive

def test_refreshes_racing_a_password_change_keep_no_session_alive(make_server):
    """With rotation on, other sessions keep refreshing (each refresh revokes the token it
    used and records a new one) while the password is changed: the token a rotation made
    as the change ended the sessions must end with them. Afterwards every session's newest
    refresh token is refused, and its newest access token too."""
    server = make_server(ROTATE_REFRESH_TOKENS=1, PASSWORD_HASH_MEMORY_KIB=8, PASSWORD_HASH_OPS=1)
    client = Client(server)
    alive, sessions = [], 0
    for k in range(25):
        ann = client.register()
        others = [client.login(uname(ann), ann["password"]) for _ in range(4)]
        stop = [False]

        def keep_refreshing(pair):
            s = Client(server)
            while not stop[0]:
                r = s.post("/api/auth/refresh/", json={"refresh": pair["refresh"]})
                if r.status_code != 200:
                    break
                pair = {**pair, **r.json()}
            return pair
        with ThreadPoolExecutor(4) as pool:
            chains = [pool.submit(keep_refreshing, pair) for pair in others]
            time.sleep(0.03)
            r = client.patch("/api/users/me/", token=ann["access"],
                             json={"password": f"changed-{k}-{uuid.uuid4().hex}",
                                   "current_password": ann["password"]})
            assert r.status_code == 200, r.text
            time.sleep(0.05)
            stop[0] = True
            newest = [c.result() for c in chains]
        sessions += len(newest)
        alive += [(k, *statuses) for statuses in still_working(client, newest)]
    assert not alive, f"{len(alive)} of {sessions} sessions outlived the change: {alive[:5]}"

# ---- 6. no secrets in the log ---------------------------------------------------------------------

def test_tokens_and_passwords_never_reach_the_log(make_server):
    s = make_server(LOG_LEVEL="trace", MAX_BODY_BYTES=4096)
    c = Client(s)
    password, wrong, new_password = "pw-" + uuid.uuid4().hex, "wrong-" + uuid.uuid4().hex, "np-" + uuid.uuid4().hex
    a = c.register(password=password)
    b = c.register()
    chat = private_chat(c, a, b)
    login = c.login(uname(a), password)
    assert c.post("/api/auth/login/", json={"username": uname(a), "password": wrong}).status_code == 401
    assert c.post("/api/auth/login/", json={"username": "nobody-" + wrong[:8], "password": wrong}).status_code == 401
    refreshed = c.post("/api/auth/refresh/", json={"refresh": login["refresh"]}).json()["access"]
    header, payload = jwt_parts(a["access"])
    expired = sign_jwt(header, {**payload, "exp": int(time.time()) - 60})
    forged = sign_jwt(header, payload, key="not-the-key-" * 6)
    tokens = [a["access"], a["refresh"], login["access"], login["refresh"], refreshed, b["access"], expired, forged]

    for tok in tokens:
        # REST: the header, and (wrongly, but clients do it) the query string.
        c.get("/api/users/me/", token=tok)
        r = c.get(f"/api/users/me/?token={tok}")
        assert r.status_code == 401, r.text  # a query token authenticates nothing on REST
        c.get(f"/api/messages/?chat={chat}&access_token={tok}", token=tok)
        c.get(f"/api/nope/?token={tok}", headers={"Authorization": f"Bearer {tok}"})
        c.post("/api/messages/", token=tok, data=b'{"chat": ' + tok.encode() + b"}",
               headers={"Content-Type": "application/json"})
        r = c.post("/api/messages/", token=tok, json={"chat": chat, "text": "x", "padding": tok * 200})
        assert r.status_code == 413, r.text
    c.post("/api/auth/refresh/", json={"refresh": login["refresh"] + "x"})

    async def main():
        for tok in (a["access"], login["access"], refreshed):
            ws = await user_ws(s, {**a, "access": tok})
            await ws.close()
            ws = await chat_ws(s, {**a, "access": tok}, chat)
            await ws.close()
            ws = await connect(s, path="/ws/", subprotocols=["access_token", tok])
            await ws.close()
            ws = await connect(s, path="/ws/", headers={"Authorization": f"Bearer {tok}"})
            await ws.close()
            assert await refused(s, "/ws/", tok, since="bad") == 400
            assert await refused(s, "/ws/chat/0/", tok) == 404
            assert await refused(s, "/ws/", tok, origin="http://evil.example") == 403
        for tok in (expired, forged, a["refresh"]):
            assert await refused(s, "/ws/", tok) == 401
            assert await refused(s, "/ws/", subprotocols=["access_token", tok]) == 401

    run(main())
    # Last, as they end sessions whose tokens the sockets above used.
    r = c.patch("/api/users/me/", token=a["access"], json={"password": new_password, "current_password": password})
    assert r.status_code == 200, r.text
    c.patch("/api/users/me/", token=a["access"], json={"email": "x@example.com", "current_password": wrong})
    assert c.post("/api/auth/logout/", json={"refresh": a["refresh"]}).status_code in (205, 401)
    s.stop()
    log = s.read_log()
    # The log is there and detailed: the requests above are in it.
    assert "/api/users/me/" in log and "/api/nope/" in log and " 101 " in log and " 401 " in log, log[-2000:]
    leaks = []
    for tok in tokens:
        for part in (tok, tok.split(".")[2]):
            if part and part in log:
                leaks.append(part)
    for secret in (password, wrong, new_password):
        if secret in log:
            leaks.append(secret)
    assert not leaks, [log[max(0, log.find(x) - 200):log.find(x) + 100] for x in leaks[:3]]
    figures.record("Secrets in the log", tokens_checked=len(tokens), passwords_checked=3, log_lines=log.count("\n"),
                   leaks=0)


# ---- 7. floods -----------------------------------------------------------------------------------

def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_connection_and_oversized_frame_flood_leaves_memory_bounded_and_users_served(make_server):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4096
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below {want}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # chatd inherits it
    s = make_server()
    pid = s.proc.pid
    c = Client(s)
    ann, bob = c.register(), c.register()
    chat = private_chat(c, ann, bob)
    flooders = [c.register() for _ in range(8)]
    bound_mb = 100
    n_idle, n_half = 500, 500

    async def exchange(label):
        """bob logs in afresh and receives ann's message on his user socket."""
        t0 = time.monotonic()
        tokens = await asyncio.to_thread(Client(s).login, uname(bob), bob["password"])
        bob_ws = await user_ws(s, {**bob, "access": tokens["access"]})
        ann_ws = await chat_ws(s, ann, chat)
        text = f"{label} {uuid.uuid4().hex[:8]}"
        await ann_ws.send({"type": "message", "text": text})
        f = await bob_ws.until(is_("message", text=text), timeout=10)
        assert f["chat_id"] == chat
        elapsed = time.monotonic() - t0
        await bob_ws.close()
        await ann_ws.close()
        return elapsed

    async def main():
        await exchange("warm-up")
        await asyncio.sleep(0.5)
        baseline = rss_kib(pid)
        peak = baseline
        peak_fds = 0
        held = []

        def sample():
            nonlocal peak, peak_fds
            peak = max(peak, rss_kib(pid))
            peak_fds = max(peak_fds, open_fds(pid))

        def open_flood():
            for i in range(n_idle + n_half):
                sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
                if i >= n_idle:  # a handshake that never ends
                    sock.sendall((f"GET /ws/?token={ann['access']} HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\n"
                                  "Upgrade: websocket\r\nConnection: Upgrade\r\n").encode())
                held.append(sock)
                if i % 100 == 99:
                    sample()

        await asyncio.to_thread(open_flood)
        sample()

        # Oversized frames: announced far past the limit, and sent whole (1 MiB each).
        async def oversized(user, whole):
            reader, writer = await raw_ws(s, "/ws/", user["access"])
            try:
                if whole:
                    writer.write(client_frame(1, b'{"type":"message","text":"' + b"x" * (1 << 20) + b'"}'))
                else:
                    writer.write(bytes([0x81, 0x80 | 127]) + struct.pack(">Q", 1 << 62) + os.urandom(4)
                                 + b"x" * 65536)
                try:
                    await asyncio.wait_for(writer.drain(), 10)
                except (ConnectionError, asyncio.TimeoutError):
                    pass
                _, code, eof = await read_until_close(reader, timeout=10)
                return code if code is not None else ("eof" if eof else "open")
            finally:
                writer.close()

        frame_jobs = [oversized(u, whole=(k % 2 == 0)) for u in flooders for k in range(12)]
        # Oversized bodies: a declared gigabyte, 64 KiB of it sent.
        def oversized_body():
            try:
                with socket.create_connection(("127.0.0.1", s.port), timeout=10) as sock:
                    sock.sendall((f"POST /api/messages/ HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\n"
                                  f"Authorization: Bearer {ann['access']}\r\nContent-Type: application/json\r\n"
                                  "Content-Length: 1073741824\r\n\r\n").encode())
                    try:
                        sock.sendall(b"x" * 65536)
                    except OSError:
                        pass
                    head = sock.recv(64)
                    return int(head.split(b" ")[1]) if head.startswith(b"HTTP/1.1 ") else head
            except OSError as e:
                return repr(e)

        body_jobs = [asyncio.to_thread(oversized_body) for _ in range(50)]
        during = asyncio.create_task(exchange("during the flood"))
        codes = await asyncio.gather(*frame_jobs)
        statuses = await asyncio.gather(*body_jobs)
        sample()
        latency = await during
        sample()
        # Still held: the flood is really on while the user is served.
        still = 0
        for sock in held:
            sock.setblocking(False)
            try:
                still += sock.recv(1, socket.MSG_PEEK) != b""
            except BlockingIOError:
                still += 1
            except OSError:
                pass
        sample()
        for sock in held:
            sock.close()
        await asyncio.sleep(1.5)
        after = rss_kib(pid)
        again = await exchange("after the flood")
        return baseline, peak, after, peak_fds, latency, again, codes, statuses, still

    baseline, peak, after, peak_fds, latency, again, codes, statuses, still = run(main(), timeout=240)
    growth_mb = (peak - baseline) / 1024
    print(f"\nflood: {n_idle} idle TCP + {n_half} half-open handshakes (held {still}, chatd fds peak {peak_fds}), "
          f"{len(codes)} oversized frames -> closes {sorted(set(map(str, codes)))}, "
          f"{len(statuses)} oversized bodies -> {sorted(set(map(str, statuses)))}")
    print(f"chatd RSS: baseline {baseline / 1024:.1f} MB, peak {peak / 1024:.1f} MB (+{growth_mb:.1f} MB, "
          f"bound {bound_mb} MB), after {after / 1024:.1f} MB; a login and a message took "
          f"{latency * 1000:.0f} ms during the flood, {again * 1000:.0f} ms after")
    figures.record("Connection flood", connections=n_idle + n_half, oversized_frames=len(codes),
                   oversized_bodies=len(statuses), rss_baseline_mb=round(baseline / 1024, 1),
                   rss_peak_mb=round(peak / 1024, 1), rss_growth_mb=round(growth_mb, 1),
                   exchange_during_ms=round(latency * 1000))
    assert s.proc.poll() is None, s.read_log()[-3000:]
    assert peak_fds >= n_idle + n_half, f"the flood did not reach chatd: {peak_fds} descriptors at most"
    assert still >= 0.95 * (n_idle + n_half), f"only {still} flood connections were still open"
    assert all(code == 1009 for code in codes), codes
    assert all(st == 413 for st in statuses), statuses
    assert growth_mb < bound_mb, f"RSS grew {growth_mb:.1f} MB"
    assert latency < 5, latency
    assert requests.get(s.url + "/healthz", timeout=5).status_code == 200


def test_a_ping_flood_from_a_client_that_never_reads_costs_one_pong(make_server):
    """A client sends WebSocket pings as fast as it can and reads nothing back. The server
    keeps one pong waiting, for the newest ping (RFC 6455 5.5.3), instead of one per ping:
    its memory stays flat, and the socket still works once the client reads."""
    s = make_server()
    pid = s.proc.pid
    ann = Client(s).register()
    n = 300_000  # 125-byte payloads: about 38 MB of pongs if each were kept
    payloads = [f"{k:0125d}".encode() for k in range(n)]
    mask = b"\x00\x00\x00\x00"  # a zero mask leaves the payload as it is
    flood = b"".join(bytes([0x89, 0x80 | 125]) + mask + p for p in payloads)

    sock = raw_handshake(s, ann["access"])  # a 4 KiB receive buffer, set before connecting
    sock.settimeout(60)
    try:
        time.sleep(0.3)
        baseline = rss_kib(pid)
        sock.sendall(flood)  # the server reads it all: it never stops reading for pings
        time.sleep(1.0)
        peak = rss_kib(pid)
        assert s.proc.poll() is None, s.read_log()[-3000:]

        # Now the client reads: far fewer pongs than pings, the last for the last ping.
        sock.sendall(client_frame(1, b'{"type":"ping"}'))
        data, frames = b"", []
        deadline = time.time() + 30
        while not any(op == 1 for op, _ in frames) and time.time() < deadline:
            chunk = sock.recv(65536)
            assert chunk, "connection closed"
            data += chunk
            frames = read_raw_frames(data)
        pongs = [p for op, p in frames if op == 10]
        texts = [json.loads(p) for op, p in frames if op == 1]
    finally:
        sock.close()
    growth_mb = (peak - baseline) / 1024
    print(f"\nping flood: {n} pings, {len(pongs)} pongs back, chatd RSS +{growth_mb:.1f} MB")
    assert texts == [{"type": "pong"}], texts
    assert pongs and pongs[-1] == payloads[-1], pongs[-1:]
    assert len(pongs) < n // 10, len(pongs)  # each pong kept would have come back
    # ASan keeps freed memory in quarantine, so RSS says nothing about a sanitizer build.
    with open(f"/proc/{pid}/maps") as f:
        sanitized = "libasan" in f.read()
    assert sanitized or growth_mb < 10, f"RSS grew {growth_mb:.1f} MB"


def test_failed_logins_with_huge_usernames_cost_bounded_memory(make_server):
    """Each failed login keeps a throttle key for its window. A username can be as long as
    a request body; keys now keep only its start (no account has a longer name), so 60
    failures with distinct 1 MB names cost kilobytes, not 60 MB."""
    s = make_server(MAX_BODY_BYTES=2 << 20)
    pid = s.proc.pid
    c = Client(s)
    c.post("/api/auth/login/", json={"username": "warm-up", "password": "x"})
    time.sleep(0.3)
    baseline = rss_kib(pid)
    statuses = set()
    for k in range(60):
        name = f"{k:04d}" + "n" * (1 << 20)
        r = c.post("/api/auth/login/", json={"username": name, "password": "wrong-password"})
        statuses.add(r.status_code)
    time.sleep(0.5)
    growth_mb = (rss_kib(pid) - baseline) / 1024
    print(f"\n60 failed logins with 1 MB usernames: chatd RSS +{growth_mb:.1f} MB")
    assert statuses <= {401, 429} and 401 in statuses, statuses
    with open(f"/proc/{pid}/maps") as f:
        sanitized = "libasan" in f.read()
    assert sanitized or growth_mb < 25, f"RSS grew {growth_mb:.1f} MB"
    # The real user is not locked out by any of it.
    ann = c.register()
    r = c.post("/api/auth/login/", json={"username": ann["user"]["username"], "password": ann["password"]})
    assert r.status_code == 200, r.text
