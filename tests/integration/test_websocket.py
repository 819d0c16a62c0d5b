"""The WebSocket API (API.md "WebSocket", "Resume without loss", "Limits") against a real
chatd, with real WebSocket clients (python3-websockets, asyncio API).

Every test runs its coroutine with asyncio.run; every wait is bounded by a timeout. A
socket is "synced" after connecting by a ping/pong round trip: the server starts reading
client frames only once the socket is registered with the hub (and presence and any
replay are done), so a pong proves that live events reach it from then on."""
import asyncio
import base64
import ctypes
import datetime
import json
import os
import re
import signal
import socket
import struct
import threading
import time
import uuid

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatusCode

from conftest import Client, client_frame, jwt_parts, raw_upgrade, sign_jwt, unique_name

ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
MESSAGE_KEYS = {"type", "message_id", "chat_id", "text", "sender", "sender_id", "created_at",
                "forwarded_from", "client_id"}
ERROR_KEYS = {"type", "code", "detail", "request_type"}
# Logged event types (they carry `seq` on the user socket).
LOGGED = {"message", "edit", "delete", "read", "delivered", "pin", "unpin", "chat_created",
          "chat_updated", "chat_deleted", "member_added", "member_removed", "member_updated"}


# ---- helpers ------------------------------------------------------------------------------

def uid(p):
    return p["user"]["id"]


def uname(p):
    return p["user"]["username"]


def private_chat(c, a, b):
    r = c.post("/api/chats/", token=a["access"], json={"type": "private", "member_ids": [uid(b)]})
    assert r.status_code in (200, 201), r.text
    return r.json()["id"]


def group_chat(c, owner, *members, name="team"):
    r = c.post("/api/chats/", token=owner["access"],
               json={"type": "group", "name": name, "member_ids": [uid(m) for m in members]})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def rest_send(c, who, chat_id, text, expect=201, **extra):
    r = c.post("/api/messages/", token=who["access"], json={"chat": chat_id, "text": text, **extra})
    assert r.status_code == expect, r.text
    return r.json()


def history(c, who, chat_id):
    r = c.get(f"/api/messages/?chat={chat_id}&limit=200", token=who["access"])
    assert r.status_code == 200, r.text
    return {m["id"]: m for m in r.json()["results"]}


def is_(type_, **fields):
    """A predicate: a frame of this type whose fields have these values."""
    def pred(f):
        return f.get("type") == type_ and all(f.get(k, object()) == v for k, v in fields.items())
    pred.__name__ = f"{type_}{fields}"
    return pred


def without_seq(f):
    return {k: v for k, v in f.items() if k != "seq"}


def without_status(chat):
    """A chat object as compared with REST: its last message's status moves on as sockets
    receive messages (delivery), and an event's copy has it as the event committed."""
    if chat["last_message"] is None:
        return chat
    return {**chat, "last_message": {k: v for k, v in chat["last_message"].items() if k != "status"}}


def logged(frames):
    return [f for f in frames if f.get("type") in LOGGED]


def key(f):
    """(type, message id, for_me) of a frame, for comparing event sequences."""
    return (f.get("type"), f.get("message_id", f.get("last_read_message_id")), f.get("for_me", False))


class WS:
    """A connected socket. `seen` holds every frame received, in order; `until` consumes
    the first matching frame (looking first at frames received earlier but not consumed)."""

    def __init__(self, conn, name):
        self.conn = conn
        self.name = name
        self.seen = []
        self.buffer = []

    async def send(self, obj):
        await self.conn.send(obj if isinstance(obj, (str, bytes)) else json.dumps(obj))

    async def _read(self, timeout):
        raw = await asyncio.wait_for(self.conn.recv(), timeout)
        assert isinstance(raw, str), f"{self.name}: binary frame {raw!r}"
        frame = json.loads(raw)
        assert isinstance(frame, dict), f"{self.name}: not an object: {raw}"
        self.seen.append(frame)
        return frame

    async def until(self, pred, timeout=5.0):
        for i, f in enumerate(self.buffer):
            if pred(f):
                del self.buffer[i]
                return f
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            try:
                if left <= 0:
                    raise asyncio.TimeoutError
                f = await self._read(left)
            except asyncio.TimeoutError:
                raise AssertionError(f"{self.name}: no {getattr(pred, '__name__', 'frame')} within "
                                     f"{timeout}s; last frames seen: {self.seen[-12:]}") from None
            except ConnectionClosed as e:
                raise AssertionError(f"{self.name}: closed ({e}) while waiting for "
                                     f"{getattr(pred, '__name__', 'frame')}; seen: {self.seen[-12:]}") from None
            if pred(f):
                return f
            self.buffer.append(f)

    async def peek(self, pred, timeout=5.0):
        """Like `until`, but leaves the frame to be consumed later."""
        f = await self.until(pred, timeout)
        self.buffer.insert(0, f)
        return f

    async def next(self, timeout=5.0):
        """The next frame not consumed yet."""
        return await self.until(lambda f: True, timeout)

    async def take(self, pred, count, timeout=10.0):
        return [await self.until(pred, timeout) for _ in range(count)]

    async def drain(self, duration):
        """Reads whatever arrives for `duration` seconds (kept unconsumed)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + duration
        while (left := deadline - loop.time()) > 0:
            try:
                self.buffer.append(await self._read(left))
            except (asyncio.TimeoutError, ConnectionClosed):
                return

    async def ping(self, timeout=5.0):
        await self.send({"type": "ping"})
        f = await self.until(is_("pong"), timeout)
        assert f == {"type": "pong"}, f

    async def closed(self, timeout=5.0):
        """Reads until the server closes the socket; returns the close code."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"{self.name}: still open after {timeout}s; seen: {self.seen[-12:]}")
            try:
                raw = await asyncio.wait_for(self.conn.recv(), left)
            except asyncio.TimeoutError:
                continue
            except ConnectionClosed:
                return self.conn.close_code
            if isinstance(raw, str):
                self.seen.append(json.loads(raw))

    async def close(self):
        try:
            await asyncio.wait_for(self.conn.close(), 5)
        except (asyncio.TimeoutError, ConnectionClosed):
            pass


def ws_url(server, path, **query):
    url = f"ws://127.0.0.1:{server.port}{path}"
    if query:
        url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return url


async def connect(server, token=None, path="/ws/", sync=True, name=None, headers=None,
                  subprotocols=None, origin=None, open_timeout=10, **query):
    if token is not None:
        query = {"token": token, **query}
    conn = await websockets.connect(ws_url(server, path, **query), extra_headers=headers,
                                    subprotocols=subprotocols, origin=origin, ping_interval=None,
                                    open_timeout=open_timeout, close_timeout=3, max_size=2 ** 22)
    ws = WS(conn, name or path)
    if sync:
        await ws.ping()
    return ws


async def user_ws(server, who, **kw):
    return await connect(server, who["access"], "/ws/", name=f"{uname(who)}/ws", **kw)


async def chat_ws(server, who, chat_id, **kw):
    return await connect(server, who["access"], f"/ws/chat/{chat_id}/", name=f"{uname(who)}/chat{chat_id}", **kw)


async def refused(server, path, token=None, **kw):
    """The HTTP status of a refused handshake."""
    with pytest.raises(InvalidStatusCode) as e:
        ws = await connect(server, token, path, sync=False, **kw)
        await ws.close()
    return e.value.status_code


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def check_message(f, *, user_socket, message_id, chat_id, text, sender, client_id, forwarded_from=None):
    assert set(f) == MESSAGE_KEYS | ({"seq"} if user_socket else set()), f
    assert f["type"] == "message" and f["message_id"] == message_id and f["chat_id"] == chat_id, f
    assert f["text"] == text and f["sender"] == uname(sender) and f["sender_id"] == uid(sender), f
    assert ISO.match(f["created_at"]), f
    assert f["forwarded_from"] == forwarded_from and f["client_id"] == client_id, f
    if user_socket:
        assert isinstance(f["seq"], int) and f["seq"] > 0, f


def check_seq_order(ws, skip=()):
    """Logged events on a user socket carry strictly increasing seqs; others carry none.
    `skip`: frames (by identity) not to check, e.g. a retry's acknowledgement."""
    seqs = []
    for f in ws.seen:
        if any(f is x for x in skip):
            continue
        if f["type"] in LOGGED:
            assert isinstance(f.get("seq"), int), (ws.name, f)
            seqs.append(f["seq"])
        elif f["type"] != "synced":
            assert "seq" not in f, (ws.name, f)
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), (ws.name, seqs)


def check_no_seq(ws):
    for f in ws.seen:
        assert "seq" not in f, (ws.name, f)


# ---- 1. handshake ----------------------------------------------------------------------------

def test_handshake_token_in_query_header_and_subprotocol(server, client):
    a, b = client.register(), client.register()
    chat = private_chat(client, a, b)
    tok = a["access"]

    async def main():
        opened = []
        # ?token= (the original's way), on both socket kinds.
        opened.append(await connect(server, tok, "/ws/"))
        opened.append(await connect(server, tok, f"/ws/chat/{chat}/"))
        # Authorization: Bearer.
        for path in ("/ws/", f"/ws/chat/{chat}/"):
            ws = await connect(server, path=path, headers={"Authorization": f"Bearer {tok}"})
            opened.append(ws)
        # ...split on any whitespace, as REST (SimpleJWT) splits it.
        opened.append(await connect(server, path="/ws/", headers={"Authorization": f"Bearer\t {tok}"}))
        # Subprotocol pair; the response selects "access_token".
        for path in ("/ws/", f"/ws/chat/{chat}/"):
            ws = await connect(server, path=path, subprotocols=["access_token", tok])
            assert ws.conn.subprotocol == "access_token"
            opened.append(ws)
        # Offered with the token in the query too: still selected (a browser that offered a
        # subprotocol fails a handshake whose answer names none).
        ws = await connect(server, tok, "/ws/", subprotocols=["access_token", tok])
        assert ws.conn.subprotocol == "access_token"
        opened.append(ws)
        # Paths without the trailing slash.
        opened.append(await connect(server, tok, "/ws"))
        opened.append(await connect(server, tok, f"/ws/chat/{chat}"))
        # A same-origin Origin (host:port equal to the Host header).
        opened.append(await connect(server, tok, "/ws/", origin=f"http://127.0.0.1:{server.port}"))
        opened.append(await connect(server, tok, f"/ws/chat/{chat}/", origin=f"http://127.0.0.1:{server.port}"))
        # Every one of them is live: a message from b reaches all.
        m = rest_send(client, b, chat, "to all sockets")
        for ws in opened:
            f = await ws.until(is_("message", message_id=m["id"]))
            assert f["chat_id"] == chat and f["client_id"] is None
        for ws in opened:
            await ws.close()

    run(main())


def test_handshake_refusals(server, client):
    a, b, outsider = client.register(), client.register(), client.register()
    chat = private_chat(client, a, b)
    header, payload = jwt_parts(a["access"])
    # Signed with the server's key: only `exp` makes it invalid.
    expired = sign_jwt(header, {**payload, "exp": int(time.time()) - 60, "iat": int(time.time()) - 400})
    forged = sign_jwt(header, payload, key="some-other-key-" + "q" * 60)
    garbage = "garbage." + uuid.uuid4().hex + ".sig" + uuid.uuid4().hex

    async def main():
        for path in ("/ws/", f"/ws/chat/{chat}/"):
            assert await refused(server, path) == 401, path
            for bad in (garbage, expired, forged, a["refresh"]):
                assert await refused(server, path, bad) == 401, (path, bad)
            assert await refused(server, path, headers={"Authorization": f"Bearer {garbage}"}) == 401
            assert await refused(server, path, headers={"Authorization": f"Bearer {expired}"}) == 401
            assert await refused(server, path, headers={"Authorization": f"Bearer {a['access']} x"}) == 401
            assert await refused(server, path, subprotocols=["access_token", garbage]) == 401
            assert await refused(server, path, subprotocols=["access_token", a["refresh"]]) == 401
            # A foreign Origin while the Host is 127.0.0.1:port.
            assert await refused(server, path, a["access"], origin="http://evil.example") == 403
            assert await refused(server, path, a["access"],
                                 origin=f"http://127.0.0.1:{server.port}.evil.example") == 403
        # No such chat, and a chat one is not in.
        assert await refused(server, "/ws/chat/987654321/", a["access"]) == 404
        assert await refused(server, f"/ws/chat/{chat}/", outsider["access"]) == 403
        assert await refused(server, f"/ws/chat/{chat}", outsider["access"]) == 403
        # A bad `since`, and a negative one (as GET /api/events/ answers them).
        assert await refused(server, "/ws/", a["access"], since="abc") == 400
        assert await refused(server, "/ws/", a["access"], since="-1") == 400

    run(main())
    log = server.read_log()
    for tok in (a["access"], a["refresh"], b["access"], outsider["access"], expired, forged, garbage):
        assert tok not in log
        assert tok.split(".")[-1] not in log  # not even the signature


def test_allowed_origins_setting(make_server):
    s = make_server(ALLOWED_ORIGINS="http://app.example")
    c = Client(s)
    a, b = c.register(), c.register()
    chat = private_chat(c, a, b)

    async def main():
        ws1 = await connect(s, a["access"], "/ws/", origin="http://app.example")
        ws2 = await connect(s, a["access"], f"/ws/chat/{chat}/", origin="http://app.example")
        assert await refused(s, "/ws/", a["access"], origin="http://evil.example") == 403
        assert await refused(s, f"/ws/chat/{chat}/", a["access"], origin="http://evil.example") == 403
        # No Origin at all (not a browser) is still allowed.
        ws3 = await connect(s, a["access"], "/ws/")
        # The server's own pages still may: listing another site's client does not cut
        # off the built-in one.
        ws4 = await connect(s, a["access"], "/ws/", origin=f"http://127.0.0.1:{s.port}")
        for ws in (ws1, ws2, ws3, ws4):
            await ws.close()

    run(main())
    assert a["access"] not in s.read_log()


# ---- 2. client events --------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["user", "chat"])
def test_client_events(server, client, kind):
    a, b = client.register(), client.register()
    chat = private_chat(client, a, b)
    group = group_chat(client, a, b, name="fwd-target")

    async def main():
        a_user = await user_ws(server, a)
        a_chat = await chat_ws(server, a, chat)
        b_user = await user_ws(server, b)
        b_chat = await chat_ws(server, b, chat)
        everyone = [a_user, a_chat, b_user, b_chat]
        act = a_user if kind == "user" else a_chat

        def ev(**fields):
            return {**fields, "chat_id": chat} if kind == "user" else fields

        # message: the sender's copies carry client_id, the others null.
        cid = "cid-" + uuid.uuid4().hex
        await act.send(ev(type="message", text="hello over ws", client_id=cid))
        first = await a_user.peek(is_("message", client_id=cid))
        m1 = first["message_id"]
        for ws in everyone:
            f = await ws.until(is_("message", message_id=m1))
            own = ws in (a_user, a_chat)
            check_message(f, user_socket=ws in (a_user, b_user), message_id=m1, chat_id=chat,
                          text="hello over ws", sender=a, client_id=cid if own else None)
        # A retry with the same client_id: acknowledged to the sending socket alone, no seq.
        await act.send(ev(type="message", text="hello over ws", client_id=cid))
        ack = await act.until(is_("message", message_id=m1))
        check_message(ack, user_socket=False, message_id=m1, chat_id=chat, text="hello over ws",
                      sender=a, client_id=cid)
        await act.send(ev(type="message", text="second", client_id=cid + "-2"))
        m2 = (await act.peek(is_("message", text="second")))["message_id"]
        assert m2 > m1
        for ws in everyone:
            await ws.until(is_("message", message_id=m2))
        # A message from b, then a read by a (the read goes to every member's sockets).
        m3 = rest_send(client, b, chat, "from b")["id"]
        for ws in everyone:
            await ws.until(is_("message", message_id=m3))
        await act.send(ev(type="read", last_read_message_id=m3))
        for ws in everyone:
            f = await ws.until(is_("read", user_id=uid(a)))
            assert without_seq(f) == {"type": "read", "chat_id": chat, "user_id": uid(a),
                                      "last_read_message_id": m3}, (ws.name, f)
        # forward m1 into the group.
        await act.send(ev(type="forward", message_id=m1, target_chat_id=group))
        for ws in (a_user, b_user):
            f = await ws.until(is_("message", chat_id=group))
            check_message(f, user_socket=True, message_id=f["message_id"], chat_id=group,
                          text="hello over ws", sender=a, client_id=None, forwarded_from=m1)
        # edit
        await act.send(ev(type="edit", message_id=m1, text="edited text"))
        for ws in everyone:
            f = await ws.until(is_("edit", message_id=m1))
            assert set(f) == {"type", "chat_id", "message_id", "text", "edited_at"} | (
                {"seq"} if ws in (a_user, b_user) else set()), f
            assert f["chat_id"] == chat and f["text"] == "edited text" and ISO.match(f["edited_at"]), f
        # pin / unpin
        await act.send(ev(type="pin", message_id=m1))
        for ws in everyone:
            f = await ws.until(is_("pin", message_id=m1))
            assert without_seq(f) == {"type": "pin", "chat_id": chat, "message_id": m1, "pinned_by": uid(a)}, f
        # Pinning it again commits nothing: the pin as it stands answers the sending socket
        # alone, without seq (REST answers 200 with it), and nothing is broadcast.
        await act.send(ev(type="pin", message_id=m1))
        repin = await act.until(is_("pin", message_id=m1))
        assert repin == {"type": "pin", "chat_id": chat, "message_id": m1, "pinned_by": uid(a)}, repin
        await act.send(ev(type="unpin", message_id=m1))
        for ws in everyone:
            f = await ws.until(is_("unpin", message_id=m1))
            assert without_seq(f) == {"type": "unpin", "chat_id": chat, "message_id": m1}, f
        # delete for_me (b's message, hidden for a only): only a's user socket hears it, and
        # a per-chat socket that asked for it gets it as its answer (without seq).
        await act.send(ev(type="delete", message_id=m3, for_me=True))
        f = await a_user.until(is_("delete", message_id=m3))
        assert without_seq(f) == {"type": "delete", "chat_id": chat, "message_id": m3, "for_me": True}, f
        assert isinstance(f["seq"], int)
        if act is a_chat:
            answer = await a_chat.until(is_("delete", message_id=m3))
            assert answer == {"type": "delete", "chat_id": chat, "message_id": m3, "for_me": True}, answer
        # delete for everyone.
        await act.send(ev(type="delete", message_id=m2))
        for ws in everyone:
            f = await ws.until(is_("delete", message_id=m2))
            assert without_seq(f) == {"type": "delete", "chat_id": chat, "message_id": m2}, f
        # Deleting it again commits nothing (REST answers 204): the deletion as it stands
        # answers the sending socket alone, without seq.
        await act.send(ev(type="delete", message_id=m2))
        redelete = await act.until(is_("delete", message_id=m2))
        assert redelete == {"type": "delete", "chat_id": chat, "message_id": m2}, redelete
        # ping -> pong
        await act.ping()
        for ws in everyone:
            await ws.drain(0.3)

        # Each socket saw exactly its events, in commit order.
        # m3 is b's reply over a's two unread messages: b's read of them, then a's read.
        common = [("message", m1, False), ("message", m2, False), ("message", m3, False), ("read", m3, False),
                  ("read", m3, False)]
        tail = [("edit", m1, False), ("pin", m1, False), ("unpin", m1, False)]

        def seq_of(ws):
            return [k for k in map(key, logged(ws.seen)) if k[0] != "delivered"]

        fwd = [k for k in map(key, logged(a_user.seen)) if k[0] == "message" and k[1] not in (m1, m2, m3)]
        assert len(fwd) == 1
        for ws in everyone:
            got = seq_of(ws)
            if ws is act:  # the retry acknowledgement and the answer to the second pin
                assert got.count(("message", m1, False)) == 2, (ws.name, got)
                got.remove(("message", m1, False))
                assert got.count(("pin", m1, False)) == 2, (ws.name, got)
                got.remove(("pin", m1, False))
                assert got.count(("delete", m2, False)) == 2, (ws.name, got)
                got.remove(("delete", m2, False))
            expected = list(common)
            if ws.name.endswith("/ws"):
                expected += fwd
            expected += tail
            if ws in (a_user, act):  # a's user socket, and a per-chat socket's answer
                expected.append(("delete", m3, True))
            expected.append(("delete", m2, False))
            assert got == expected, (ws.name, got, expected)
        for ws in (a_user, b_user):
            check_seq_order(ws, skip=[ack, repin, redelete])
            assert not [f for f in ws.seen if f["type"] == "error"], ws.seen
        for ws in (a_chat, b_chat):
            check_no_seq(ws)
            assert not [f for f in ws.seen if f["type"] == "error"], ws.seen
        for ws in everyone:
            await ws.close()

    run(main())


def test_ids_written_as_text_are_ids(server, client):
    """As the original consumer's ORM lookups took them: "42" is id 42 in an event; text
    that is not an integer is still a validation error."""
    a, b = client.register(), client.register()
    chat = private_chat(client, a, b)
    m = rest_send(client, a, chat, "to be edited")["id"]

    async def main():
        ws = await user_ws(server, a)
        await ws.send({"type": "edit", "chat_id": str(chat), "message_id": f" {m} ", "text": "edited"})
        f = await ws.until(is_("edit", message_id=m))
        assert f["chat_id"] == chat and f["text"] == "edited", f
        await ws.send({"type": "edit", "chat_id": chat, "message_id": "4x2", "text": "no"})
        e = await ws.until(is_("error"))
        assert e["code"] == "validation" and "message_id: A valid integer is required." in e["detail"], e
        await ws.close()

    run(main())


def test_event_fields_read_as_rest_reads_a_body(server, client):
    """An event's fields mean what the same fields of a REST body mean (DRF's IntegerField,
    CharField and BooleanField): "7.0", 7.0 and "+7" are id 7, a number is text, and "yes"
    and "true" are true. The same values over REST get the same answers."""
    a, b = client.register(), client.register()
    chat = private_chat(client, a, b)
    m1 = rest_send(client, a, chat, "first")["id"]
    m2 = rest_send(client, a, chat, "second")["id"]

    async def main():
        ws = await user_ws(server, a)
        b_ws = await user_ws(server, b)
        await ws.send({"type": "edit", "chat_id": f"{chat}.0", "message_id": float(m1), "text": "edited"})
        f = await ws.until(is_("edit", message_id=m1))
        assert f["chat_id"] == chat and f["text"] == "edited", f
        await ws.send({"type": "message", "chat_id": f"+{chat}", "text": 123, "client_id": 77})
        f = await ws.until(is_("message", text="123"))
        assert f["chat_id"] == chat and f["client_id"] == "77", f
        # Past 64 bits a number keeps its digits, as Python's json reads it.
        await ws.send({"type": "message", "chat_id": chat, "text": 2**70, "client_id": -2**64})
        f = await ws.until(is_("message", text=str(2**70)))
        assert f["client_id"] == str(-2**64), f
        await ws.send({"type": "typing", "chat_id": chat, "is_typing": "yes"})
        t = await b_ws.until(is_("typing", chat_id=chat))
        assert t["is_typing"] is True, t
        await ws.send({"type": "delete", "chat_id": chat, "message_id": f"{m2}.0", "for_me": "true"})
        await ws.send({"type": "ping"})
        await ws.until(is_("pong"))
        assert not [f for f in ws.seen if f["type"] == "error"], ws.seen
        await ws.close()
        await b_ws.close()

    run(main())
    # Deleted for a alone: b still sees it, a does not.
    seen_by = [[x["id"] for x in client.get(f"/api/messages/?chat={chat}", token=who["access"]).json()["results"]]
               for who in (a, b)]
    assert m2 not in seen_by[0] and m2 in seen_by[1], seen_by
    # REST reads the same values the same way.
    r = client.post("/api/messages/", json={"chat": f"{chat}.0", "text": 456}, token=b["access"])
    assert r.status_code == 201 and r.json()["text"] == "456", r.text
    r = client.post("/api/messages/", json={"chat": chat, "text": 97125579521341690686996891164},
                    token=b["access"])
    assert r.status_code == 201 and r.json()["text"] == "97125579521341690686996891164", r.text
    # An all-digit password is all digits however it is sent.
    r = client.post("/api/auth/register/", json={"username": 2**80, "email": "n@example.com",
                                                 "password": 2**90})
    assert r.status_code == 400 and r.json() == {"password": ["This password is entirely numeric."]}, r.text
    r = client.post("/api/auth/register/", json={"username": 2**80, "email": "n@example.com",
                                                 "password": "not-numeric-1"})
    assert r.status_code == 201 and r.json()["user"]["username"] == str(2**80), r.text


def test_typing(server, client):
    a, b = client.register(), client.register()
    chat1 = private_chat(client, a, b)
    chat2 = group_chat(client, a, b, name="typing")

    async def main():
        a_user = await user_ws(server, a)
        a_chat2 = await chat_ws(server, a, chat2)
        b_user = await user_ws(server, b)
        b_chat1 = await chat_ws(server, b, chat1)
        b_chat2 = await chat_ws(server, b, chat2)
        loop = asyncio.get_running_loop()

        # On the user socket for chat1, twice within a second (the refresh is not re-sent);
        # on the chat socket of chat2 once.
        t_first1 = loop.time()
        await a_user.send({"type": "typing", "chat_id": chat1, "is_typing": True})
        await a_chat2.send({"type": "typing", "is_typing": True})
        t_last2 = loop.time()
        await asyncio.sleep(0.3)
        await a_user.send({"type": "typing", "chat_id": chat1, "is_typing": True})
        t_last1 = loop.time()
        # A machine that overslept past the 1 s period gets the refresh passed on (near the
        # period, either is right).
        gap = t_last1 - t_first1
        refreshed = 0 if gap < 0.9 else 1 if gap > 1.2 else None
        want1 = {"type": "typing", "chat_id": chat1, "user_id": uid(a), "username": uname(a), "is_typing": True}
        want2 = dict(want1, chat_id=chat2)
        assert await b_user.until(is_("typing", chat_id=chat1, is_typing=True)) == want1
        assert await b_chat1.until(is_("typing", is_typing=True)) == want1
        assert await b_user.until(is_("typing", chat_id=chat2, is_typing=True)) == want2
        assert await b_chat2.until(is_("typing", is_typing=True)) == want2
        # Expiry: is_typing false after ~5 s without a refresh.
        f = await b_chat2.until(is_("typing", is_typing=False), timeout=8)
        assert f == dict(want2, is_typing=False)
        assert 4.3 <= loop.time() - t_last2 <= 8, loop.time() - t_last2
        f = await b_chat1.until(is_("typing", is_typing=False), timeout=8)
        assert f == dict(want1, is_typing=False)
        assert 4.3 <= loop.time() - t_last1 <= 8, loop.time() - t_last1
        await b_user.until(is_("typing", chat_id=chat1, is_typing=False), timeout=3)
        await b_user.until(is_("typing", chat_id=chat2, is_typing=False), timeout=3)
        # An explicit stop is sent at once.
        await a_user.send({"type": "typing", "chat_id": chat1, "is_typing": True})
        await b_chat1.until(is_("typing", is_typing=True))
        await a_user.send({"type": "typing", "chat_id": chat1, "is_typing": False})
        f = await b_chat1.until(is_("typing", is_typing=False), timeout=1.5)
        assert f == dict(want1, is_typing=False)
        # The typer's message ends it too, right after the message: what they typed arrived.
        await a_chat2.send({"type": "typing", "is_typing": True})
        await b_chat2.until(is_("typing", is_typing=True))
        t_typed = loop.time()
        await a_chat2.send({"type": "message", "text": "typed"})
        m = await b_chat2.until(is_("message"))
        f = await b_chat2.until(is_("typing", is_typing=False), timeout=3)
        assert f == dict(want2, is_typing=False)
        assert loop.time() - t_typed < 3, "ended by the message, not by the expiry"
        arrived = [x["type"] for x in b_chat2.seen if x["type"] in ("message", "typing")]
        assert arrived[-2:] == ["message", "typing"], arrived
        await b_user.until(is_("message", message_id=m["message_id"]))
        await b_user.until(is_("typing", chat_id=chat2, is_typing=False), timeout=3)
        for ws in (a_user, a_chat2, b_user, b_chat1, b_chat2):
            await ws.drain(0.3)
        # Never to the sender; the refresh within a second was not re-sent.
        for ws in (a_user, a_chat2):
            assert not [f for f in ws.seen if f["type"] == "typing"], (ws.name, ws.seen)
        typing1 = [f["is_typing"] for f in b_chat1.seen if f["type"] == "typing"]
        if refreshed is None:
            refreshed = int(typing1[:2] == [True, True])
        assert typing1 == [True] * (1 + refreshed) + [False, True, False], typing1
        typing_user = [(f["chat_id"], f["is_typing"]) for f in b_user.seen if f["type"] == "typing"]
        first = 4 + refreshed
        assert sorted(typing_user[:first]) == sorted(
            [(chat1, True)] * (1 + refreshed) + [(chat2, True), (chat1, False), (chat2, False)])
        assert typing_user[first:] == [(chat1, True), (chat1, False), (chat2, True), (chat2, False)], typing_user
        for ws in (b_user, b_chat1):  # typing is not logged: no seq
            assert all("seq" not in f for f in ws.seen if f["type"] == "typing")
        for ws in (a_user, a_chat2, b_user, b_chat1, b_chat2):
            await ws.close()

    run(main())


@pytest.mark.parametrize("kind", ["user", "chat"])
def test_bad_client_events_get_errors_and_the_socket_stays_open(server, client, kind):
    a, b, c = client.register(), client.register(), client.register()
    chat = private_chat(client, a, b)
    foreign = private_chat(client, b, c)
    group = group_chat(client, b, a, name="roles")  # a is a plain member here
    b_msg = rest_send(client, b, chat, "b's message")["id"]
    g_msg = rest_send(client, b, group, "group message")["id"]
    gone = rest_send(client, a, chat, "deleted before the socket opens")["id"]
    assert client.request("DELETE", f"/api/messages/{gone}/", token=a["access"]).status_code == 204

    async def main():
        act = await (user_ws(server, a) if kind == "user" else chat_ws(server, a, chat))
        b_user = await user_ws(server, b)

        def ev(**fields):
            return {**fields, "chat_id": chat} if kind == "user" else fields

        cases = [
            ("not json", "bad_request", None, None),
            ("[1, 2]", "bad_request", None, None),
            (ev(type="bogus"), "bad_request", "bogus", None),
            # A long type is quoted to 64 characters, not bytes: no character cut in two.
            (ev(type="a" + "ж" * 99), "bad_request", "a" + "ж" * 99,
             'Unknown event type "a' + "ж" * 63 + '".'),
            ({"text": "no type"}, "validation", None, "type: This field is required."),
            ({"type": None}, "validation", None, "type: This field may not be null."),
            ({"type": 123}, "validation", None, "type: Not a valid string."),
            ({"type": ["message"]}, "validation", None, "type: Not a valid string."),
            (ev(type="message"), "validation", "message", "text"),
            (ev(type="message", text="   "), "validation", "message", "text"),
            (ev(type="message", text=["a list"]), "validation", "message", "text: Not a valid string."),
            (ev(type="edit", message_id="abc", text="x"), "validation", "edit", "message_id"),
            (ev(type="typing", is_typing="maybe"), "validation", "typing", "is_typing: Must be a valid boolean."),
            # An id that names nothing is not found, as over REST (a body's id, or a URL's).
            (ev(type="pin", message_id=0), "not_found", "pin", None),
            (ev(type="forward", message_id=-3, target_chat_id=chat), "not_found", "forward", None),
            # The message first, then the other fields, as REST finds its URL's message first.
            (ev(type="edit", message_id=987654321, text=None), "not_found", "edit", None),
            (ev(type="forward", message_id=987654321, target_chat_id="x"), "not_found", "forward", None),
            (ev(type="edit", message_id=b_msg, text=None), "forbidden", "edit", None),
            (ev(type="read", last_read_message_id=-5), "validation", "read", "last_read_message_id"),
            (ev(type="read"), "validation", "read", "last_read_message_id"),
            (ev(type="read", last_read_message_id=1.5), "validation", "read", "last_read_message_id"),
            (ev(type="forward", message_id=b_msg), "validation", "forward", "target_chat_id"),
            (ev(type="delete"), "validation", "delete", "message_id"),
            (ev(type="pin", message_id=987654321), "not_found", "pin", None),
            # Not allowed: editing or deleting someone else's message.
            (ev(type="edit", message_id=b_msg, text="mine now"), "forbidden", "edit", None),
            (ev(type="delete", message_id=b_msg), "forbidden", "delete", None),
            # A message of another chat.
            (ev(type="edit", message_id=g_msg, text="x"), "not_found", "edit", None),
            # Forwarding into a chat one is not in.
            (ev(type="forward", message_id=b_msg, target_chat_id=foreign), "not_found", "forward", None),
            # Null where a value is needed: REST's words.
            (ev(type="message", text=None), "validation", "message", "text: This field may not be null."),
            (ev(type="typing", is_typing=None), "validation", "typing", "is_typing: This field may not be null."),
            (ev(type="edit", message_id=None, text="x"), "validation", "edit",
             "message_id: This field may not be null."),
            # A deleted message: the service's rule, as over REST.
            (ev(type="edit", message_id=gone, text="x"), "validation", "edit", "A deleted message cannot be edited."),
            (ev(type="forward", message_id=gone, target_chat_id=chat), "validation", "forward",
             "A deleted message cannot be forwarded."),
            (ev(type="pin", message_id=gone), "validation", "pin", "message_id: A deleted message cannot be pinned."),
        ]
        if kind == "user":
            cases += [
                # A chat one is not in.
                ({"type": "message", "chat_id": foreign, "text": "let me in"}, "not_found", "message", None),
                ({"type": "typing", "chat_id": foreign, "is_typing": True}, "not_found", "typing", None),
                # No chat_id on the user socket.
                ({"type": "message", "text": "which chat?"}, "validation", "message", "chat_id"),
                ({"type": "read", "last_read_message_id": b_msg}, "validation", "read", "chat_id"),
                # A plain member may not pin in a group.
                ({"type": "pin", "chat_id": group, "message_id": g_msg}, "forbidden", "pin", None),
            ]
        else:
            cases += [
                # A message naming another chat than the socket's.
                ({"type": "message", "chat_id": foreign, "text": "let me in"}, "bad_request", "message", None),
                # A chat_id that is not an id, on any event.
                ({"type": "typing", "chat_id": "abc", "is_typing": True}, "validation", "typing",
                 "chat_id: A valid integer is required."),
                # A null chat_id on a chat socket is as good as none: only the bad id is named.
                ({"type": "edit", "chat_id": None, "message_id": "abc", "text": "x"}, "validation", "edit",
                 "message_id: A valid integer is required."),
            ]
        def reply(f):  # skip what the server pushes on its own (user_status, ...)
            return f["type"] in ("error", "pong")

        for sent, code, request_type, field in cases:
            await act.send(sent)
            f = await act.until(reply)
            assert set(f) == ERROR_KEYS, (sent, f)
            assert f["type"] == "error" and f["code"] == code and f["request_type"] == request_type, (sent, f)
            assert isinstance(f["detail"], str) and f["detail"], (sent, f)
            if field and ":" not in field and " " not in field:
                assert field in f["detail"], (sent, f)
            elif field:  # the whole detail
                assert f["detail"] == field, (sent, f)
            # Still open and in order: the next answer is the pong.
            await act.send({"type": "ping"})
            assert await act.until(reply) == {"type": "pong"}, sent
            await asyncio.sleep(0.07)  # two frames a case: under the limit of 30 events/s
        # As over REST, a watermark of 0 (nothing read yet) is valid, and read as a REST body's
        # integer (an integral float, digits as text): no error, only the pong.
        for watermark in (0, 0.0, "0", " 0 "):
            await act.send(ev(type="read", last_read_message_id=watermark))
            await act.send({"type": "ping"})
            assert await act.until(reply) == {"type": "pong"}, watermark
        # A binary frame.
        await act.send(b"\x00\x01binary")
        f = await act.until(reply)
        assert set(f) == ERROR_KEYS and f["code"] == "bad_request" and f["request_type"] is None, f
        await act.ping()
        # Nothing was broadcast by any of it.
        await b_user.drain(0.5)
        assert not [f for f in b_user.seen if f["type"] in ("message", "edit", "delete", "pin", "typing")], b_user.seen
        assert history(client, b, chat)[b_msg]["text"] == "b's message"
        await act.close()
        await b_user.close()

    run(main())


def test_removed_member_gets_member_removed_and_chat_socket_closes(server, client):
    a, b = client.register(), client.register()
    group = group_chat(client, a, b, name="leaving")

    async def main():
        a_user = await user_ws(server, a)
        b_user = await user_ws(server, b)
        b_chat = await chat_ws(server, b, group)
        r = client.request("DELETE", f"/api/chats/{group}/members/{uid(b)}/", token=a["access"])
        assert r.status_code == 204, r.text
        want = {"type": "member_removed", "chat_id": group, "user_id": uid(b), "role": "member"}
        f = await b_user.until(is_("member_removed"))
        assert without_seq(f) == want and isinstance(f["seq"], int), f
        f = await a_user.until(is_("member_removed"))
        assert without_seq(f) == want and isinstance(f["seq"], int), f
        assert await b_chat.closed() == 1000
        await b_user.drain(0.3)
        assert [without_seq(x) for x in b_user.seen if x["type"] == "member_removed"] == [want], b_user.seen
        assert [x for x in b_chat.seen if x["type"] == "member_removed"] == [want], b_chat.seen
        # b no longer hears the group.
        m = rest_send(client, a, group, "after b left")["id"]
        await a_user.until(is_("message", message_id=m))
        await b_user.drain(0.5)
        assert not [x for x in b_user.seen if x.get("chat_id") == group and x["type"] == "message"], b_user.seen
        for ws in (a_user, b_user):
            await ws.close()

    run(main())


def test_a_member_added_again_gets_the_count_afresh(server, client):
    """Removed with unread messages and added again: the socket's chat_created is followed by
    the count as it is now, which replaces the one the client showed before."""
    a, b = client.register(), client.register()
    group = group_chat(client, a, b, name="again")

    async def main():
        b_user = await user_ws(server, b)
        for i in range(3):
            rest_send(client, a, group, f"unread {i}")
        while (await b_user.until(is_("unread", chat_id=group)))["unread_count"] != 3:
            pass
        r = client.request("DELETE", f"/api/chats/{group}/members/{uid(b)}/", token=a["access"])
        assert r.status_code == 204, r.text
        await b_user.until(is_("member_removed", chat_id=group))
        r = client.post(f"/api/chats/{group}/members/", token=a["access"], json={"user_id": uid(b)})
        assert r.status_code == 201, r.text
        await b_user.until(is_("chat_created", chat_id=group))
        want = client.get(f"/api/chats/{group}/", token=b["access"]).json()["unread_count"]
        assert want != 3
        f = await b_user.until(is_("unread", chat_id=group))
        assert f == {"type": "unread", "chat_id": group, "unread_count": want}, f
        await b_user.close()

    run(main())


def test_a_resume_from_an_event_sends_its_chats_count_again(server, client):
    """An `unread` frame goes out after the event that changed the count: a connection cut
    between the two lost it, and a resume from that event's seq (the last the client got)
    does not replay the event. The resume counts its chat again: for a message of another
    member, and for one's own read from another device."""
    a, b = client.register(), client.register()
    chat = private_chat(client, a, b)

    async def main():
        first = await user_ws(server, a)
        rest_send(client, b, chat, "one")
        message = await first.until(is_("message", chat_id=chat))
        assert (await first.until(is_("unread", chat_id=chat)))["unread_count"] == 1
        await first.close()

        async def resumed_from(event, count):
            ws = await user_ws(server, a, since=event["seq"])
            await ws.until(is_("synced"))
            f = await ws.until(is_("unread", chat_id=chat))
            assert f == {"type": "unread", "chat_id": chat, "unread_count": count}, f
            return ws

        # The client got the message, not its count: it resumes from the message.
        again = await resumed_from(message, 1)
        r = client.post(f"/api/chats/{chat}/read/", token=a["access"],
                        json={"last_read_message_id": message["message_id"]})
        assert r.status_code == 200, r.text
        read = await again.until(is_("read", chat_id=chat, user_id=uid(a)))
        assert (await again.until(is_("unread", chat_id=chat)))["unread_count"] == 0
        await again.close()
        await (await resumed_from(read, 0)).close()

    run(main())


def test_an_added_members_chat_created_shows_the_chat_as_they_see_it(server, client):
    """A member added back to a group gets, in their chat_created, the chat as they see it:
    their new watermark, nothing unread, the newest message they did not hide (without its
    sender's client_id) and the pins they did not hide. Live, in a replay and over REST."""
    a, b, c = client.register(), client.register(), client.register()
    group = group_chat(client, a, b, c, name="back again")
    m1 = rest_send(client, a, group, "pinned, then hidden by c", client_id="cid-1")["id"]
    m2 = rest_send(client, a, group, "the newest c still sees", client_id="cid-2")["id"]
    m3 = rest_send(client, b, group, "hidden by c too")["id"]
    r = client.post("/api/pinned/", token=a["access"], json={"message_id": m1})
    assert r.status_code == 201, r.text
    for m in (m1, m3):
        r = client.request("DELETE", f"/api/messages/{m}/?for=me", token=c["access"])
        assert r.status_code == 204, r.text
    r = client.request("DELETE", f"/api/chats/{group}/members/{uid(c)}/", token=a["access"])
    assert r.status_code == 204, r.text
    since = client.get("/api/events/?since=0", token=c["access"]).json()["seq"]

    async def main():
        c_user = await user_ws(server, c)
        r = client.post(f"/api/chats/{group}/members/", token=a["access"], json={"user_id": uid(c)})
        assert r.status_code == 201, r.text
        live = (await c_user.until(is_("chat_created", chat_id=group)))["chat"]
        assert without_status(live) == without_status(
            client.get(f"/api/chats/{group}/", token=c["access"]).json()), live
        assert live["last_message"]["id"] == m2 and live["last_message"]["client_id"] is None, live
        assert (live["unread_count"], live["last_read_message_id"], live["pinned_message_ids"]) == (0, m3, []), live
        # The adder sees the chat otherwise: what c hid is not theirs to lose.
        mine = client.get(f"/api/chats/{group}/", token=a["access"]).json()
        assert (mine["last_message"]["id"], mine["pinned_message_ids"]) == (m3, [m1]), mine
        replay = await user_ws(server, c, since=since)
        replayed = (await replay.until(is_("chat_created", chat_id=group)))["chat"]
        assert without_status(replayed) == without_status(live), replayed
        feed = client.get(f"/api/events/?since={since}", token=c["access"]).json()["results"]
        assert [without_status(e["chat"]) for e in feed if e["type"] == "chat_created"] == [
            without_status(live)], feed
        # The socket starts from the state the event told: a rename shows c's watermark.
        r = client.patch(f"/api/chats/{group}/", token=a["access"], json={"name": "renamed"})
        assert r.status_code == 200, r.text
        renamed = (await c_user.until(is_("chat_updated", chat_id=group)))["chat"]
        assert without_status(renamed) == without_status(
            client.get(f"/api/chats/{group}/", token=c["access"]).json()), renamed
        assert renamed["last_read_message_id"] == m3, renamed
        for ws in (c_user, replay):
            await ws.close()

    run(main())


def test_a_forward_with_a_client_id_is_acknowledged_on_the_socket_that_sent_it(server, client):
    """A forward's new message goes to the target chat's sockets and to user sockets, the
    sender's copies with its client_id. A chat socket of the source chat hears nothing of
    the target chat: it gets the message as its acknowledgement only when the forward had a
    client_id (a client of the original sends none and sees no change). A repeat answers
    the first forward on the socket that sent it, and broadcasts nothing."""
    a, b = client.register(), client.register()
    source, target = group_chat(client, a, b, name="source"), group_chat(client, a, b, name="target")
    original = rest_send(client, b, source, "pass it on")["id"]

    def forward(**fields):
        return {"type": "forward", "message_id": original, "target_chat_id": target, **fields}

    def copies(ws, message_id):
        return [f for f in ws.seen if f.get("type") == "message" and f.get("message_id") == message_id]

    async def main():
        a_chat, a_user = await chat_ws(server, a, source), await user_ws(server, a)
        b_target = await chat_ws(server, b, target)
        # Without a client_id: the chat socket gets nothing, as before.
        await a_chat.send(forward())
        plain = (await b_target.until(is_("message", forwarded_from=original)))["message_id"]
        f = await a_user.until(is_("message", message_id=plain))
        assert f["client_id"] is None and f["chat_id"] == target, f
        # With one: the chat socket gets the new message, with its client_id.
        await a_chat.send(forward(client_id="fw-ws-1"))
        ack = await a_chat.until(is_("message", client_id="fw-ws-1"))
        assert (ack["chat_id"], ack["forwarded_from"], ack["sender_id"]) == (target, original, uid(a)), ack
        keyed = ack["message_id"]
        assert (await a_user.until(is_("message", message_id=keyed)))["client_id"] == "fw-ws-1"
        assert (await b_target.until(is_("message", message_id=keyed)))["client_id"] is None
        # A repeat: answered on the sending socket with the first, broadcast to nobody.
        await a_chat.send(forward(client_id="fw-ws-1"))
        again = await a_chat.until(is_("message", client_id="fw-ws-1"))
        assert again["message_id"] == keyed, again
        # On the user socket the broadcast is the acknowledgement, once; a repeat answers it.
        await a_user.send(forward(chat_id=source, client_id="fw-ws-2"))
        mine = (await a_user.until(is_("message", client_id="fw-ws-2")))["message_id"]
        await a_user.send(forward(chat_id=source, client_id="fw-ws-2"))
        assert (await a_user.until(is_("message", client_id="fw-ws-2")))["message_id"] == mine
        for ws in (a_chat, a_user, b_target):
            await ws.drain(0.5)
        assert [f["message_id"] for f in a_chat.seen if f.get("type") == "message"] == [keyed, keyed]
        assert len(copies(a_user, mine)) == 2 and len(copies(a_user, keyed)) == 1, a_user.seen
        assert [f["message_id"] for f in b_target.seen if f.get("type") == "message"] == [plain, keyed, mine]
        for ws in (a_chat, a_user, b_target):
            await ws.close()

    run(main())


def test_a_chat_updated_carries_each_members_own_view_of_the_chat(server, client):
    """A rename reaches each member with the chat as they see it: their unread count and
    read watermark, the newest message they did not hide, its client_id only on its
    sender's copy. On user and chat sockets, live, in a replay and over REST."""
    a, b, c = client.register(), client.register(), client.register()
    group = group_chat(client, a, b, c, name="before")
    m1 = rest_send(client, a, group, "one", client_id="cid-1")["id"]
    m2 = rest_send(client, a, group, "two", client_id="cid-2")["id"]
    r = client.post(f"/api/chats/{group}/read/", token=b["access"], json={"last_read_message_id": m1})
    assert r.status_code == 200, r.text
    r = client.request("DELETE", f"/api/messages/{m2}/?for=me", token=c["access"])
    assert r.status_code == 204, r.text
    since = client.get("/api/events/?since=0", token=c["access"]).json()["seq"]

    def seen_by(who):
        return client.get(f"/api/chats/{group}/", token=who["access"]).json()

    async def renamed(sockets, name):
        r = client.patch(f"/api/chats/{group}/", token=a["access"], json={"name": name})
        assert r.status_code == 200, r.text
        return [(await ws.until(is_("chat_updated", chat_id=group))) for ws in sockets]

    async def main():
        a_user, b_user, c_user = await user_ws(server, a), await user_ws(server, b), await user_ws(server, c)
        b_chat = await chat_ws(server, b, group)
        got = await renamed((a_user, b_user, c_user, b_chat), "after")
        for who, f in zip((a, b, c, b), got):
            assert without_status(f["chat"]) == without_status(seen_by(who)), (uname(who), f)
        views = {uname(who): f["chat"] for who, f in zip((a, b, c), got)}
        last = {k: (v["last_message"]["id"], v["last_message"]["client_id"], v["unread_count"],
                    v["last_read_message_id"]) for k, v in views.items()}
        assert last == {uname(a): (m2, "cid-2", 0, m2), uname(b): (m2, None, 1, m1),
                        uname(c): (m1, None, 1, 0)}, last
        assert "seq" in got[1] and "seq" not in got[3], got
        # The chat socket keeps its state as the user reads: the next rename shows it.
        r = client.post(f"/api/chats/{group}/read/", token=b["access"], json={"last_read_message_id": m2})
        assert r.status_code == 200, r.text
        await b_user.until(lambda f: f.get("type") == "unread" and f.get("unread_count") == 0)
        await b_chat.until(is_("read", chat_id=group, user_id=uid(b)))
        await asyncio.sleep(1)  # the chat socket's own count of it, read from the store
        m3 = rest_send(client, c, group, "three")["id"]
        await b_chat.until(is_("message", message_id=m3))
        got = await renamed((b_user, b_chat), "again")
        for f in got:
            assert without_status(f["chat"]) == without_status(seen_by(b)), f
            assert (f["chat"]["unread_count"], f["chat"]["last_read_message_id"]) == (1, m2), f
        # A replay and the REST feed show each rename with the reader's own fields as they
        # are when it is read: m3, deleted since, has no words left in either.
        r = client.request("DELETE", f"/api/messages/{m3}/", token=a["access"])
        assert r.status_code == 204, r.text
        # (A message's status may move meanwhile: a replay counts as delivery.)
        def own(chat):
            last = {k: v for k, v in chat["last_message"].items() if k != "status"}
            return last, chat["unread_count"], chat["last_read_message_id"], chat["pinned_message_ids"]

        replay = await user_ws(server, c, since=since)
        for name in ("after", "again"):
            f = await replay.until(is_("chat_updated", chat_id=group))
            assert f["chat"]["name"] == name, f
            assert own(f["chat"]) == own(seen_by(c)), f
            assert f["chat"]["last_message"]["id"] == m3 and f["chat"]["last_message"]["text"] == "", f
        feed = client.get(f"/api/events/?since={since}", token=b["access"]).json()["results"]
        updates = [e["chat"] for e in feed if e["type"] == "chat_updated"]
        assert [u["name"] for u in updates] == ["after", "again"], feed
        assert all("seen_by_hiders" not in e and "last_message" not in e for e in feed), feed
        assert "three" not in json.dumps(feed), feed
        for u in updates:
            assert own(u) == own(seen_by(b)), u
        for ws in (a_user, b_user, c_user, b_chat, replay):
            await ws.close()

    run(main())


def one_after_another(server, who, failures, requests):
    """A worker for side_by_side: these (method, path, body, expected status) in turn, on a
    connection of its own; what went wrong goes to `failures`."""
    def work():
        c = Client(server)
        for method, path, body, expect in requests:
            r = c.request(method, path, token=who["access"], json=body)
            if r.status_code != expect:
                failures.append(r.text)
    return work


def sends_each_then_deleted(server, chat, sender, deleter, count, failures, query=""):
    """A worker for side_by_side: `count` messages ("t0", "t1"...) from `sender`, each
    deleted by `deleter` once acknowledged (for themselves only with query "?for=me")."""
    def work():
        c = Client(server)
        for i in range(count):
            m = c.request("POST", "/api/messages/", token=sender["access"], json={"chat": chat, "text": f"t{i}"})
            if m.status_code != 201:
                failures.append(m.text)
                continue
            r = c.request("DELETE", f"/api/messages/{m.json()['id']}/{query}", token=deleter["access"])
            if r.status_code != 204:
                failures.append(r.text)
    return work


def side_by_side(*workers):
    """Runs the workers in threads of their own, all at once, and waits for them."""
    threads = [threading.Thread(target=w) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)


async def read_until(ws, done):
    """Reads frames until `done(ws.seen)` holds."""
    while not done(ws.seen):
        await ws.next(timeout=10)


def test_a_rename_racing_edits_and_additions_never_shows_an_older_chat_than_events_before_it(
        server, client):
    """Edits of the chat's newest message and additions of members race renames. Each
    chat_updated names the newest message and the members as the rename read them; its
    event must not come after an edit or an addition it did not see (on PostgreSQL the
    rename reads the message FOR SHARE, and additions share-lock the chat row)."""
    a, b = client.register(), client.register()
    newcomers = [client.register() for _ in range(20)]
    group = group_chat(client, a, b, name="r0")
    m = rest_send(client, a, group, "v0")["id"]

    failures = []
    edits = [("PATCH", f"/api/messages/{m}/", {"text": f"v{i}"}, 200) for i in range(1, 41)]
    renames = [("PATCH", f"/api/chats/{group}/", {"name": f"r{i}"}, 200) for i in range(1, 41)]
    additions = [("POST", f"/api/chats/{group}/members/", {"user_id": uid(n)}, 201) for n in newcomers]

    async def main():
        b_user = await user_ws(server, b)
        await asyncio.to_thread(side_by_side, *(one_after_another(server, a, failures, r)
                                                for r in (edits, renames, additions)))
        assert not failures, failures
        await read_until(b_user, lambda seen: any(
            f.get("type") == "chat_updated" and f["chat"]["name"] == "r40" for f in seen))
        await read_until(b_user, lambda seen: any(f.get("type") == "edit" and f["text"] == "v40" for f in seen))
        await read_until(b_user, lambda seen: sum(f.get("type") == "member_added" for f in seen) == len(newcomers))
        text, updates, members = "v0", 0, {uid(a), uid(b)}
        for f in b_user.seen:
            if f.get("type") == "edit":
                text = f["text"]
            elif f.get("type") == "member_added":
                members.add(f["user_id"])
            elif f.get("type") == "chat_updated":
                updates += 1
                assert f["chat"]["last_message"]["text"] == text, (f["seq"], text, f["chat"]["last_message"])
                assert {x["id"] for x in f["chat"]["members"]} == members, f["seq"]
        assert updates == 40
        check_seq_order(b_user)
        await b_user.close()

    run(main())


def test_a_rename_racing_hides_never_shows_the_hider_what_they_hid(server, client):
    """A member hides each new message as it comes while the chat is renamed: no rename
    after their hide's event shows them the message they hid (on PostgreSQL a hide
    share-locks the chat row the rename updates, so one waits for the other)."""
    a, b = client.register(), client.register()
    group = group_chat(client, a, b, name="h0")
    failures = []
    renames = one_after_another(server, a, failures,
                                [("PATCH", f"/api/chats/{group}/", {"name": f"h{i}"}, 200) for i in range(1, 41)])

    sends_and_hides = sends_each_then_deleted(server, group, a, b, 40, failures, "?for=me")

    async def main():
        b_user = await user_ws(server, b)
        await asyncio.to_thread(side_by_side, renames, sends_and_hides)
        assert not failures, failures
        await read_until(b_user, lambda seen: any(
            f.get("type") == "chat_updated" and f["chat"]["name"] == "h40" for f in seen))
        await read_until(b_user, lambda seen: sum(f.get("for_me", False) for f in seen) == 40)
        hidden = set()
        for f in b_user.seen:
            if f.get("type") == "delete" and f.get("for_me"):
                hidden.add(f["message_id"])
            elif f.get("type") == "chat_updated":
                last = f["chat"]["last_message"]
                assert last is None or last["id"] not in hidden, (f["seq"], last["id"])
        check_seq_order(b_user)
        await b_user.close()

    run(main())


def test_an_addition_racing_deletions_never_shows_the_newcomer_a_deleted_message(server, client):
    """A member is added and removed again while messages are sent and deleted: the
    newcomer's chat_created must not show a message as it was before a deletion that
    committed ahead of the event (they joined after it, so no later event corrects it). On
    PostgreSQL the addition reads the last message FOR SHARE, as a rename does."""
    a, b, n = client.register(), client.register(), client.register()
    group = group_chat(client, a, b, name="adds")
    failures = []
    rounds = 40
    additions = one_after_another(server, a, failures, [
        r for _ in range(rounds) for r in (
            ("POST", f"/api/chats/{group}/members/", {"user_id": uid(n)}, 201),
            ("DELETE", f"/api/chats/{group}/members/{uid(n)}/", None, 204))])

    sends_and_deletions = sends_each_then_deleted(server, group, b, b, rounds, failures)

    async def main():
        a_user, n_user = await user_ws(server, a), await user_ws(server, n)
        await asyncio.to_thread(side_by_side, additions, sends_and_deletions)
        assert not failures, failures
        await read_until(a_user, lambda seen: sum(f.get("type") == "delete" for f in seen) == rounds)
        await read_until(n_user, lambda seen: sum(f.get("type") == "chat_created" for f in seen) == rounds)
        deleted_at = {f["message_id"]: f["seq"] for f in a_user.seen if f.get("type") == "delete"}
        for f in n_user.seen:
            if f.get("type") != "chat_created" or f["chat"]["last_message"] is None:
                continue
            last = f["chat"]["last_message"]
            if last["id"] in deleted_at and deleted_at[last["id"]] < f["seq"]:
                assert last["text"] == "" and last["is_deleted"], (f["seq"], last, deleted_at[last["id"]])
        check_seq_order(n_user)
        await a_user.close()
        await n_user.close()

    run(main())


def test_chat_created_reaches_connected_members(server, client):
    a, b = client.register(), client.register()

    async def main():
        a_user, b_user = await user_ws(server, a), await user_ws(server, b)
        # A group created while its members are connected.
        r = client.post("/api/chats/", token=a["access"],
                        json={"type": "group", "name": "live", "member_ids": [uid(b)]})
        assert r.status_code == 201, r.text
        group = r.json()["id"]
        # The chat object is the one each member sees: nothing read, nothing unread, no
        # message yet (API.md's chat object, per-member fields included).
        for who, ws in ((a, a_user), (b, b_user)):
            f = await ws.until(is_("chat_created", chat_id=group))
            assert set(f) == {"type", "chat_id", "chat", "seq"}, f
            assert f["chat"]["id"] == group and f["chat"]["name"] == "live" and f["chat"]["type"] == "group", f
            assert sorted(m["id"] for m in f["chat"]["members"]) == sorted([uid(a), uid(b)]), f
            assert f["chat"] == client.get(f"/api/chats/{group}/", token=who["access"]).json(), f
            assert (f["chat"]["last_message"], f["chat"]["unread_count"], f["chat"]["last_read_message_id"]) == (
                None, 0, 0), f
        m1 = rest_send(client, a, group, "first in the new chat")["id"]
        # ...and the new chat is live on their user sockets at once.
        for ws in (a_user, b_user):
            f = await ws.until(is_("message", message_id=m1))
            assert f["chat_id"] == group
        assert await b_user.until(is_("unread", chat_id=group)) == {"type": "unread", "chat_id": group,
                                                                    "unread_count": 1}
        for ws in (a_user, b_user):
            check_seq_order(ws)
            await ws.close()

    run(main())


def test_membership_and_chat_changes_reach_sockets(server, client):
    a, b, c = client.register(), client.register(), client.register()
    group = group_chat(client, a, b, name="members")

    async def main():
        a_user, b_user, c_user = await user_ws(server, a), await user_ws(server, b), await user_ws(server, c)
        b_chat = await chat_ws(server, b, group)
        # A member added while connected: member_added to everyone, chat_created to them.
        r = client.post(f"/api/chats/{group}/members/", token=a["access"], json={"user_id": uid(c)})
        assert r.status_code == 201, r.text
        want = {"type": "member_added", "chat_id": group, "user_id": uid(c), "role": "member"}
        for ws in (a_user, b_user, c_user, b_chat):
            f = await ws.until(is_("member_added", chat_id=group))
            assert without_seq(f) == want, (ws.name, f)
        f = await c_user.until(is_("chat_created", chat_id=group))
        assert set(f) == {"type", "chat_id", "chat", "seq"}, f
        assert sorted(m["id"] for m in f["chat"]["members"]) == sorted([uid(a), uid(b), uid(c)]), f
        # The new member's count of the chat follows (as the store has it), then it hears
        # the chat, with unread counts.
        assert await c_user.until(is_("unread", chat_id=group)) == {"type": "unread", "chat_id": group,
                                                                    "unread_count": 0}
        m2 = rest_send(client, b, group, "welcome")["id"]
        await c_user.until(is_("message", message_id=m2))
        assert await c_user.until(is_("unread", chat_id=group)) == {"type": "unread", "chat_id": group,
                                                                    "unread_count": 1}
        assert await a_user.until(is_("unread", chat_id=group)) == {"type": "unread", "chat_id": group,
                                                                    "unread_count": 1}
        # A role change: member_updated.
        r = client.patch(f"/api/chats/{group}/members/{uid(c)}/", token=a["access"], json={"role": "admin"})
        assert r.status_code == 200, r.text
        for ws in (a_user, b_user, c_user, b_chat):
            f = await ws.until(is_("member_updated", chat_id=group))
            assert without_seq(f) == {"type": "member_updated", "chat_id": group, "user_id": uid(c),
                                      "role": "admin"}, (ws.name, f)
        # Renamed: chat_updated with the chat object.
        r = client.patch(f"/api/chats/{group}/", token=a["access"], json={"name": "renamed"})
        assert r.status_code == 200, r.text
        for ws in (a_user, b_user, c_user, b_chat):
            f = await ws.until(is_("chat_updated", chat_id=group))
            assert f["chat"]["name"] == "renamed" and f["chat"]["id"] == group, f
        for ws in (a_user, b_user, c_user):
            check_seq_order(ws)
        check_no_seq(b_chat)
        # Deleted: chat_deleted (chat_id, no chat object) to every member; a chat socket of
        # the deleted chat gets it too and is then closed.
        r = client.request("DELETE", f"/api/chats/{group}/", token=a["access"])
        assert r.status_code == 204, r.text
        for ws in (a_user, b_user, c_user):
            f = await ws.until(is_("chat_deleted", chat_id=group))
            assert without_seq(f) == {"type": "chat_deleted", "chat_id": group} and isinstance(f["seq"], int), f
        assert await b_chat.closed() == 1000
        assert [x for x in b_chat.seen if x["type"] == "chat_deleted"] == [
            {"type": "chat_deleted", "chat_id": group}], b_chat.seen
        for ws in (a_user, b_user, c_user):
            await ws.close()

    run(main())


# ---- 3. REST actions reach sockets; per-chat order --------------------------------------------

def test_rest_actions_reach_sockets(server, client):
    a, b = client.register(), client.register()
    chat = private_chat(client, a, b)
    group = group_chat(client, a, b, name="rest-fwd")

    async def main():
        a_user = await user_ws(server, a)
        a_chat = await chat_ws(server, a, chat)
        b_user = await user_ws(server, b)
        b_chat = await chat_ws(server, b, chat)
        everyone = [a_user, a_chat, b_user, b_chat]

        cid = "rest-" + uuid.uuid4().hex
        m1 = rest_send(client, a, chat, "over rest", client_id=cid)
        for ws in everyone:
            f = await ws.until(is_("message", message_id=m1["id"]))
            check_message(f, user_socket=ws in (a_user, b_user), message_id=m1["id"], chat_id=chat,
                          text="over rest", sender=a, client_id=cid if ws in (a_user, a_chat) else None)
            assert f["created_at"] == m1["created_at"], f
        # The idempotent retry over REST commits nothing and broadcasts nothing.
        again = rest_send(client, a, chat, "over rest", expect=200, client_id=cid)
        assert again["id"] == m1["id"]
        m2 = rest_send(client, b, chat, "b over rest")
        for ws in everyone:
            await ws.until(is_("message", message_id=m2["id"]))

        r = client.patch(f"/api/messages/{m1['id']}/", token=a["access"], json={"text": "patched"})
        assert r.status_code == 200, r.text
        for ws in everyone:
            f = await ws.until(is_("edit", message_id=m1["id"]))
            assert without_seq(f) == {"type": "edit", "chat_id": chat, "message_id": m1["id"],
                                      "text": "patched", "edited_at": r.json()["edited_at"]}, f
        r = client.post("/api/pinned/", token=a["access"], json={"message_id": m1["id"]})
        assert r.status_code == 201, r.text
        pin_id = r.json()["id"]
        for ws in everyone:
            f = await ws.until(is_("pin", message_id=m1["id"]))
            assert without_seq(f) == {"type": "pin", "chat_id": chat, "message_id": m1["id"], "pinned_by": uid(a)}, f
        r = client.request("DELETE", f"/api/pinned/{pin_id}/", token=b["access"])
        assert r.status_code == 204, r.text
        for ws in everyone:
            f = await ws.until(is_("unpin", message_id=m1["id"]))
            assert without_seq(f) == {"type": "unpin", "chat_id": chat, "message_id": m1["id"]}, f
        r = client.post(f"/api/chats/{chat}/read/", token=a["access"], json={"last_read_message_id": m2["id"]})
        assert r.status_code == 200 and r.json() == {"unread_count": 0}, r.text
        for ws in everyone:
            f = await ws.until(is_("read", user_id=uid(a)))
            assert without_seq(f) == {"type": "read", "chat_id": chat, "user_id": uid(a),
                                      "last_read_message_id": m2["id"]}, f
        r = client.post(f"/api/messages/{m1['id']}/forward/", token=b["access"], json={"target_chat_id": group})
        assert r.status_code == 201, r.text
        fwd = r.json()["id"]
        for ws in (a_user, b_user):
            f = await ws.until(is_("message", message_id=fwd))
            check_message(f, user_socket=True, message_id=fwd, chat_id=group, text="patched", sender=b,
                          client_id=None, forwarded_from=m1["id"])
        r = client.request("DELETE", f"/api/messages/{m1['id']}/?for=me", token=b["access"])
        assert r.status_code == 204, r.text
        f = await b_user.until(is_("delete", message_id=m1["id"]))
        assert without_seq(f) == {"type": "delete", "chat_id": chat, "message_id": m1["id"], "for_me": True}, f
        r = client.request("DELETE", f"/api/messages/{m2['id']}/", token=b["access"])
        assert r.status_code == 204, r.text
        for ws in everyone:
            f = await ws.until(is_("delete", message_id=m2["id"]))
            assert without_seq(f) == {"type": "delete", "chat_id": chat, "message_id": m2["id"]}, f
        for ws in everyone:
            await ws.drain(0.3)
        # for_me reached b's user socket only.
        for ws in (a_user, a_chat, b_chat):
            assert not [f for f in ws.seen if f.get("for_me")], (ws.name, ws.seen)
        # Exactly one copy of m1 everywhere (the REST retry broadcast nothing).
        for ws in everyone:
            assert len([f for f in ws.seen if is_("message", message_id=m1["id"])(f)]) == 1, ws.seen
        for ws in (a_user, b_user):
            check_seq_order(ws)
        for ws in (a_chat, b_chat):
            check_no_seq(ws)
            assert not [f for f in ws.seen if f.get("chat_id") == group], (ws.name, ws.seen)
        for ws in everyone:
            await ws.close()

    run(main())


def test_per_chat_order_with_two_senders(server, client):
    a, b, c = client.register(), client.register(), client.register()
    group = group_chat(client, a, b, c, name="order")
    per_sender = 30

    def blast(who, tag):
        me = Client(server)
        return [rest_send(me, who, group, f"{tag} {i}")["id"] for i in range(per_sender)]

    async def main():
        sockets = [await user_ws(server, a), await chat_ws(server, a, group),
                   await user_ws(server, b), await chat_ws(server, b, group),
                   await user_ws(server, c), await chat_ws(server, c, group)]
        sent_a, sent_b = await asyncio.gather(asyncio.to_thread(blast, a, "a"), asyncio.to_thread(blast, b, "b"))
        all_ids = sorted(sent_a + sent_b)
        assert len(set(all_ids)) == 2 * per_sender
        for ws in sockets:
            frames = await ws.take(is_("message"), 2 * per_sender, timeout=10)
            ids = [f["message_id"] for f in frames]
            assert ids == all_ids, (ws.name, ids)
        for ws in sockets:
            await ws.drain(0.3)
            assert len([f for f in ws.seen if f["type"] == "message"]) == 2 * per_sender
            await ws.close()

    run(main())


# ---- 4. presence -------------------------------------------------------------------------------

def test_presence(server, client):
    a, b = client.register(), client.register()
    chat = private_chat(client, a, b)

    def public(who):
        r = client.get(f"/api/users/{uid(who)}/", token=b["access"])
        assert r.status_code == 200, r.text
        return r.json()

    async def main():
        b_user = await user_ws(server, b)
        b_chat = await chat_ws(server, b, chat)
        assert public(a)["is_online"] is False
        a1 = await user_ws(server, a)
        f = await b_user.until(is_("user_status", user_id=uid(a)))
        assert set(f) == {"type", "user_id", "is_online", "last_seen"} and f["is_online"] is True, f
        g = await b_chat.until(is_("user_status", user_id=uid(a)))
        assert g == f, (f, g)
        assert public(a)["is_online"] is True
        # A second socket: no new user_status.
        a2 = await chat_ws(server, a, chat)
        await a2.drain(0.2)
        await a1.close()  # one of two closes: still online, no user_status
        await b_user.drain(0.7)
        statuses = [x for x in b_user.seen if x["type"] == "user_status" and x["user_id"] == uid(a)]
        assert statuses == [f], statuses
        assert public(a)["is_online"] is True
        # The last one closes: offline with a last_seen.
        await a2.close()
        f = await b_user.until(is_("user_status", user_id=uid(a), is_online=False))
        assert set(f) == {"type", "user_id", "is_online", "last_seen"}, f
        assert isinstance(f["last_seen"], str) and ISO.match(f["last_seen"]), f
        g = await b_chat.until(is_("user_status", user_id=uid(a), is_online=False))
        assert g == f
        p = public(a)
        assert p["is_online"] is False and p["last_seen"] == f["last_seen"], (p, f)
        # A's own sockets never got A's status; b's user socket got exactly on, off.
        statuses = [x["is_online"] for x in b_user.seen if x["type"] == "user_status" and x["user_id"] == uid(a)]
        assert statuses == [True, False], statuses
        assert not [x for x in a1.seen + a2.seen if x["type"] == "user_status" and x["user_id"] == uid(a)]
        await b_user.close()
        await b_chat.close()

    run(main())


@pytest.mark.parametrize("end", ["stop", "kill"])
def test_users_online_when_the_server_ends_keep_a_last_seen(make_server, end):
    """SIGTERM closes every socket with 1001: the users online then were last seen then,
    and say so after the restart (one node records it as it stops; with Redis, the node
    that sweeps the stopped node's entries does, here the restarted one, which sweeps
    every PRESENCE_TTL / 3). SIGKILL leaves no chance to record anything: a single node
    records its users online as last seen every PRESENCE_TTL, and with Redis the sweep
    does as for a stop. Either way a user online at the end has a last_seen from around
    then afterwards: not none, and not one from before they came online."""
    ttl = 2
    server = make_server(PRESENCE_TTL=ttl)
    client = Client(server)
    a, b = client.register(), client.register()
    private_chat(client, a, b)

    def me(who):
        r = client.get("/api/users/me/", token=who["access"])
        assert r.status_code == 200, r.text
        return r.json()

    async def main():
        ws = await user_ws(server, a)
        assert me(a)["is_online"] is True  # last_seen: none yet, or a single node's record
        if end == "kill":
            await asyncio.sleep(ttl * 2 + 0.5)  # past two records
        ended = time.time()
        await asyncio.to_thread(server.stop if end == "stop" else server.kill)
        code = await ws.closed(timeout=5)
        assert end == "kill" or code == 1001, (ws.name, code)
        await asyncio.to_thread(server.start)
        return ended

    ended = run(main())
    deadline = time.time() + 15
    while (p := me(a))["last_seen"] is None and time.time() < deadline:
        time.sleep(0.2)
    assert p["is_online"] is False and p["last_seen"] is not None, p
    seen = datetime.datetime.fromisoformat(p["last_seen"].replace("Z", "+00:00")).timestamp()
    # After a kill, the newest record made it if its write was not late; else the one
    # before (each timer starts after the last write), still after the socket opened.
    earliest = ended - 1 if end == "stop" else ended - 2 * ttl - 0.5
    assert earliest <= seen <= time.time(), (ended, p)
    assert me(b)["last_seen"] is None  # b had no socket: never seen

# ---- 5. several sockets of one user -------------------------------------------------------------

def test_two_sockets_of_one_user(server, client):
    a, b = client.register(), client.register()
    chat = private_chat(client, a, b)

    async def main():
        a1 = await user_ws(server, a)
        a2 = await user_ws(server, a)
        b1 = await user_ws(server, b)
        cid = "two-" + uuid.uuid4().hex
        await a1.send({"type": "message", "chat_id": chat, "text": "from socket 1", "client_id": cid})
        f1 = await a1.until(is_("message", client_id=cid))
        f2 = await a2.until(is_("message", message_id=f1["message_id"]))
        fb = await b1.until(is_("message", message_id=f1["message_id"]))
        assert f2 == f1 and f2["client_id"] == cid, (f1, f2)
        assert fb["client_id"] is None and without_seq(fb) == dict(without_seq(f1), client_id=None)
        cid2 = "two-rest-" + uuid.uuid4().hex
        m = rest_send(client, a, chat, "from rest", client_id=cid2)
        for ws in (a1, a2):
            f = await ws.until(is_("message", message_id=m["id"]))
            assert f["client_id"] == cid2, f
        assert (await b1.until(is_("message", message_id=m["id"])))["client_id"] is None
        # b's message reaches both of a's sockets.
        mb = rest_send(client, b, chat, "to both")["id"]
        await a1.until(is_("message", message_id=mb))
        await a2.until(is_("message", message_id=mb))
        for ws in (a1, a2, b1):
            await ws.close()

    run(main())


def test_socket_limit_per_user_closes_the_oldest(make_server):
    s = make_server(WS_MAX_SOCKETS_PER_USER=2)
    c = Client(s)
    a, b = c.register(), c.register()
    chat = private_chat(c, a, b)

    async def main():
        s1 = await user_ws(s, a)
        s2 = await chat_ws(s, a, chat)
        s3 = await user_ws(s, a)
        assert await s1.closed() == 1008
        await s2.ping()
        await s3.ping()
        m = rest_send(c, b, chat, "still here")["id"]
        await s2.until(is_("message", message_id=m))
        await s3.until(is_("message", message_id=m))
        # Another user is not affected by a's limit.
        b1, b2 = await user_ws(s, b), await user_ws(s, b)
        await b1.ping()
        await b2.ping()
        for ws in (s2, s3, b1, b2):
            await ws.close()

    run(main())


def test_a_handshake_bound_to_fail_closes_no_socket_of_the_user(make_server):
    """A handshake with a WebSocket version other than 13 (or none) is refused (426 naming
    13, or 400) before the socket counts among the user's: at the limit, it used to close
    their oldest socket, though it never opened."""
    s = make_server(WS_MAX_SOCKETS_PER_USER=2)
    c = Client(s)
    a, b = c.register(), c.register()
    chat = private_chat(c, a, b)

    def handshake(version_line):
        key = base64.b64encode(os.urandom(16)).decode()
        return raw_upgrade(s.port, a["access"], f"Host: 127.0.0.1:{s.port}\r\n"
                           f"Sec-WebSocket-Key: {key}\r\n{version_line}", timeout=5)

    async def main():
        s1, s2 = await user_ws(s, a), await chat_ws(s, a, chat)
        answer = handshake("Sec-WebSocket-Version: 8\r\n")
        assert answer.startswith(b"HTTP/1.1 426"), answer
        assert b"\r\nSec-WebSocket-Version: 13\r\n" in answer, answer
        answer = handshake("")
        assert answer.startswith(b"HTTP/1.1 400"), answer
        m = rest_send(c, b, chat, "both still open")["id"]
        for ws in (s1, s2):
            await ws.until(is_("message", message_id=m))
            await ws.ping()
        # A handshake that opens still closes the oldest, as the limit says.
        s3 = await user_ws(s, a)
        assert await s1.closed() == 1008
        for ws in (s2, s3):
            await ws.close()

    run(main())


def test_a_closing_socket_acts_on_nothing_more(make_server):
    """Once the server has closed a socket (here: the user's oldest, past the limit), what
    the client still sends on it before reading the close is not acted on: no message is
    stored without the acknowledgement that could no longer reach it."""
    s = make_server(WS_MAX_SOCKETS_PER_USER=1)
    c = Client(s)
    a, b = c.register(), c.register()
    chat = private_chat(c, a, b)
    old = raw_handshake(s, a["access"], rcvbuf=65536)

    async def main():
        newer = await user_ws(s, a)  # closes `old` with 1008 before its own 101
        old.sendall(client_frame(1, json.dumps(
            {"type": "message", "chat_id": chat, "text": "after the close", "client_id": "late-1"}).encode()))
        await asyncio.sleep(0.5)
        await newer.close()

    run(main())
    data, _ = read_to_eof(old, 3)
    old.close()
    frames = read_raw_frames(data)
    closes = [struct.unpack(">H", p[:2])[0] for op, p in frames if op == 8]
    assert closes == [1008], frames
    assert not [p for op, p in frames if op == 1 and b'"message"' in p], frames
    assert history(c, b, chat) == {}


# ---- 6. delivered, read status and unread --------------------------------------------------------

def test_delivered_read_and_unread(server, client):
    a, b = client.register(), client.register()
    chat = private_chat(client, a, b)

    async def main():
        a_user = await user_ws(server, a)
        a_chat = await chat_ws(server, a, chat)
        m1 = rest_send(client, a, chat, "while b is away")["id"]
        await a_user.until(is_("message", message_id=m1))
        assert history(client, a, chat)[m1]["status"] == "sent"

        b_user = await user_ws(server, b)
        b_chat = await chat_ws(server, b, chat)
        m2 = rest_send(client, a, chat, "b is here")["id"]
        await b_user.until(is_("message", message_id=m2))
        f = await b_user.until(is_("unread", chat_id=chat))
        assert f == {"type": "unread", "chat_id": chat, "unread_count": 2}, f
        want = {"type": "delivered", "chat_id": chat, "user_id": uid(b), "last_delivered_message_id": m2}
        f = await a_user.until(is_("delivered", user_id=uid(b)), timeout=3)
        assert without_seq(f) == want and isinstance(f["seq"], int), f
        f = await a_chat.until(is_("delivered", user_id=uid(b)), timeout=3)
        assert f == want, f
        f = await b_user.until(is_("delivered", user_id=uid(b)), timeout=3)
        assert without_seq(f) == want, f
        h = history(client, a, chat)
        assert (h[m1]["status"], h[m2]["status"]) == ("delivered", "delivered"), h
        # b reads over the socket: read to everyone, unread 0 for b.
        await b_chat.send({"type": "read", "last_read_message_id": m2})
        want_read = {"type": "read", "chat_id": chat, "user_id": uid(b), "last_read_message_id": m2}
        f = await a_user.until(is_("read", user_id=uid(b)))
        assert without_seq(f) == want_read, f
        f = await b_user.until(is_("unread", chat_id=chat))
        assert f == {"type": "unread", "chat_id": chat, "unread_count": 0}, f
        h = history(client, a, chat)
        assert (h[m1]["status"], h[m2]["status"]) == ("read", "read"), h
        # A message from b raises no unread for b, but does for a.
        m3 = rest_send(client, b, chat, "reply")["id"]
        f = await a_user.until(is_("unread", chat_id=chat))
        assert f == {"type": "unread", "chat_id": chat, "unread_count": 1}, f
        # a reads over REST: a's unread drops to 0.
        r = client.post(f"/api/chats/{chat}/read/", token=a["access"], json={"last_read_message_id": m3})
        assert r.status_code == 200 and r.json() == {"unread_count": 0}, r.text
        f = await a_user.until(is_("unread", chat_id=chat))
        assert f == {"type": "unread", "chat_id": chat, "unread_count": 0}, f
        for ws in (a_user, a_chat, b_user, b_chat):
            await ws.drain(0.4)
        # unread is for the user socket only, and a's own messages never raised a's count.
        for ws in (a_chat, b_chat):
            assert not [x for x in ws.seen if x["type"] == "unread"], (ws.name, ws.seen)
        assert [x["unread_count"] for x in a_user.seen if x["type"] == "unread"] == [1, 0], a_user.seen
        assert [x["unread_count"] for x in b_user.seen if x["type"] == "unread"] == [2, 0], b_user.seen
        # Deletions change the count too: for everyone (by the sender) and for_me (by b).
        m4 = rest_send(client, a, chat, "to be deleted")["id"]
        m5 = rest_send(client, a, chat, "to be hidden")["id"]
        for n in (1, 2):
            assert await b_user.until(is_("unread", chat_id=chat)) == {"type": "unread", "chat_id": chat,
                                                                       "unread_count": n}
        r = client.request("DELETE", f"/api/messages/{m4}/", token=a["access"])
        assert r.status_code == 204, r.text
        f = await b_user.until(is_("unread", chat_id=chat))
        assert f == {"type": "unread", "chat_id": chat, "unread_count": 1}, f
        await b_user.send({"type": "delete", "chat_id": chat, "message_id": m5, "for_me": True})
        f = await b_user.until(is_("unread", chat_id=chat))
        assert f == {"type": "unread", "chat_id": chat, "unread_count": 0}, f
        r = client.get(f"/api/chats/{chat}/", token=b["access"])
        assert r.json()["unread_count"] == 0, r.text
        for ws in (a_user, a_chat, b_user, b_chat):
            await ws.close()

    run(main())


def test_a_read_that_moves_nothing_is_answered_to_its_socket_alone(server, client):
    """A `read` at or below the watermark commits nothing: the sending socket gets the read
    state as it stands, without seq, and no other socket hears of it (REST answers 200)."""
    a, b = client.register(), client.register()
    chat = private_chat(client, a, b)

    async def main():
        m1 = rest_send(client, a, chat, "first")["id"]
        m2 = rest_send(client, a, chat, "second")["id"]
        a_user = await user_ws(server, a)
        b_user = await user_ws(server, b)
        b_chat = await chat_ws(server, b, chat)
        await b_chat.send({"type": "read", "last_read_message_id": m2})
        moved = {"type": "read", "chat_id": chat, "user_id": uid(b), "last_read_message_id": m2}
        f = await a_user.until(is_("read", user_id=uid(b)))
        assert without_seq(f) == moved and isinstance(f["seq"], int), f
        assert await b_chat.until(is_("read", user_id=uid(b))) == moved
        # b replies, then marks the earlier message read (the order a client may well use).
        reply = rest_send(client, b, chat, "reply")["id"]
        await a_user.until(is_("message", message_id=reply))
        for ws in (a_user, b_user, b_chat):
            await ws.drain(0.3)
            ws.seen.clear()
            ws.buffer.clear()
        at_reply = {"type": "read", "chat_id": chat, "user_id": uid(b), "last_read_message_id": reply}
        for value in (m1, m2, 10 ** 12):
            await b_chat.send({"type": "read", "last_read_message_id": value})
            f = await b_chat.until(is_("read", user_id=uid(b)))
            assert f == at_reply, (value, f)  # no seq: nothing was logged
        await b_user.send({"type": "read", "chat_id": chat, "last_read_message_id": m1})
        assert await b_user.until(is_("read", user_id=uid(b))) == at_reply
        for ws in (a_user, b_user, b_chat):
            await ws.drain(0.5)
        assert not [x for x in a_user.seen if x["type"] == "read"], a_user.seen
        assert [x for x in b_user.seen if x["type"] == "read"] == [at_reply], b_user.seen
        assert [x for x in b_chat.seen if x["type"] == "read"] == [at_reply] * 3, b_chat.seen
        r = client.get("/api/events/?since=0", token=a["access"])
        assert [e["last_read_message_id"] for e in r.json()["results"] if e["type"] == "read"] == [m2], r.text
        for ws in (a_user, b_user, b_chat):
            await ws.close()

    run(main())


# ---- 7. resume ---------------------------------------------------------------------------------

def max_seq(ws):
    return max((f["seq"] for f in ws.seen if isinstance(f.get("seq"), int)), default=0)


def test_resume_ends_with_the_unread_counts_it_changed(server, client):
    """Live `unread` frames only cover what arrives while connected: after a resume's replay
    come the counts of the chats whose replayed events may have changed them (messages, the
    user's own reads, deletions), and only those (with the chat of the event resumed from,
    when that one changes counts: test_a_resume_from_an_event_sends_its_chats_count_again;
    here it is an edit)."""
    a, b, c = client.register(), client.register(), client.register()
    busy = private_chat(client, a, b)
    quiet = private_chat(client, c, b)
    kept = rest_send(client, c, quiet, "read before leaving")["id"]
    reply = rest_send(client, b, quiet, "a reply, which reads it")["id"]
    r = client.patch(f"/api/messages/{kept}/", token=c["access"], json={"text": "edited once"})
    assert r.status_code == 200, r.text

    async def main():
        since = client.get("/api/events/?since=0", token=b["access"]).json()["seq"]
        assert since > 0
        for i in range(3):
            rest_send(client, a, busy, f"missed {i}")
        # In the quiet chat only an edit and the other member's read: b's count did not change.
        r = client.patch(f"/api/messages/{kept}/", token=c["access"], json={"text": "edited"})
        assert r.status_code == 200, r.text
        r = client.post(f"/api/chats/{quiet}/read/", token=c["access"], json={"last_read_message_id": reply})
        assert r.status_code == 200, r.text

        b2 = await user_ws(server, b, sync=False, since=since)
        replayed = []
        while (f := await b2.next())["type"] != "synced":
            replayed.append(key(f))
        assert ("edit", kept, False) in replayed and ("read", reply, False) in replayed, replayed
        # The replay's delivery of the missed messages is logged too, and its `delivered`
        # may come live before the count, which is read from the store.
        while (f := await b2.next())["type"] == "delivered":
            pass
        assert f == {"type": "unread", "chat_id": busy, "unread_count": 3}, f
        # Still live afterwards, from that count on.
        rest_send(client, a, busy, "live")
        assert await b2.until(is_("unread", chat_id=busy)) == {"type": "unread", "chat_id": busy,
                                                               "unread_count": 4}
        await b2.drain(0.4)
        assert not [x for x in b2.seen if x["type"] == "unread" and x["chat_id"] == quiet], b2.seen
        # A socket opened without since= replays nothing and announces no counts: it loads them
        # through REST.
        b3 = await user_ws(server, b)
        await b3.drain(0.4)
        assert not [x for x in b3.seen if x["type"] == "unread"], b3.seen
        # An empty since= is left out, as GET /api/events/ reads it: the same as none.
        b4 = await user_ws(server, b, since="")
        await b4.drain(0.4)
        assert not [x for x in b4.seen if x["type"] in ("unread", "synced") or "seq" in x], b4.seen
        for ws in (b2, b3, b4):
            await ws.close()

    run(main())


def test_resume_replays_exactly_the_missed_events(server, client):
    a, b = client.register(), client.register()
    chat = private_chat(client, a, b)

    async def main():
        b1 = await user_ws(server, b)
        first = [rest_send(client, a, chat, f"before {i}")["id"] for i in range(3)]
        for m in first:
            await b1.until(is_("message", message_id=m))
        await b1.until(is_("delivered", user_id=uid(b), last_delivered_message_id=first[-1]), timeout=3)
        await b1.drain(0.4)
        since = max_seq(b1)
        await b1.close()
        await asyncio.sleep(0.3)

        # Missed while away: a's messages, b's own message (with its client_id, and the read of
        # a's messages that it makes), an edit, a pin.
        missed = [rest_send(client, a, chat, f"missed {i}")["id"] for i in range(4)]
        bcid = "resume-" + uuid.uuid4().hex
        mine = rest_send(client, b, chat, "b from another device", client_id=bcid)["id"]
        edit = client.patch(f"/api/messages/{missed[0]}/", token=a["access"], json={"text": "missed 0 edited"})
        assert edit.status_code == 200
        r = client.post("/api/pinned/", token=a["access"], json={"message_id": missed[1]})
        assert r.status_code == 201

        b2 = await user_ws(server, b, sync=False, since=since)
        replay = []
        while True:
            f = await b2.next()
            if f["type"] == "synced":
                synced = f
                break
            replay.append(f)
        assert set(synced) == {"type", "seq"}, synced
        assert [key(f) for f in replay] == (
            [("message", m, False) for m in missed] + [("message", mine, False), ("read", mine, False),
                                                        ("edit", missed[0], False), ("pin", missed[1], False)]), replay
        seqs = [f["seq"] for f in replay]
        assert seqs == sorted(set(seqs)) and seqs[0] > since and synced["seq"] >= seqs[-1], (since, seqs, synced)
        for f in replay[:4]:
            check_message(f, user_socket=True, message_id=f["message_id"], chat_id=chat, sender=a,
                          text=f["text"], client_id=None)
            i = missed.index(f["message_id"])
            # The log holds each message's text as it now is: the edited one's new text.
            assert f["text"] == ("missed 0 edited" if i == 0 else f"missed {i}"), f
        check_message(replay[4], user_socket=True, message_id=mine, chat_id=chat, sender=b,
                      text="b from another device", client_id=bcid)
        assert without_seq(replay[5]) == {"type": "read", "chat_id": chat, "user_id": uid(b),
                                          "last_read_message_id": mine}
        assert without_seq(replay[6]) == {"type": "edit", "chat_id": chat, "message_id": missed[0],
                                          "text": "missed 0 edited", "edited_at": edit.json()["edited_at"]}
        assert without_seq(replay[7]) == {"type": "pin", "chat_id": chat, "message_id": missed[1],
                                          "pinned_by": uid(a)}
        # Then the count the replay changed: b's own message read a's, so nothing is unread.
        f = await b2.next()
        assert f == {"type": "unread", "chat_id": chat, "unread_count": 0}, f
        # The same replay over HTTP.
        h = client.get(f"/api/events/?since={since}", token=b["access"]).json()
        assert [e["seq"] for e in h["results"]] == seqs, h
        # Then live events.
        live = rest_send(client, a, chat, "live")["id"]
        f = await b2.until(is_("message", message_id=live))
        assert f["seq"] > synced["seq"], (f, synced)
        await b2.until(is_("delivered", user_id=uid(b), last_delivered_message_id=live), timeout=3)
        await b2.drain(0.4)
        check_seq_order(b2)
        assert len([x for x in b2.seen if x["type"] == "synced"]) == 1
        await b2.close()

    run(main())


def test_a_chat_left_replays_only_as_the_event_that_ended_it(server, client):
    """What a member saw of a chat they have since left (its chat_created, their own hides)
    is not replayed: only their member_removed. Added back, they get that, then the chat
    from the new chat_created on."""
    a, c, d = client.register(), client.register(), client.register()
    g = group_chat(client, a, c, name="left")

    def replay(since):
        r = client.get(f"/api/events/?since={since}&limit=1000", token=d["access"])
        assert r.status_code == 200, r.text
        return [(e["type"], e.get("message_id"), e.get("user_id")) for e in r.json()["results"]
                if e.get("chat_id") == g]

    since = client.get("/api/events/?since=0", token=d["access"]).json()["seq"]
    m1 = rest_send(client, a, g, "before d")["id"]
    r = client.post(f"/api/chats/{g}/members/", token=a["access"], json={"user_id": uid(d)})
    assert r.status_code == 201, r.text
    r = client.request("DELETE", f"/api/messages/{m1}/?for=me", token=d["access"])
    assert r.status_code == 204, r.text
    m2 = rest_send(client, a, g, "while d is in")["id"]
    r = client.request("DELETE", f"/api/chats/{g}/members/{uid(d)}/", token=a["access"])
    assert r.status_code == 204, r.text
    assert replay(since) == [("member_removed", None, uid(d))]

    r = client.post(f"/api/chats/{g}/members/", token=a["access"], json={"user_id": uid(d)})
    assert r.status_code == 201, r.text
    m3 = rest_send(client, a, g, "d is back")["id"]
    types = replay(since)
    assert types[0] == ("member_removed", None, uid(d)), types
    assert [t for t, _, _ in types[1:3]] == ["chat_created", "member_added"], types
    assert ("message", m3, None) in types and ("message", m2, None) not in types, types


def test_resume_with_messages_sent_during_the_replay(server, client):
    a, b = client.register(), client.register()
    chat = private_chat(client, a, b)
    total = 30
    sent = []
    started = threading.Event()

    def blast():
        me = Client(server)
        for i in range(total):
            sent.append(rest_send(me, a, chat, f"concurrent {i}")["id"])
            if i == 9:
                started.set()
            time.sleep(0.01)

    async def main():
        b1 = await user_ws(server, b)
        m0 = rest_send(client, a, chat, "warm-up")["id"]
        await b1.until(is_("message", message_id=m0))
        await b1.until(is_("delivered", user_id=uid(b), last_delivered_message_id=m0), timeout=3)
        await b1.drain(0.3)
        since = max_seq(b1)
        await b1.close()
        await asyncio.sleep(0.3)

        worker = asyncio.create_task(asyncio.to_thread(blast))
        await asyncio.to_thread(started.wait, 10)
        b2 = await user_ws(server, b, sync=False, since=since)
        await b2.until(is_("synced"), timeout=10)
        await worker
        assert len(sent) == total
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while {f["message_id"] for f in b2.seen if f["type"] == "message"} < set(sent) and loop.time() < deadline:
            await b2.drain(0.2)
        await b2.drain(0.5)
        got = [f["message_id"] for f in b2.seen if f["type"] == "message"]
        assert got == sorted(sent), (got, sent)  # each exactly once, in order
        types = [f["type"] for f in b2.seen]
        assert types.count("synced") == 1, types
        cut = types.index("synced")
        synced_seq = b2.seen[cut]["seq"]
        assert all(f["seq"] <= synced_seq for f in b2.seen[:cut] if "seq" in f), b2.seen
        assert all(f["seq"] > synced_seq for f in b2.seen[cut + 1:] if "seq" in f), (synced_seq, b2.seen)
        check_seq_order(b2)
        # None missing: every logged event up to the newest one seen.
        seen_seqs = [f["seq"] for f in b2.seen if f["type"] in LOGGED]
        h = client.get(f"/api/events/?since={since}&limit=1000", token=b["access"]).json()
        expected = [e["seq"] for e in h["results"] if e["seq"] <= max(seen_seqs)]
        assert seen_seqs == expected, (seen_seqs, expected)
        await b2.close()

    run(main())


def unread_stays_exact_under_sends(senders_at, reader_at, client):
    """Three members send to a group while the reader's socket opens: in turn a resume
    (since=) and a fresh socket. A count read from the store while messages commit holds
    the ones committed before the read, which the hub may hear only after the answer, or
    before the socket joined it: none may be counted twice or missed. Once the sends stop,
    the socket's last count is the store's. Senders post through `senders_at` (servers, in
    turn); the reader's socket is on `reader_at`."""
    a, b, c, d = (client.register() for _ in range(4))
    chat = group_chat(client, a, b, c, d)
    rounds, per_sender = 6, 15

    def blast(who, at, tag, started):
        me = Client(at)
        for i in range(per_sender):
            rest_send(me, who, chat, f"{tag} {i}")
            if i == 3:
                started.set()
            time.sleep(0.003)

    async def main():
        since = client.get("/api/events/?since=0", token=b["access"]).json()["seq"]
        for r in range(rounds):
            started = threading.Event()
            workers = [asyncio.create_task(asyncio.to_thread(blast, who, senders_at[i % len(senders_at)],
                                                             f"round {r}", started))
                       for i, who in enumerate((a, c, d))]
            await asyncio.to_thread(started.wait, 10)
            if r % 2 == 0:
                ws = await user_ws(reader_at, b, sync=False, since=since)
                await ws.until(is_("synced"), timeout=10)
            else:
                ws = await user_ws(reader_at, b, sync=False)
            await asyncio.gather(*workers)
            await ws.drain(1.0)
            counts = [f["unread_count"] for f in ws.seen if f["type"] == "unread" and f["chat_id"] == chat]
            want = client.get(f"/api/chats/{chat}/", token=b["access"]).json()["unread_count"]
            assert want == 3 * per_sender * (r + 1)
            assert counts and counts[-1] == want, (r, counts[-12:], want)
            since = max(since, max_seq(ws))
            await ws.close()

    run(main())


def test_unread_counts_stay_exact_when_opening_during_sends(server, client):
    unread_stays_exact_under_sends([server], server, client)


def test_since_on_a_chat_socket_does_not_leak_other_chats(server, client):
    """Resume is a user-socket feature; a per-chat socket carries no seq and only its chat.
    A `since` there may be refused (400) or ignored, or replay that chat alone without seq."""
    a, b, d = client.register(), client.register(), client.register()
    mine = private_chat(client, a, b)
    other = private_chat(client, a, d)
    rest_send(client, a, mine, "in this chat")
    rest_send(client, a, other, "in another chat")

    async def main():
        try:
            ws = await chat_ws(server, a, mine, sync=False, since=0)
        except InvalidStatusCode as e:
            assert e.status_code == 400
            return
        await ws.ping()
        await ws.drain(0.5)
        leaked = [f for f in ws.seen if "chat_id" in f and f["chat_id"] != mine]
        assert not leaked, leaked
        assert not [f for f in ws.seen if "seq" in f and f["type"] != "synced"], ws.seen
        await ws.close()

    run(main())


def test_resume_at_or_past_the_newest_just_syncs(server, client):
    a, b = client.register(), client.register()
    chat = private_chat(client, a, b)
    rest_send(client, a, chat, "something")
    time.sleep(0.3)

    async def main():
        # Read as the sender: b's fetching would deliver the message, a new event.
        newest = client.get("/api/events/?since=0", token=a["access"]).json()["seq"]
        ws = await user_ws(server, b, sync=False, since=newest)
        assert await ws.next() == {"type": "synced", "seq": newest}
        await ws.ping()
        await ws.close()
        # A cursor ahead of the log (a database restored from a backup) moves back to the
        # newest seq, and what is logged next reaches the socket.
        ahead = client.get(f"/api/events/?since={newest + 1000000}", token=b["access"]).json()
        assert ahead["results"] == [] and ahead["seq"] == newest, ahead
        ws = await user_ws(server, b, sync=False, since=newest + 1000000)
        assert await ws.next() == {"type": "synced", "seq": newest}
        await ws.ping()
        assert [x["type"] for x in ws.seen] == ["synced", "pong"], ws.seen
        sent = rest_send(client, a, chat, "after the resume")
        f = await ws.until(is_("message"))
        assert f["message_id"] == sent["id"] and f["seq"] > newest, f
        await ws.close()

    run(main())


def test_a_replay_delivers_what_it_carries(server, client):
    """Messages a member gets by resuming (on the user socket, or fetched from
    GET /api/events/) are delivered, as if they had arrived live."""
    a, b = client.register(), client.register()
    chat = private_chat(client, a, b)
    since = client.get("/api/events/?since=0", token=b["access"]).json()["seq"]
    m1 = rest_send(client, a, chat, "sent while b was away")["id"]
    assert history(client, a, chat)[m1]["status"] == "sent"

    async def main():
        a_user = await user_ws(server, a)
        b_user = await user_ws(server, b, sync=False, since=since)
        await b_user.until(is_("synced"))
        f = await a_user.until(is_("delivered", user_id=uid(b)), timeout=3)
        assert f["last_delivered_message_id"] == m1 and f["chat_id"] == chat, f
        await b_user.close()
        await asyncio.sleep(0.3)
        # Fetched over HTTP: delivered as well.
        after = client.get("/api/events/?since=0", token=b["access"]).json()["seq"]
        m2 = rest_send(client, a, chat, "fetched over HTTP")["id"]
        assert history(client, a, chat)[m2]["status"] == "sent"
        feed = client.get(f"/api/events/?since={after}", token=b["access"]).json()["results"]
        assert [e["message_id"] for e in feed if e["type"] == "message"] == [m2], feed
        f = await a_user.until(is_("delivered", user_id=uid(b), last_delivered_message_id=m2),
                               timeout=3)
        assert history(client, a, chat)[m2]["status"] == "delivered"
        # One's own messages in a replay deliver nothing to anyone (a is offline now).
        await a_user.close()
        await asyncio.sleep(0.3)
        mine = rest_send(client, b, chat, "from b")["id"]
        client.get(f"/api/events/?since={after}", token=b["access"])
        b_again = await user_ws(server, b, sync=False, since=after)
        await b_again.until(is_("synced"))
        await asyncio.sleep(0.5)
        assert history(client, b, chat)[mine]["status"] == "sent"
        await b_again.close()

    run(main())


def test_sending_reads_the_chat_on_every_device(server, client):
    """Sending moves the sender's read watermark to their message, the newest of the chat:
    their unread count for it drops to 0, and every user socket of theirs is told."""
    a, b = client.register(), client.register()
    chat = private_chat(client, a, b)

    async def main():
        phone = await user_ws(server, b)
        laptop = await user_ws(server, b)
        for i in range(2):
            rest_send(client, a, chat, f"unanswered {i}")
        for ws in (phone, laptop):
            for n in (1, 2):
                f = await ws.until(is_("unread", chat_id=chat))
                assert f["unread_count"] == n, f
        await phone.send({"type": "message", "chat_id": chat, "text": "a reply", "client_id": "r1"})
        for ws in (phone, laptop):
            f = await ws.until(is_("unread", chat_id=chat))
            assert f == {"type": "unread", "chat_id": chat, "unread_count": 0}, f
        listed = next(c for c in client.get("/api/chats/", token=b["access"]).json() if c["id"] == chat)
        assert listed["unread_count"] == 0, listed
        # Already at 0, a further reply sends no count.
        rest_send(client, b, chat, "and another")
        await phone.drain(0.5)
        assert [x["unread_count"] for x in phone.seen if x["type"] == "unread"] == [1, 2, 0], phone.seen
        for ws in (phone, laptop):
            await ws.close()

    run(main())


def test_a_reply_over_unread_messages_is_a_read(server, client):
    """A send moves its sender's read watermark (API.md); when that passes messages of
    others, they hear a `read` as for any read, live and in a replay, and the status in
    REST agrees. A send with nothing unread before it logs no `read`."""
    a, b = client.register(), client.register()
    chat = private_chat(client, a, b)
    since = client.get("/api/events/?since=0", token=a["access"]).json()["seq"]

    async def main():
        a_user = await user_ws(server, a)
        a_chat = await chat_ws(server, a, chat)
        x = rest_send(client, a, chat, "unread by b")["id"]
        y = rest_send(client, b, chat, "a reply, no read first")["id"]
        want = {"type": "read", "chat_id": chat, "user_id": uid(b), "last_read_message_id": y}
        f = await a_user.until(is_("read", user_id=uid(b)))
        assert without_seq(f) == want and isinstance(f["seq"], int), f
        assert await a_chat.until(is_("read", user_id=uid(b))) == want
        assert history(client, a, chat)[x]["status"] == "read"
        # Over the socket the same; then a second reply, with nothing unread, is no read.
        x2 = rest_send(client, a, chat, "again")["id"]
        b_user = await user_ws(server, b)
        await b_user.send({"type": "message", "chat_id": chat, "text": "second reply"})
        y2 = (await a_user.until(lambda f: f["type"] == "message" and f["text"] == "second reply"))[
            "message_id"]
        f = await a_user.until(is_("read", user_id=uid(b)))
        assert f["last_read_message_id"] == y2 and y2 > x2, f
        rest_send(client, b, chat, "nothing unread before this one")
        await a_user.drain(0.5)
        reads = [f["last_read_message_id"] for f in a_user.seen
                 if f["type"] == "read" and f["user_id"] == uid(b)]
        assert reads == [y, y2], a_user.seen
        for ws in (a_user, a_chat, b_user):
            await ws.close()

    run(main())
    replayed = client.get(f"/api/events/?since={since}", token=a["access"]).json()["results"]
    assert [e["last_read_message_id"] for e in replayed
            if e["type"] == "read" and e["user_id"] == uid(b)] == [
        e["message_id"] for e in replayed
        if e["type"] == "message" and e["sender_id"] == uid(b)][:2], replayed


def test_a_message_hidden_for_me_stays_hidden_live(server, client):
    """A message hidden with for_me is gone for that member everywhere: a later edit, pin,
    unpin or delete for everyone of it reaches the other members' sockets but neither of the
    hider's, live or in a replay (as their history and pins leave it out)."""
    a, b = client.register(), client.register()
    chat = private_chat(client, a, b)
    x = rest_send(client, a, chat, "soon hidden by b")["id"]
    kept = rest_send(client, a, chat, "not hidden")["id"]
    r = client.request("DELETE", f"/api/messages/{x}/?for=me", token=b["access"])
    assert r.status_code == 204, r.text
    since = client.get("/api/events/?since=0", token=b["access"]).json()["seq"]

    async def main():
        a_user, b_user = await user_ws(server, a), await user_ws(server, b)
        a_chat, b_chat = await chat_ws(server, a, chat), await chat_ws(server, b, chat)
        assert client.patch(f"/api/messages/{x}/", token=a["access"],
                            json={"text": "edited after the hide"}).status_code == 200
        pin = client.post("/api/pinned/", token=a["access"], json={"message_id": x})
        assert pin.status_code == 201, pin.text
        assert client.request("DELETE", f"/api/pinned/{pin.json()['id']}/",
                              token=a["access"]).status_code == 204
        assert client.request("DELETE", f"/api/messages/{x}/", token=a["access"]).status_code == 204
        # A change to a message b still sees, as a marker that b's sockets are up to date.
        assert client.patch(f"/api/messages/{kept}/", token=a["access"],
                            json={"text": "edited too"}).status_code == 200
        for ws in (a_user, a_chat):
            for kind in ("edit", "pin", "unpin", "delete"):
                await ws.until(is_(kind, message_id=x))
        for ws in (a_user, a_chat, b_user, b_chat):
            await ws.until(is_("edit", message_id=kept))
        for ws in (b_user, b_chat):
            about_x = [f for f in ws.seen if f.get("message_id") == x]
            assert about_x == [], (ws.name, about_x)
        for ws in (a_user, a_chat, b_user, b_chat):
            await ws.close()

    run(main())
    def about_messages(who):
        events = client.get(f"/api/events/?since={since}", token=who["access"]).json()["results"]
        return [(e["type"], e["message_id"]) for e in events
                if e["type"] in ("edit", "pin", "unpin", "delete")]

    assert about_messages(b) == [("edit", kept)]
    # The delete superseded the edit of x in the log (see relog), so a replays it alone.
    assert about_messages(a) == [("pin", x), ("unpin", x), ("delete", x), ("edit", kept)]


async def replayed(ws):
    """What a resuming socket gets before `synced`, which ends it. Closed meanwhile: fails
    with the close code and how much had come."""
    got = []
    while True:
        try:
            f = await ws.next(timeout=5)
        except AssertionError as e:
            raise AssertionError(f"{e}; close code {ws.conn.close_code}; {len(got)} frames replayed") from None
        if f["type"] == "synced":
            return got
        got.append(f)


@pytest.mark.parametrize("limit", ["frames", "bytes"])
def test_replay_longer_than_the_send_queue_is_not_a_slow_reader(make_server, limit):
    """A client that reads promptly but missed more events than WS_MAX_QUEUED_FRAMES, or
    more bytes of them than WS_MAX_QUEUED_BYTES, must still get the whole replay: otherwise
    it is cut off on every reconnect and never resumes. (Bytes: 60 messages of 4,096
    control characters, about 24 KB each once escaped, against 64 KiB.)"""
    s = make_server(WS_MAX_QUEUED_FRAMES=32) if limit == "frames" else make_server(WS_MAX_QUEUED_BYTES=65536)
    c = Client(s)
    a, b = c.register(), c.register()
    chat = private_chat(c, a, b)
    since = c.get("/api/events/?since=0", token=b["access"]).json()["seq"]
    text = (lambda i: f"missed {i}") if limit == "frames" else (lambda i: f"{i}" + "\x01" * 4090)
    ids = [rest_send(c, a, chat, text(i))["id"] for i in range(60)]

    async def main():
        ws = await user_ws(s, b, sync=False, since=since)
        got = await replayed(ws)
        assert [f["message_id"] for f in got if f["type"] == "message"] == ids
        await ws.ping()
        await ws.close()

    run(main())


@pytest.mark.parametrize("members", [250, 400], ids=["over-half", "over-all"])
def test_a_replayed_frame_larger_than_half_the_byte_limit_waits_for_an_empty_queue(make_server, members):
    """A replay sends each frame once the queue has room for it within half of
    WS_MAX_QUEUED_BYTES. A frame larger than that half (a chat_updated naming 250 members
    of long names: about 48 KB, against 64 KiB) went out on top of a queue up to half full
    (a 24 KB message just before it), passed the limit, and cut the socket off on every
    reconnect. It now waits for the queue to empty, and a frame counts at most half of the
    limit: one naming 400 members (about 77 KB) was cut off even alone."""
    s = make_server(WS_MAX_QUEUED_BYTES=65536, PASSWORD_HASH_MEMORY_KIB=8, PASSWORD_HASH_OPS=1)
    c = Client(s)
    a, b = c.register(), c.register()
    members = [c.register(username=unique_name("m") + "x" * 130, email=unique_name() + "@example.com")
               for _ in range(members)]
    group = group_chat(c, a, b, *members, name="big")
    since = c.get("/api/events/?since=0", token=b["access"]).json()["seq"]
    sent = rest_send(c, a, group, "\x01" * 4096)["id"]  # about 24 KB of JSON
    for name in ("bigger", "biggest"):
        r = c.patch(f"/api/chats/{group}/", token=a["access"], json={"name": name})
        assert r.status_code == 200, r.text

    async def main():
        ws = await user_ws(s, b, sync=False, since=since)
        got = [(f["type"], f.get("message_id") or f["chat"]["name"], len(json.dumps(f)))
               for f in await replayed(ws)]
        assert [g[:2] for g in got] == [("message", sent), ("chat_updated", "bigger"),
                                        ("chat_updated", "biggest")], got
        assert got[1][2] > (32768 if len(members) < 400 else 65536), got[1:]  # past half / all
        await ws.ping()
        await ws.close()

    run(main())


def test_a_large_event_held_while_a_resume_replays_goes_out_after_it(make_server):
    """Live events wait while a resume replays. One larger than WS_MAX_QUEUED_BYTES (a
    chat_updated naming 400 members of long names, about 77 KB against 64 KiB), held while
    the client had yet to read a replay of 140 messages, went out after `synced` and cut
    the socket off, though the queue held nothing else: every reconnect ended the same
    way until the event was old enough to be replayed."""
    s = make_server(WS_MAX_QUEUED_BYTES=65536, PASSWORD_HASH_MEMORY_KIB=8, PASSWORD_HASH_OPS=1)
    c = Client(s)
    a, b = c.register(), c.register()
    members = [c.register(username=unique_name("m") + "x" * 130, email=unique_name() + "@example.com")
               for _ in range(400)]
    group = group_chat(c, a, b, *members, name="big")
    chat = private_chat(c, a, b)
    since = c.get("/api/events/?since=0", token=b["access"]).json()["seq"]
    sent = [rest_send(c, b, chat, f"{i}" + "\x01" * 4090)["id"] for i in range(140)]
    raw = raw_handshake(s, b["access"], query=f"&since={since}")  # reads nothing for now
    try:
        time.sleep(1.5)  # the replay waits for the reader
        r = c.patch(f"/api/chats/{group}/", token=a["access"], json={"name": "bigger"})
        assert r.status_code == 200, r.text
        time.sleep(0.5)
        updated = lambda data: any(op == 1 and b'"chat_updated"' in p for op, p in read_raw_frames(data))
        data, eof = read_to_eof(raw, 60, until=updated)
    finally:
        raw.close()
    frames = [json.loads(p) for op, p in read_raw_frames(data) if op == 1]
    assert not eof, [f["type"] for f in frames][-5:]
    assert [f["message_id"] for f in frames if f["type"] == "message"] == sent
    types = [f["type"] for f in frames if f["type"] not in ("message", "unread")]
    assert types == ["synced", "chat_updated"], types
    updated = [f for f in frames if f["type"] == "chat_updated"][0]
    assert updated["chat"]["name"] == "bigger" and len(json.dumps(updated)) > 65536

def test_hundreds_of_split_frames_queued_for_a_slow_reader_all_go_out(make_server):
    """A chat_updated goes out as a shared part and the socket's own fields (three buffers
    with its header). 400 of them queued behind a full send buffer once took one sendmsg
    past IOV_MAX (1,024 buffers): it failed, and the socket was dropped as if the peer had
    gone."""
    # The reader sends nothing for as long as the test takes: no idle cut-off meanwhile.
    s = make_server(PASSWORD_HASH_MEMORY_KIB=8, PASSWORD_HASH_OPS=1, WS_IDLE_TIMEOUT=600)
    c = Client(s)
    a, b = c.register(), c.register()
    chat = private_chat(c, a, b)
    group = group_chat(c, a, b, name="n0")
    raw = raw_handshake(s, b["access"])  # reads nothing for now
    try:
        # About 5 MB of messages fill the kernel's buffers; what follows waits in the queue.
        sent = [rest_send(c, a, chat, f"{i}" + "\x01" * 4090)["id"] for i in range(200)]
        names = [f"n{i}" for i in range(1, 401)]
        for name in names:
            r = c.patch(f"/api/chats/{group}/", token=a["access"], json={"name": name})
            assert r.status_code == 200, r.text
        data, eof = b"", False
        deadline = time.time() + 30
        while time.time() < deadline:
            more, eof = read_to_eof(raw, 1)
            data += more
            frames = [json.loads(p) for op, p in read_raw_frames(data) if op == 1]
            got = [f["chat"]["name"] for f in frames if f.get("type") == "chat_updated"]
            if eof or len(got) >= len(names):
                break
    finally:
        raw.close()
    assert not eof, "the socket was dropped"
    assert [f["message_id"] for f in frames if f.get("type") == "message"] == sent
    assert got == names, (len(got), got[-3:])


def test_resume_from_a_pruned_log_requires_resync(make_server):
    s = make_server()
    c = Client(s)
    a, b = c.register(), c.register()
    chat = private_chat(c, a, b)
    for i in range(3):
        rest_send(c, a, chat, f"old {i}")
    top = s.db.scalar("SELECT max(seq) FROM events")
    assert top and top > 0
    s.db.execute("DELETE FROM events")
    s.db.execute("UPDATE event_log_state SET pruned_through = ?", top)

    async def main():
        ws = await user_ws(s, b, sync=False, since=0)
        assert await ws.next() == {"type": "resync_required"}
        # The cursor to keep is the newest seq, though the log holds none of it any more.
        assert await ws.next() == {"type": "synced", "seq": top}
        await ws.drain(0.3)
        assert not [f for f in ws.seen if f["type"] == "message"], ws.seen
        await ws.close()
        ws = await user_ws(s, b, sync=False, since=top - 1)
        assert await ws.next() == {"type": "resync_required"}
        await ws.close()
        # Exactly at the cut: nothing is missing, so no resync.
        ws = await user_ws(s, b, sync=False, since=top)
        f = await ws.next()
        assert f == {"type": "synced", "seq": top}, f
        await ws.close()

    run(main())


# ---- 8. limits and shutdown --------------------------------------------------------------------

def test_frame_size_and_rate_limits(make_server):
    s = make_server(WS_MAX_FRAME_BYTES=1024, WS_EVENTS_PER_SECOND=2, WS_EVENT_BURST=5)
    c = Client(s)
    a, b = c.register(), c.register()
    chat = private_chat(c, a, b)

    async def main():
        # A frame just under the limit is fine; one over it closes with 1009.
        ws = await user_ws(s, a, sync=False)
        await ws.send(json.dumps({"type": "ping", "pad": "x" * 900}))
        assert await ws.next() == {"type": "pong"}
        await ws.send(json.dumps({"type": "message", "chat_id": chat, "text": "y" * 2000}))
        assert await ws.closed() == 1009
        assert history(c, a, chat) == {}
        # Flooding past burst 5: close 1008 after five answers.
        ws = await chat_ws(s, a, chat, sync=False)
        for _ in range(20):
            await ws.send({"type": "ping"})
        assert await ws.closed() == 1008
        pongs = [f for f in ws.seen if f["type"] == "pong"]
        assert len(pongs) == 5, ws.seen
        # Other sockets of the same user are not affected.
        ws = await user_ws(s, a, sync=False)
        await ws.ping()
        await ws.close()

    run(main())


def read_raw_frames(data):
    """Server-to-client messages (unmasked frames, fragments joined) in `data`:
    [(opcode, payload)]; an incomplete last message is left out."""
    out, i = [], 0
    current_op, parts = None, []
    while i + 2 <= len(data):
        fin, op, n = data[i] & 0x80, data[i] & 0x0F, data[i + 1] & 0x7F
        i += 2
        if n == 126:
            if i + 2 > len(data):
                break
            n = struct.unpack(">H", data[i:i + 2])[0]
            i += 2
        elif n == 127:
            if i + 8 > len(data):
                break
            n = struct.unpack(">Q", data[i:i + 8])[0]
            i += 8
        if i + n > len(data):
            break
        payload = data[i:i + n]
        i += n
        if op >= 8:  # control frames are never fragmented
            out.append((op, payload))
            continue
        if op != 0:
            current_op, parts = op, []
        parts.append(payload)
        if fin:
            out.append((current_op, b"".join(parts)))
    return out


def raw_handshake(server, token, rcvbuf=4096, query=""):
    """A WebSocket client that does the handshake and then reads nothing: a tiny receive
    buffer, so the server's queue for it grows. `query` is added to the user socket's URL
    (e.g. "&since=0")."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect(("127.0.0.1", server.port))
    req = (f"GET /ws/?token={token}{query} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n")
    s.sendall(req.encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        ch = s.recv(1)
        assert ch, head
        head += ch
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def read_to_eof(s, timeout, until=None, linger=1.0):
    """What `s` sends within `timeout` seconds, and whether it ended. With `until` (a test
    of the data so far), reading stops `linger` seconds after the data first passes it: a
    loaded machine may take long to send it, and an end that follows shows in the linger."""
    data = bytearray()
    deadline = time.time() + timeout
    s.settimeout(0.5)
    while time.time() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return bytes(data), True
        if not chunk:
            return bytes(data), True
        data += chunk
        if until is not None and until(bytes(data)):
            until = None
            deadline = min(deadline, time.time() + linger)
    return bytes(data), False


def test_a_lagging_reader_gets_every_message_and_the_last_unread_count(make_server):
    """A user socket that reads, but slower than messages come, so its queue rarely empties:
    written frames are dropped from the queue's front as it goes on (the unread state
    frames' places moving with it), and still every message arrives once, in order, and the
    last unread count is the true one."""
    s = make_server(WS_MAX_QUEUED_BYTES=64 << 20, WS_MAX_QUEUED_FRAMES=100000)
    c = Client(s)
    a, reader = c.register(), c.register()
    group = group_chat(c, a, reader, name="lagging")
    n = 600
    raw = raw_handshake(s, reader["access"])
    got = bytearray()
    done = threading.Event()

    def read_slowly():
        raw.settimeout(0.5)
        while not done.is_set():
            try:
                chunk = raw.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                return
            got.extend(chunk)
            time.sleep(0.002)  # slower than the messages come

    t = threading.Thread(target=read_slowly)
    t.start()
    # 16 KB each: far more than the kernel's buffers, so the server's queue holds the rest.
    sent = [rest_send(c, a, group, f"m{k} " + "\U0001F600" * 4000)["id"] for k in range(n)]
    last = f'"text":"m{n - 1} '.encode()
    deadline = time.time() + 60
    while time.time() < deadline and last not in got[-100_000:]:
        time.sleep(0.2)
    time.sleep(0.5)  # the last unread count follows the last message
    done.set()
    t.join()
    raw.close()
    frames = [json.loads(p) for op, p in read_raw_frames(bytes(got)) if op == 1]
    ids = [f["message_id"] for f in frames if f["type"] == "message" and f["chat_id"] == group]
    assert ids == sent, (len(ids), len(sent))
    unread = [f["unread_count"] for f in frames if f["type"] == "unread" and f["chat_id"] == group]
    assert unread and unread[-1] == n, unread[-5:]
    assert unread == sorted(unread), "an older count came after a newer one"


def test_live_events_held_during_a_stalled_replay_are_bounded(make_server):
    """A socket resumes with since= and reads nothing: its replay waits for room, and the
    live events held meanwhile count against the queue limits like the queue itself, so
    the socket is cut off as a slow reader instead of holding memory until it goes idle."""
    s = make_server(WS_MAX_QUEUED_FRAMES=64)
    c = Client(s)
    a, slow = c.register(), c.register()
    group = group_chat(c, a, slow, name="stalled replay")
    for _ in range(400):  # 6.4 MB of replay, more than the kernel's buffers take
        rest_send(c, a, group, "\U0001F600" * 4000)
    sock = raw_handshake(s, slow["access"], query="&since=0")
    time.sleep(1)  # the replay fills what the kernel takes, then waits
    for k in range(100):  # more live events than the queue may hold
        rest_send(c, a, group, f"live {k}")

    def held_drop():
        return [line for line in s.read_log().splitlines() if "too slow" in line and "held" in line]
    deadline = time.time() + 10
    while not held_drop() and time.time() < deadline:  # still reading nothing
        time.sleep(0.2)
    assert held_drop(), s.read_log()[-3000:]
    data, eof = read_to_eof(sock, 20)
    sock.close()
    assert eof, ("the stalled socket is still open", len(data))
    assert b'"type":"synced"' not in data, "the replay finished"


def test_a_close_the_peer_never_reads_ends_the_connection_anyway(make_server):
    """The server closes a socket (here for flooding) whose queue the peer is not reading:
    the close frame waits behind the queue. The peer keeps sending pings, so it never goes
    idle; still the connection ends a few seconds after the close began."""
    s = make_server(WS_MAX_QUEUED_BYTES=64 << 20, WS_MAX_QUEUED_FRAMES=100000)
    c = Client(s)
    a, slow = c.register(), c.register()
    group = group_chat(c, a, slow, name="unread close")
    text = "\U0001F600" * 4000  # 16 KB a frame
    raw = raw_handshake(s, slow["access"])
    for _ in range(500):  # 8 MB: far more than the kernel's buffers hold
        rest_send(c, a, group, text)
    # Past the event rate limit: the server closes with 1008, behind 8 MB unread.
    def frame(opcode, payload):  # masked with a zero key: the payload as it is
        return bytes([0x80 | opcode, 0x80 | len(payload)]) + b"\0\0\0\0" + payload

    raw.sendall(b"".join(frame(1, b'{"type":"ping"}') for _ in range(100)))
    t0 = time.time()
    ended = None
    while time.time() - t0 < 30:
        try:
            raw.sendall(frame(9, b"still here"))
        except OSError:
            ended = time.time() - t0
            break
        time.sleep(0.25)
    raw.close()
    assert ended is not None, "the connection was still open 30 s after the close"
    # About 5 s of waiting for the close, then a keepalive tick or two, and room for a slow
    # machine on top.
    assert ended < 20, ended
    assert "close not taken" in s.read_log()


@pytest.mark.parametrize("limit_env", [{"WS_MAX_QUEUED_FRAMES": 32}, {"WS_MAX_QUEUED_BYTES": 65536}],
                         ids=["frames", "bytes"])
def test_slow_reader_is_cut_off_and_others_keep_receiving(make_server, limit_env):
    s = make_server(**limit_env)
    c = Client(s)
    a, b, slow = c.register(), c.register(), c.register()
    group = group_chat(c, a, b, slow, name="slow")
    text = "\U0001F600" * 4000  # 16 KB a frame
    limit = 400

    async def main():
        b_user = await user_ws(s, b)
        raw = await asyncio.to_thread(raw_handshake, s, slow["access"])
        await b_user.until(is_("user_status", user_id=uid(slow), is_online=True))
        sent = []
        stop = threading.Event()

        def blast():
            me = Client(s)
            while len(sent) < limit and not stop.is_set():
                sent.append(rest_send(me, a, group, text)["id"])

        worker = asyncio.create_task(asyncio.to_thread(blast))
        try:
            # The slow reader is cut off: presence sees its last socket go.
            await b_user.until(is_("user_status", user_id=uid(slow), is_online=False), timeout=40)
        finally:
            stop.set()
            await worker
        # The other member got every message, in order.
        got = [f["message_id"] for f in await b_user.take(is_("message", chat_id=group), len(sent), timeout=15)]
        assert got == sent
        # The slow socket's TCP connection was closed after far fewer frames.
        data, eof = await asyncio.to_thread(read_to_eof, raw, 10)
        raw.close()
        assert eof, "the slow reader's connection is still open"
        frames = read_raw_frames(data)
        received = [json.loads(p) for op, p in frames if op == 1]
        assert len([f for f in received if f["type"] == "message"]) < len(sent), len(received)
        await b_user.close()

    run(main(), timeout=80)
    drops = [line for line in s.read_log().splitlines() if "too slow" in line]
    assert drops, s.read_log()[-2000:]
    if "WS_MAX_QUEUED_BYTES" in limit_env:
        # Cut off by its bytes (64 KiB), long before its 4,096 frames.
        queued = int(re.search(r"queued=(\d+)", drops[0]).group(1))
        assert queued < 32, drops[0]


def test_a_socket_cut_off_as_it_opens_is_closed(make_server):
    """Events held for a socket while it opens count against the slow-reader limits (64 KiB
    of frames here). A socket cut off before its upgrade was answered kept its connection:
    the cut-off's drop ran before the session owned the connection, closing nothing, and a
    dropped session is never written to or swept, so the client got its 101 and then
    nothing, for as long as it kept the connection open (and its session stayed in the
    hub). Every socket cut off must end."""
    s = make_server(WS_MAX_QUEUED_BYTES=65536, PASSWORD_HASH_MEMORY_KIB=8, PASSWORD_HASH_OPS=1)
    c = Client(s)
    a = c.register()
    slow = [c.register() for _ in range(6)]
    # In many chats, and changing membership while they open, so that opening takes a while:
    # a socket reads its chats, and again when one of its membership changes is heard.
    others = [c.register() for _ in range(120)]
    for u in slow:
        for o in others:
            private_chat(c, u, o)
    group = group_chat(c, a, *slow, name="flood")
    spare = group_chat(c, a, others[0], name="spare")
    text = "\x01" * 4096  # 24 KiB of JSON a frame: three pass the limit
    stop = threading.Event()
    opened = []

    def drops(held_only):
        return sum(1 for line in s.read_log().splitlines()
                   if "too slow" in line and (not held_only or "held" in line))

    def opener():
        # Until a few were cut off while their events were held (at most 15 sockets a user,
        # so the per-user limit evicts none), then until every socket was cut off.
        for k in range(90):
            opened.append(raw_handshake(s, slow[k % len(slow)]["access"]))
            if k % 10 == 9 and drops(held_only=True) >= 3:
                break
        deadline = time.time() + 30
        while drops(held_only=False) < len(opened) and time.time() < deadline:
            time.sleep(0.2)

    def churn():
        me = Client(s)
        while not stop.is_set():
            for u in slow:
                me.post(f"/api/chats/{spare}/members/", token=a["access"], json={"user_id": uid(u)})
                me.request("DELETE", f"/api/chats/{spare}/members/{uid(u)}/", token=a["access"])

    def blast():
        me = Client(s)
        while not stop.is_set():
            rest_send(me, a, group, text)

    async def main():
        work = [asyncio.create_task(asyncio.to_thread(f)) for f in (blast, blast, blast, blast, churn)]
        try:
            await asyncio.to_thread(opener)
        finally:
            stop.set()
            await asyncio.gather(*work)

    run(main(), timeout=150)
    assert drops(held_only=False) >= len(opened), (drops(held_only=False), len(opened))
    still_open = []
    for i, sock in enumerate(opened):
        data, eof = read_to_eof(sock, 3)
        sock.close()
        if not eof:
            still_open.append((i, len(data)))
    assert not still_open, f"{len(still_open)} of {len(opened)} sockets, each (index, bytes read): {still_open}"


def test_idle_timeout(make_server):
    s = make_server(WS_IDLE_TIMEOUT=2)
    c = Client(s)
    a, b = c.register(), c.register()
    private_chat(c, a, b)

    async def main():
        # websockets answers the server's keep-alive pings: the socket stays open.
        alive = await user_ws(s, a)
        silent = await asyncio.to_thread(raw_handshake, s, b["access"], 65536)
        t0 = time.time()
        # A client that answers nothing (not even pings) is dropped after the idle timeout.
        data, eof = await asyncio.to_thread(read_to_eof, silent, 8)
        silent.close()
        assert eof, "a silent client was not dropped"
        assert 1.5 <= time.time() - t0 <= 6, time.time() - t0
        assert 9 in [op for op, _ in read_raw_frames(data)], data  # it was pinged first
        await alive.until(is_("user_status", user_id=uid(b), is_online=False), timeout=10)
        await alive.drain(max(0.0, 3.5 - (time.time() - t0)))
        await alive.ping()
        await alive.close()

    run(main())


def test_sigterm_closes_sockets_with_1001(make_server):
    s = make_server()
    c = Client(s)
    a, b = c.register(), c.register()
    chat = private_chat(c, a, b)

    async def main():
        sockets = [await user_ws(s, a), await chat_ws(s, a, chat), await user_ws(s, b)]
        t0 = time.time()
        s.proc.send_signal(signal.SIGTERM)
        for ws in sockets:
            assert await ws.closed(timeout=10) == 1001, ws.name
        await asyncio.to_thread(s.proc.wait, 10)
        assert time.time() - t0 < 10
        assert s.proc.returncode == 0, s.read_log()[-2000:]

    run(main())


def server_socket_option(pid, peer, level, option):
    """getsockopt on chatd's end of the TCP connection from `peer` (the client's address),
    through a copy of chatd's descriptor (pidfd_getfd): what chatd set, not what a client
    can infer from timing."""
    libc = ctypes.CDLL(None, use_errno=True)
    sys_pidfd_getfd = 438
    pidfd = os.pidfd_open(pid)
    try:
        for name in os.listdir(f"/proc/{pid}/fd"):
            try:
                if not os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                    continue
            except OSError:
                continue
            fd = libc.syscall(sys_pidfd_getfd, pidfd, int(name), 0)
            if fd < 0:
                err = ctypes.get_errno()
                assert err != 1, "pidfd_getfd: not permitted (the tests run as chatd's user or root)"
                continue
            s = socket.socket(fileno=fd)
            try:
                if s.type == socket.SOCK_STREAM and s.family == socket.AF_INET and s.getpeername() == peer:
                    return s.getsockopt(level, option)
            except OSError:
                pass
            finally:
                s.close()  # the copy only: chatd's descriptor stays open
    finally:
        os.close(pidfd)
    raise AssertionError(f"no socket of chatd has the peer {peer}")


def test_sockets_send_without_nagle_delay(server):
    """Every accepted socket has TCP_NODELAY: with Nagle's algorithm a frame written while the
    previous one is unacknowledged waits for the client's (delayed, up to 40 ms) ACK."""
    c = Client(server)
    alice = c.register()

    async def go():
        ws = await user_ws(server, alice)
        peer = ws.conn.transport.get_extra_info("sockname")[:2]
        nodelay = server_socket_option(server.proc.pid, peer, socket.IPPROTO_TCP, socket.TCP_NODELAY)
        await ws.close()
        return nodelay

    assert run(go()) != 0
    with socket.create_connection(("127.0.0.1", server.port)) as plain:
        plain.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert plain.recv(100).startswith(b"HTTP/1.1 200")
        peer = plain.getsockname()[:2]
        assert server_socket_option(server.proc.pid, peer, socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
