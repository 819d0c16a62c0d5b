#!/usr/bin/env python3
"""Writes the seed corpus of each fuzz target (fuzz/corpus/<target>/): real requests,
WebSocket frames, tokens, search queries and .env files. The files are kept in the
repository; run this again only to change them. The ids match fuzz_world.hpp's users,
chats and messages; "<alice>", "<bob>" and "<carol>" stand for their access tokens."""

import base64
import hashlib
import hmac
import json
import os
import shutil
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
# The key of jwt_decode.cpp (and fuzz_world.cpp): the seed tokens are signed with it.
KEY = b"fuzz-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ"


def write(target, name, data):
    folder = os.path.join(ROOT, target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def request(method, target, body=None, token=None, headers=(), content_type="application/json"):
    lines = [f"{method} {target} HTTP/1.1", "Host: localhost"]
    if token:
        lines.append(f"Authorization: Bearer <{token}>")
    lines.extend(headers)
    payload = b""
    if body is not None:
        payload = (json.dumps(body) if not isinstance(body, str) else body).encode()
        lines.append(f"Content-Type: {content_type}")
        lines.append(f"Content-Length: {len(payload)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


def http_seeds():
    t = "http_request"
    write(t, "healthz", request("GET", "/healthz"))
    write(t, "readyz_by_address", b"GET /readyz HTTP/1.1\r\nHost: 10.0.0.7:8000\r\n\r\n")
    write(t, "bad_host", b"GET /api/chats/ HTTP/1.1\r\nHost: evil.test\r\n\r\n")
    # A leading '*': served as with ALLOWED_HOSTS=* (see http_request.cpp).
    write(t, "any_host_page", b"*GET /api/users/?limit=1&offset=1 HTTP/1.1\r\n"
                              b"Host: chat.example.com:8443\r\nAuthorization: Bearer <alice>\r\n\r\n")
    write(t, "register", request("POST", "/api/auth/register/",
                                 {"username": "dave", "email": "dave@example.com",
                                  "password": "another-long-passphrase"}))
    write(t, "register_form", request(
        "POST", "/api/auth/register/",
        "username=erin&email=erin%40example.com&password=s%C3%A9cret-passphrase",
        content_type="application/x-www-form-urlencoded"))
    write(t, "login", request("POST", "/api/auth/login/",
                              {"username": "alice", "password": "correct-horse-battery-staple"}))
    write(t, "refresh_garbage", request("POST", "/api/auth/refresh/", {"refresh": "a.b.c"}))
    write(t, "me", request("GET", "/api/users/me/", token="alice"))
    write(t, "users_search", request("GET", "/api/users/?search=al&limit=5&offset=0",
                                     token="bob"))
    write(t, "chats", request("GET", "/api/chats/", token="alice"))
    write(t, "chat_create", request("POST", "/api/chats/",
                                    {"type": "group", "name": "team", "member_ids": [2, 3]},
                                    token="alice"))
    write(t, "chat_get", request("GET", "/api/chats/1/", token="bob"))
    write(t, "member_add", request("POST", "/api/chats/1/members/",
                                   {"user_id": 3, "role": "member"}, token="alice"))
    write(t, "mark_read", request("POST", "/api/chats/1/read/", {"last_read_message_id": 1},
                                  token="bob"))
    write(t, "history", request("GET", "/api/messages/?chat=1&limit=20&before=100",
                                token="alice"))
    write(t, "send", request("POST", "/api/messages/",
                             {"chat": 1, "text": "hi \u00e9\u4e16", "client_id": "c-1"},
                             token="alice"))
    write(t, "search", request("GET", "/api/messages/search/?q=Hello%20w%C3%B6rld&chat=1",
                               token="alice"))
    write(t, "edit", request("PATCH", "/api/messages/1/", {"text": "edited"}, token="alice"))
    write(t, "forward", request("POST", "/api/messages/1/forward/", {"target_chat_id": 2},
                                token="alice"))
    write(t, "delete_for_me", request("DELETE", "/api/messages/2/?for=me", token="bob"))
    write(t, "pin", request("POST", "/api/pinned/", {"message_id": 1}, token="alice"))
    write(t, "events", request("GET", "/api/events/?since=0&limit=10", token="alice"))
    write(t, "admin_users", request("GET", "/api/admin/users/?search=b&limit=2", token="carol"))
    write(t, "admin_messages", request("GET", "/api/admin/messages/?chat=1&q=hello",
                                       token="carol"))
    write(t, "options", request("OPTIONS", "/api/chats/"))
    write(t, "method_not_allowed", request("PURGE", "/api/chats/1/", token="alice"))
    write(t, "schema", request("GET", "/api/schema/"))
    write(t, "static_admin", b"HEAD /admin/ HTTP/1.1\r\nHost: localhost\r\n"
                             b"If-None-Match: \"x\"\r\n\r\n")
    write(t, "chunked", b"POST /api/messages/ HTTP/1.1\r\nHost: localhost\r\n"
                        b"Authorization: Bearer <bob>\r\nContent-Type: application/json\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n"
                        b"10\r\n{\"chat\": 1, \"tex\r\n9\r\nt\": \"yo\"}\r\n0\r\n\r\n")


def frame(opcode, payload, fin=True, mask=b"\0\0\0\0"):
    """A masked client frame (RFC 6455); the zero mask leaves the payload readable."""
    if isinstance(payload, str):
        payload = payload.encode()
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def text(obj):
    return frame(1, json.dumps(obj))


def ws_seeds():
    t = "ws_event"
    user, chat = b"\0", b"\1"  # the first byte picks alice's user socket or the group's
    write(t, "ping", user + text({"type": "ping"}))
    write(t, "message", user + text({"type": "message", "chat_id": 1, "text": "hello",
                                     "client_id": "k1"}))
    write(t, "message_chat_socket", chat + text({"type": "message", "text": "on the chat"}))
    write(t, "message_retry", chat + text({"type": "message", "text": "x", "client_id": "r"}) * 2)
    write(t, "typing", chat + text({"type": "typing", "is_typing": True})
          + text({"type": "typing", "is_typing": False}))
    write(t, "read", user + text({"type": "read", "chat_id": 1, "last_read_message_id": 1}))
    write(t, "edit", chat + text({"type": "edit", "message_id": 1, "text": "changed"}))
    write(t, "delete", chat + text({"type": "delete", "message_id": 2, "for_me": True}))
    write(t, "forward", user + text({"type": "forward", "chat_id": 1, "message_id": 1,
                                     "target_chat_id": 2}))
    write(t, "pin_unpin", chat + text({"type": "pin", "message_id": 1})
          + text({"type": "unpin", "message_id": 1}))
    write(t, "other_chat", chat + text({"type": "read", "chat_id": 2,
                                        "last_read_message_id": 1}))
    write(t, "unknown_type", user + text({"type": "subscribe", "chat_id": 1}))
    write(t, "missing_fields", user + text({"type": "edit"}))
    write(t, "not_json", user + frame(1, "{\"type\": \"ping\""))
    write(t, "fragmented", user + frame(1, "{\"type\":", fin=False) + frame(9, "hb")
          + frame(0, "\"ping\"}"))
    write(t, "masked", user + frame(1, json.dumps({"type": "ping"}), mask=b"\x12\x34\x56\x78"))
    write(t, "binary", user + frame(2, b"\x00\x01\x02"))
    write(t, "ping_pong_close", user + frame(9, "p") + frame(10, "") + frame(8, b"\x03\xe8bye"))
    write(t, "close_bad_code", user + frame(8, b"\x03\xed"))
    write(t, "long_header", user + frame(1, json.dumps({"type": "message", "chat_id": 1,
                                                        "text": "x" * 300})))
    write(t, "unmasked", user + b"\x81\x05hello")
    # The same events as plain messages (second bit of the first byte).
    user_text, chat_text = b"\2", b"\3"
    write(t, "text_message", user_text + json.dumps({"type": "message", "chat_id": 1,
                                                     "text": "plain", "client_id": None}).encode())
    write(t, "text_edit", chat_text + json.dumps({"type": "edit", "message_id": 1,
                                                  "text": "again"}).encode())
    write(t, "text_read_big_id", user_text + b'{"type":"read","chat_id":1,'
          b'"last_read_message_id":9223372036854775807}')
    write(t, "text_nested", chat_text + b'{"type":"typing","is_typing":[[[[{}]]]]}')


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(claims, header=None, key=KEY):
    header = header or {"alg": "HS256", "typ": "JWT"}
    signing = b64(json.dumps(header, separators=(",", ":")).encode()) + "." + \
        b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(key, signing.encode(), hashlib.sha256).digest()
    return signing + "." + b64(sig)


def jwt_seeds():
    t = "jwt_decode"
    base = {"token_type": "access", "exp": 4102444800, "iat": 1700000000,
            "jti": "0123456789abcdef0123456789abcdef", "user_id": 1}
    write(t, "access", token(base))
    write(t, "refresh", token(dict(base, token_type="refresh")))
    write(t, "user_id_string", token(dict(base, user_id="42")))
    write(t, "user_id_zero", token(dict(base, user_id=0)))
    write(t, "expired", token(dict(base, exp=1600000000)))
    write(t, "no_jti", token({k: v for k, v in base.items() if k != "jti"}))
    write(t, "other_type", token(dict(base, token_type="sliding")))
    write(t, "wrong_key", token(base, key=b"another key"))
    write(t, "alg_none", b64(b'{"alg":"none","typ":"JWT"}') + "."
          + b64(json.dumps(base).encode()) + ".")
    write(t, "alg_rs256", token(base, header={"alg": "RS256", "typ": "JWT"}))
    write(t, "header_not_object", b64(b"[1,2]") + ".e30.sig")
    write(t, "two_parts", "eyJhbGciOiJIUzI1NiJ9.e30")
    write(t, "bad_base64", "ey!!.ey??.sig")


def search_seeds():
    t = "search_query"
    for name, q in [("words", "hello world"), ("mixed_case", "Hello WORLD hello"),
                    ("accents", "Caf\u00e9 na\u00efve \u00c9cole"), ("cyrillic", "\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440"),
                    ("cjk", "\u4f60\u597d\u4e16\u754c"), ("punctuation", "don't stop-me now!!"),
                    ("digits", "room 101 a1b2"), ("many", " ".join(f"w{i}" for i in range(12))),
                    ("long_word", "x" * 100), ("turkish", "\u0130stanbul \u0131s\u0131k"),
                    ("emoji", "hi \U0001F600 there"), ("empty", "")]:
        write(t, name, q)
    write(t, "invalid_utf8", b"abc \xff\xfe def")


def config_seeds():
    t = "config_parse"
    write(t, "minimal", "DEBUG=0\nSECRET_KEY=" + "k3y-" * 15 + "\n")
    write(t, "full",
          "# chatd\nexport DEBUG=1\nALLOWED_HOSTS=localhost, .example.com ,*\n"
          "PORT=9000\nTHREADS=2\nMAX_BODY_BYTES=2048\nDB_HOST=\nSQLITE_PATH=/tmp/db.sqlite3\n"
          "SQLITE_SYNCHRONOUS=full\nREDIS_PREFIX='chat:'\nACCESS_TOKEN_LIFETIME=5m\n"
          "REFRESH_TOKEN_LIFETIME=1d\nLOGIN_FAILURE_WINDOW=15m\nREGISTER_THROTTLE_RATE=20/hour\n"
          "USER_THROTTLE_RATE=600/min\n"
          "EVENT_RETENTION=7d\nWS_IDLE_TIMEOUT=60s\nLOG_LEVEL=WARN\nLOG_FORMAT=json\n")
    write(t, "quotes", 'SECRET_KEY="multi\nline \\"quoted\\" \\t value"\n'
          "DB_PASSWORD='single # not a comment'\nBIND=0.0.0.0 # a comment\n")
    write(t, "bad_values", "PORT=70000\nDEBUG=maybe\nACCESS_TOKEN_LIFETIME=5w\n"
          "REGISTER_THROTTLE_RATE=ten/hour\nUSER_THROTTLE_RATE=5/fortnight\nSQLITE_PATH=\nLOG_LEVEL=loud\n")
    write(t, "bad_lines", "JUST A LINE\n1KEY=x\nKEY WITH SPACE=y\n=z\n")
    write(t, "unterminated", 'SECRET_KEY="never closed\nPORT=1\n')
    write(t, "crlf", "DEBUG=1\r\nPORT=8001\r\n")
    write(t, "durations", "ACCESS_TOKEN_LIFETIME=365d\nREFRESH_TOKEN_LIFETIME=3650d\n"
          "EVENT_RETENTION=60\nWS_IDLE_TIMEOUT=2\nLOGIN_FAILURE_WINDOW=30d\n")
    write(t, "redis_postgres", "DB_HOST=db\nDB_PORT=5432\nDB_POOL_SIZE=32\n"
          "DB_SYNCHRONOUS_COMMIT=remote_apply\nREDIS_HOST=redis\nREDIS_PORT=6380\n")


if __name__ == "__main__":
    for target in ("http_request", "ws_event", "jwt_decode", "search_query", "config_parse"):
        shutil.rmtree(os.path.join(ROOT, target), ignore_errors=True)
    http_seeds()
    ws_seeds()
    jwt_seeds()
    search_seeds()
    config_seeds()
