"""Several chatd nodes as one server (PostgreSQL + Redis only): three processes on their own
ports share one database and one Redis prefix. Clients on different nodes chat; presence
and typing cross nodes; a node dies (SIGKILL) and its clients resume on another; Redis
and PostgreSQL go away and come back while chatd keeps running.

Every wait is bounded. Frames are read with the helpers of test_websocket (a socket is
"synced" by a ping/pong round trip once connected)."""
import asyncio
import concurrent.futures
import os
import queue
import random
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid

import pytest
import requests
from websockets.exceptions import ConnectionClosed

from conftest import Client, Database, _conninfo, free_port
from test_operations import scrape, value
from test_throttle import throttled_count
from test_websocket import (ERROR_KEYS, LOGGED, chat_ws, check_seq_order, connect, group_chat,
                            is_, max_seq, private_chat, rest_send, run, uid, uname,
                            unread_stays_exact_under_sends, user_ws)

pytestmark = pytest.mark.postgres_only


# ---- helpers ----------------------------------------------------------------------------------

def wait_for(what, predicate, timeout=15.0, interval=0.1):
    """Polls `predicate` until it returns something true; returns that value."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = predicate()
        except requests.RequestException as e:
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")


def is_online(client, viewer, who):
    r = client.get(f"/api/users/{uid(who)}/", token=viewer["access"])
    assert r.status_code == 200, r.text
    return r.json()["is_online"]


def history_ids(client, who, chat_id):
    """Every message id of the chat, oldest first (REST, newest first, paged by `before`)."""
    ids, before = [], None
    while True:
        q = f"/api/messages/?chat={chat_id}&limit=200" + (f"&before={before}" if before else "")
        r = client.get(q, token=who["access"])
        assert r.status_code == 200, r.text
        page = r.json()
        ids += [m["id"] for m in page["results"]]
        if not page["has_more"] or not page["results"]:
            return sorted(ids)
        before = page["results"][-1]["id"]


def messages_in(frames, chat_id):
    return [f for f in frames if f.get("type") == "message" and f.get("chat_id") == chat_id]


async def collect_messages(ws, counts, timeout=60.0):
    """Reads `ws` until it has received counts[chat_id] message frames for each chat;
    returns {chat_id: [frame, ...]} in arrival order."""
    got = {c: [] for c in counts}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout

    def wanted(f):
        return f.get("type") == "message" and f.get("chat_id") in counts \
            and len(got[f["chat_id"]]) < counts[f["chat_id"]]
    wanted.__name__ = f"messages {counts}"
    while any(len(got[c]) < n for c, n in counts.items()):
        left = deadline - loop.time()
        if left <= 0:
            raise AssertionError(f"{ws.name}: got {({c: len(v) for c, v in got.items()})} of {counts} "
                                 f"messages within {timeout}s")
        f = await ws.until(wanted, timeout=left)
        got[f["chat_id"]].append(f)
    return got


async def no_more_messages(ws, duration=0.5):
    """After everything expected arrived: no further (duplicate) message frames."""
    await ws.drain(duration)
    extra = [f for f in ws.buffer if f.get("type") == "message"]
    assert not extra, (ws.name, extra)


async def saw(ws, pred, timeout=10.0):
    """Waits for a frame matching `pred` unless the socket already received one (consumed
    or not)."""
    if not any(pred(f) for f in ws.seen):
        await ws.until(pred, timeout=timeout)


def message_ids_seen(ws, chat_id):
    return [f["message_id"] for f in messages_in(ws.seen, chat_id)]


async def wait_seen(ws, chat_id, ids, timeout=30.0):
    """Reads `ws` until every id in `ids` arrived as a message of `chat_id`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not set(ids) <= set(message_ids_seen(ws, chat_id)):
        left = deadline - loop.time()
        missing = sorted(set(ids) - set(message_ids_seen(ws, chat_id)))
        if left <= 0:
            raise AssertionError(f"{ws.name}: messages {missing} not received within {timeout}s")
        await ws.until(lambda f: f.get("type") == "message", timeout=left)


async def rest(fn, *args, **kw):
    """A blocking REST helper, run off the event loop so sockets keep being read."""
    return await asyncio.to_thread(fn, *args, **kw)


def chat_events(ws, chat_id, reader_id=None, read_id=None):
    """(type, message id) of the edit/delete/pin/unpin frames of one chat in arrival order,
    plus the `read` frames of `reader_id` up to `read_id`."""
    out = []
    for f in ws.seen:
        if f.get("chat_id") != chat_id:
            continue
        if f["type"] in ("edit", "delete", "pin", "unpin"):
            out.append((f["type"], f["message_id"]))
        elif f["type"] == "read" and f["user_id"] == reader_id and f["last_read_message_id"] == read_id:
            out.append(("read", read_id))
    return out


# ---- (a) chatting across nodes ----------------------------------------------------------------

SENDERS = 3
PER_SENDER = 30
PRIVATE_PER_SENDER = 10


def test_private_and_group_chat_across_nodes_in_commit_order(make_cluster):
    cluster = make_cluster(3)
    api = [Client(n) for n in cluster]
    # Registered and chats created through different nodes.
    u = [api[i].register() for i in range(SENDERS)]
    g = group_chat(api[0], u[0], u[1], u[2], name="across-nodes")
    p = private_chat(api[1], u[1], u[0])

    async def main():
        # u[i]: user socket on node i, group chat socket on node i+1. The private chat:
        # u0's chat socket on node 2, u1's on node 0.
        users = [await user_ws(cluster[i], u[i]) for i in range(SENDERS)]
        g_chat = [await chat_ws(cluster[(i + 1) % 3], u[i], g) for i in range(SENDERS)]
        p_chat = [await chat_ws(cluster[2], u[0], p), await chat_ws(cluster[0], u[1], p)]

        # Concurrent senders on every node: each u[i] sends PER_SENDER group messages on its
        # user socket (node i); meanwhile u0 and u1 send private messages over REST through
        # nodes 2 and 0.
        async def ws_sender(i):
            for k in range(PER_SENDER):
                await users[i].send({"type": "message", "chat_id": g, "text": f"g {i}-{k}",
                                     "client_id": f"g{i}-{k}"})
                await asyncio.sleep(random.uniform(0, 0.03))

        async def rest_sender(who, node):
            for k in range(PRIVATE_PER_SENDER):
                await rest(rest_send, api[node], u[who], p, f"p {who}-{k}", client_id=f"p{who}-{k}")
                await asyncio.sleep(random.uniform(0, 0.02))

        n_g, n_p = SENDERS * PER_SENDER, 2 * PRIVATE_PER_SENDER
        expect = {id(users[0]): {g: n_g, p: n_p}, id(users[1]): {g: n_g, p: n_p}, id(users[2]): {g: n_g}}
        for ws in g_chat:
            expect[id(ws)] = {g: n_g}
        for ws in p_chat:
            expect[id(ws)] = {p: n_p}
        sockets = users + g_chat + p_chat
        results = await asyncio.gather(
            *(collect_messages(ws, expect[id(ws)], timeout=60) for ws in sockets),
            *(ws_sender(i) for i in range(SENDERS)), rest_sender(0, 2), rest_sender(1, 0))
        received = dict(zip(map(id, sockets), results[:len(sockets)]))

        # Every socket got every message of its chats exactly once, in commit (id) order,
        # with the sender's client_id only on the sender's own sockets (on any node).
        all_ids = {g: history_ids(api[2], u[2], g), p: history_ids(api[2], u[0], p)}
        assert len(all_ids[g]) == n_g and len(all_ids[p]) == n_p, {c: len(v) for c, v in all_ids.items()}
        owner = {id(ws): i for i, ws in enumerate(users)}
        owner.update({id(ws): i for i, ws in enumerate(g_chat)})
        owner.update({id(p_chat[0]): 0, id(p_chat[1]): 1})
        for ws in sockets:
            for chat_id, frames in received[id(ws)].items():
                ids = [f["message_id"] for f in frames]
                assert ids == all_ids[chat_id], (ws.name, chat_id, ids)
                for f in frames:
                    who = int(f["text"].split()[1].split("-")[0])
                    assert f["sender_id"] == uid(u[who]), (ws.name, f)
                    mine = who == owner[id(ws)]
                    want_cid = f["text"].replace(" ", "", 1) if mine else None
                    assert f["client_id"] == want_cid, (ws.name, f)
            await no_more_messages(ws)
        for ws in users:
            check_seq_order(ws)

        # Then edits, deletes, reads and pins, each committed before the next, done through
        # different nodes and socket kinds: every member's socket sees them in that order.
        gm = {i: [f["message_id"] for f in received[id(users[i])][g] if f["sender_id"] == uid(u[i])]
              for i in range(SENDERS)}
        await users[1].send({"type": "edit", "chat_id": g, "message_id": gm[1][0], "text": "g edited"})
        f = await users[1].until(is_("edit", chat_id=g, message_id=gm[1][0]), timeout=10)
        assert f["text"] == "g edited"
        r = api[0].request("DELETE", f"/api/messages/{gm[2][0]}/", token=u[2]["access"])
        assert r.status_code == 204, r.text
        await users[0].send({"type": "pin", "chat_id": g, "message_id": gm[2][1]})
        await users[0].until(is_("pin", chat_id=g, message_id=gm[2][1]), timeout=10)
        last = rest_send(api[1], u[0], g, "read up to here")["id"]
        await users[2].until(is_("message", message_id=last), timeout=10)
        await users[2].send({"type": "read", "chat_id": g, "last_read_message_id": last})
        await users[2].until(is_("read", chat_id=g, user_id=uid(u[2]), last_read_message_id=last), timeout=10)
        r = api[1].request("DELETE", f"/api/pinned/{pin_id(api[1], u[0], g, gm[2][1])}/", token=u[0]["access"])
        assert r.status_code == 204, r.text
        want_g = [("edit", gm[1][0]), ("delete", gm[2][0]), ("pin", gm[2][1]), ("read", last),
                  ("unpin", gm[2][1])]

        pm = {i: [f["message_id"] for f in received[id(users[i])][p] if f["sender_id"] == uid(u[i])]
              for i in (0, 1)}
        r = api[2].patch(f"/api/messages/{pm[0][0]}/", token=u[0]["access"], json={"text": "p edited"})
        assert r.status_code == 200, r.text
        await p_chat[1].send({"type": "delete", "message_id": pm[1][0]})
        await p_chat[1].until(is_("delete", chat_id=p, message_id=pm[1][0]), timeout=10)
        r = api[1].post("/api/pinned/", token=u[1]["access"], json={"message_id": pm[0][1]})
        assert r.status_code == 201, r.text
        await users[0].send({"type": "unpin", "chat_id": p, "message_id": pm[0][1]})
        await users[0].until(is_("unpin", chat_id=p, message_id=pm[0][1]), timeout=10)
        want_p = [("edit", pm[0][0]), ("delete", pm[1][0]), ("pin", pm[0][1]), ("unpin", pm[0][1])]

        members_g = users + g_chat
        members_p = users[:2] + p_chat
        for ws in members_g:
            await saw(ws, is_("unpin", chat_id=g, message_id=gm[2][1]))
            await saw(ws, is_("read", chat_id=g, user_id=uid(u[2]), last_read_message_id=last))
        for ws in members_p:
            await saw(ws, is_("unpin", chat_id=p, message_id=pm[0][1]))
        for ws in sockets:
            await ws.drain(0.5)
        for ws in members_g:
            assert chat_events(ws, g, uid(u[2]), last) == want_g, (ws.name, ws.seen[-30:])
            edit = next(f for f in ws.seen if f["type"] == "edit" and f["message_id"] == gm[1][0])
            assert edit["text"] == "g edited" and edit["chat_id"] == g, edit
            pin = next(f for f in ws.seen if f["type"] == "pin" and f["message_id"] == gm[2][1])
            assert pin["pinned_by"] == uid(u[0]), pin
        for ws in members_p:
            assert chat_events(ws, p) == want_p, (ws.name, ws.seen[-30:])
        for ws in users:
            check_seq_order(ws)
        for ws in sockets:
            await ws.close()

    run(main(), timeout=150)


def pin_id(client, who, chat_id, message_id):
    r = client.get(f"/api/pinned/?chat={chat_id}", token=who["access"])
    assert r.status_code == 200, r.text
    pins = [x["id"] for x in r.json() if x["message"]["id"] == message_id]
    assert len(pins) == 1, r.json()
    return pins[0]


# ---- (b) presence and typing across nodes -------------------------------------------------------

def test_presence_and_typing_cross_nodes(make_cluster):
    # A grace of 2 s: the move between nodes below must open the new socket within it, on
    # the suite's busiest set-up.
    cluster = make_cluster(3, PRESENCE_GRACE=2)
    api = [Client(n) for n in cluster]
    a, b = api[0].register(), api[1].register()
    chat = private_chat(api[0], a, b)

    def statuses(ws):
        return [f["is_online"] for f in ws.seen if f["type"] == "user_status" and f["user_id"] == uid(a)]

    async def main():
        loop = asyncio.get_running_loop()
        b_user = await user_ws(cluster[0], b)
        b_chat = await chat_ws(cluster[1], b, chat)
        assert is_online(api[2], b, a) is False
        # a comes online on node 1: b hears it on nodes 0 and 1, node 2 answers it over REST.
        a1 = await user_ws(cluster[1], a)
        f = await b_user.until(is_("user_status", user_id=uid(a), is_online=True), timeout=10)
        assert set(f) == {"type", "user_id", "is_online", "last_seen"}, f
        await b_chat.until(is_("user_status", user_id=uid(a), is_online=True), timeout=10)
        wait_for("a online on node 2", lambda: is_online(api[2], b, a) is True, timeout=5)

        # a's socket moves from node 1 to node 2 within the grace: no offline, no second online.
        await a1.close()
        a2 = await user_ws(cluster[2], a)
        await b_user.drain(4)  # well past PRESENCE_GRACE
        await b_chat.drain(0.1)
        assert statuses(b_user) == [True], b_user.seen
        assert statuses(b_chat) == [True], b_chat.seen
        assert is_online(api[0], b, a) is True

        # Typing on node 2 reaches b on nodes 0 and 1, and expires after ~5 s by itself.
        await a2.send({"type": "typing", "chat_id": chat, "is_typing": True})
        t_typed = loop.time()
        want = {"type": "typing", "chat_id": chat, "user_id": uid(a), "username": a["user"]["username"],
                "is_typing": True}
        assert await b_user.until(is_("typing", chat_id=chat, is_typing=True), timeout=5) == want
        assert await b_chat.until(is_("typing", is_typing=True), timeout=5) == want
        f = await b_chat.until(is_("typing", is_typing=False), timeout=9)
        assert f == dict(want, is_typing=False), f
        assert 4.3 <= loop.time() - t_typed <= 7.5, loop.time() - t_typed
        f = await b_user.until(is_("typing", chat_id=chat, is_typing=False), timeout=3)
        assert f == dict(want, is_typing=False), f
        # An explicit stop crosses nodes at once.
        await a2.send({"type": "typing", "chat_id": chat, "is_typing": True})
        await b_chat.until(is_("typing", is_typing=True), timeout=5)
        await a2.send({"type": "typing", "chat_id": chat, "is_typing": False})
        await b_chat.until(is_("typing", is_typing=False), timeout=2)

        # The last socket closes: offline reaches both of b's nodes after the grace.
        t_closed = loop.time()
        await a2.close()
        f = await b_user.until(is_("user_status", user_id=uid(a), is_online=False), timeout=10)
        assert loop.time() - t_closed >= 1.5, "offline before PRESENCE_GRACE"
        assert isinstance(f["last_seen"], str), f
        g = await b_chat.until(is_("user_status", user_id=uid(a), is_online=False), timeout=5)
        assert g == f, (f, g)
        wait_for("a offline on node 2", lambda: is_online(api[2], b, a) is False, timeout=5)
        await b_user.drain(0.3)
        assert statuses(b_user) == [True, False], b_user.seen
        # The typer never got its own typing or status.
        for ws in (a1, a2):
            assert not [x for x in ws.seen if x["type"] in ("typing", "user_status") and x.get("user_id") == uid(a)]
        await b_user.close()
        await b_chat.close()

    run(main(), timeout=90)


def test_typing_ends_whichever_node_stops_it(make_cluster):
    """Each node ends what its own sockets see: a stop from the typer's socket on another
    node ends the indicator at once, and when the typer's node dies, the others still end
    it about five seconds after the last refresh they heard."""
    cluster = make_cluster(3)
    api = [Client(n) for n in cluster]
    a, b = api[0].register(), api[1].register()
    chat = private_chat(api[0], a, b)

    async def main():
        loop = asyncio.get_running_loop()
        b0 = await user_ws(cluster[0], b)
        b1 = await chat_ws(cluster[1], b, chat)
        a1 = await user_ws(cluster[1], a)
        a2 = await user_ws(cluster[2], a)
        typing = lambda on: is_("typing", user_id=uid(a), is_typing=on)  # noqa: E731

        # Started on node 2, stopped from a's socket on node 1: over at once on both of b's.
        await a2.send({"type": "typing", "chat_id": chat, "is_typing": True})
        for ws in (b0, b1):
            await ws.until(typing(True), timeout=5)
        t_stop = loop.time()
        await a1.send({"type": "typing", "chat_id": chat, "is_typing": False})
        for ws in (b0, b1):
            f = await ws.until(typing(False), timeout=2)
            assert f["chat_id"] == chat, f
        assert loop.time() - t_stop < 2
        # ...and said once: no second stop when the start would have expired.
        await b0.drain(6)
        await b1.drain(0.1)
        for ws in (b0, b1):
            flags = [f["is_typing"] for f in ws.seen if f["type"] == "typing"]
            assert flags == [True, False], (ws.name, ws.seen)

        # Started on node 2, which is then killed: b's nodes end it by themselves.
        await a2.send({"type": "typing", "chat_id": chat, "is_typing": True})
        t_typed = loop.time()
        for ws in (b0, b1):
            await ws.until(typing(True), timeout=5)
        cluster[2].kill()
        for ws in (b0, b1):
            f = await ws.until(typing(False), timeout=10)
            assert f == {"type": "typing", "chat_id": chat, "user_id": uid(a),
                         "username": a["user"]["username"], "is_typing": False}, f
        assert 4.3 <= loop.time() - t_typed <= 8, loop.time() - t_typed
        for ws in (b0, b1, a1):
            await ws.close()

    run(main(), timeout=90)


# ---- (c) a node dies ----------------------------------------------------------------------------

PRESENCE_TTL = 3


def test_killed_node_clients_resume_on_another_without_loss(make_cluster):
    cluster = make_cluster(3, PRESENCE_TTL=PRESENCE_TTL, PRESENCE_GRACE=1)
    api = [Client(n) for n in cluster]
    a, b, c, d = (api[i % 3].register() for i in range(4))
    g = group_chat(api[0], b, a, c, d, name="survivors")
    p = private_chat(api[1], a, b)

    async def main():
        # a and d are only on node 2, which dies; c is on nodes 1 and 2; b on node 0.
        a_ws = await user_ws(cluster[2], a)
        d_ws = await user_ws(cluster[2], d)
        c2 = await user_ws(cluster[2], c)
        c1 = await user_ws(cluster[1], c)
        b_ws = await user_ws(cluster[0], b)
        for who in (a, c, d):
            wait_for("online", lambda: is_online(api[0], b, who) is True, timeout=5)
        # Nodes keep their users' presence alive past PRESENCE_TTL while they run.
        await asyncio.sleep(PRESENCE_TTL + 1)
        assert is_online(api[0], b, d) is True

        # Senders on the surviving nodes keep going while node 2 is killed.
        sent = []

        async def rest_sender():
            for k in range(25):
                chat_id = g if k % 2 else p
                sent.append((await rest(rest_send, api[0], b, chat_id, f"b {k}"))["id"])
                await asyncio.sleep(0.03)

        async def ws_sender():
            for k in range(25):
                cid = f"c-{k}-{uuid.uuid4().hex[:6]}"
                await c1.send({"type": "message", "chat_id": g, "text": f"c {k}", "client_id": cid})
                sent.append((await c1.until(is_("message", client_id=cid), timeout=10))["message_id"])
                await asyncio.sleep(0.03)

        senders = asyncio.gather(rest_sender(), ws_sender())
        # a reads until it has some of them, then its node dies under it.
        for _ in range(8):
            await a_ws.until(is_("message"), timeout=10)
        cluster[2].kill()
        t_kill = time.time()
        await a_ws.closed(timeout=10)  # keeps reading whatever was still on the way
        for ws in (d_ws, c2):
            await ws.closed(timeout=10)
        before = [f["message_id"] for f in a_ws.seen if f["type"] == "message"]
        since = max_seq(a_ws)
        assert before and since > 0
        await asyncio.wait_for(senders, 60)

        # a reconnects to node 0 from the last seq it saw: the replay holds exactly the
        # messages it missed, in order, then `synced`, then live messages.
        a_back = await connect(cluster[0], a["access"], "/ws/", sync=False, since=since, name="a/ws@node0")
        replay = []
        while (f := await a_back.next(timeout=15))["type"] != "synced":
            replay.append(f)
        missed = [f["message_id"] for f in replay if f["type"] == "message"]
        assert not set(missed) & set(before), (before, missed)
        assert len(set(missed)) == len(missed), missed
        for chat_id in (g, p):
            in_chat = [f["message_id"] for f in replay if f["type"] == "message" and f["chat_id"] == chat_id]
            assert in_chat == sorted(in_chat), (chat_id, in_chat)
        everything = set(history_ids(api[1], a, g)) | set(history_ids(api[1], a, p))
        assert set(before) | set(missed) == everything == set(sent), (
            sorted(everything - set(before) - set(missed)), sorted(set(sent) ^ everything))
        live = rest_send(api[1], b, p, "live after resume")["id"]
        f = await a_back.until(is_("message", message_id=live), timeout=10)
        assert f["seq"] > since
        await a_back.drain(0.3)
        check_seq_order(a_back)

        # d was only on the dead node: offline once PRESENCE_TTL has passed. c still has a
        # socket on node 1 and a came back on node 0: both stay online.
        await rest(wait_for, "d offline after PRESENCE_TTL", lambda: is_online(api[0], b, d) is False,
                   timeout=PRESENCE_TTL + 15, interval=0.25)
        assert time.time() - t_kill <= PRESENCE_TTL + 15
        assert is_online(api[1], b, c) is True
        assert is_online(api[1], b, a) is True
        # The members of d's chats are told by a surviving node's sweep, exactly once; c,
        # who kept a socket on node 1 all along, was never shown offline.
        await saw(b_ws, is_("user_status", user_id=uid(d), is_online=False), timeout=15)
        await b_ws.drain(0.5)
        offline = [f for f in b_ws.seen if f["type"] == "user_status" and not f["is_online"]]
        d_offline = [f for f in offline if f["user_id"] == uid(d)]
        assert len(d_offline) == 1 and d_offline[0]["last_seen"] is not None, offline
        assert not [f for f in offline if f["user_id"] == uid(c)], offline
        # The survivors' sockets never dropped.
        for ws in (b_ws, c1, a_back):
            await ws.ping()
            await ws.close()

    run(main(), timeout=150)


# ---- (d) Redis restarts -----------------------------------------------------------------------

class RedisServer:
    """A redis-server of this test's own, on a free loopback port, killed and started again
    on the same port without disturbing the shared one."""

    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="chatd-redis-")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--logfile", os.path.join(self.dir, "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            # A process group of its own: paused in the tests' group, when that group is
            # orphaned (a suite run from a background job whose shell has gone), the kernel
            # would resume it with SIGCONT as soon as any process of the group exited.
            process_group=0)
        wait_for("redis-server answers PING", self.ping, timeout=15, interval=0.05)
        return self

    def ping(self):
        assert self.proc.poll() is None, "redis-server exited"
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused one too
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def pause(self):
        """SIGSTOP: the server hangs with its connections open (an overloaded or frozen
        host), so nothing tells the nodes it went away. Returns once it has stopped: the
        signal is only queued, and a server still running could answer one more command."""
        self.proc.send_signal(signal.SIGSTOP)
        os.waitpid(self.proc.pid, os.WUNTRACED)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)


@pytest.fixture
def own_redis():
    r = RedisServer().start()
    yield r
    r.kill()


def ready(node):
    return requests.get(node.url + "/readyz", timeout=3).status_code


def test_redis_restart_mid_conversation(own_redis, make_cluster):  # nodes stop before Redis
    cluster = make_cluster(3, REDIS_PORT=own_redis.port)
    api = [Client(n) for n in cluster]
    a, b, c = api[2].register(), api[0].register(), api[1].register()
    g = group_chat(api[2], a, b, c, name="redis-restart")

    async def main():
        # Receivers stay connected on nodes 0 and 1; a sends through node 2.
        receivers = [await user_ws(cluster[0], b), await user_ws(cluster[1], c),
                     await chat_ws(cluster[0], c, g)]
        sent = [rest_send(api[2], a, g, f"before {k}")["id"] for k in range(3)]
        for ws in receivers:
            for m in sent:
                await ws.until(is_("message", message_id=m), timeout=10)

        own_redis.kill()
        # Messages are still stored and acknowledged while Redis is down.
        for k in range(5):
            sent.append((await rest(rest_send, api[2], a, g, f"during {k}"))["id"])
            await asyncio.sleep(0.1)
        # Readiness reports the missing broker meanwhile.
        await rest(wait_for, "node 2 not ready without Redis", lambda: ready(cluster[2]) == 503, 10)

        own_redis.start()
        for node in cluster:
            await rest(wait_for, f"node {node.port} ready again", lambda: ready(node) == 200, 30)
        for k in range(5):
            sent.append((await rest(rest_send, api[2], a, g, f"after {k}"))["id"])
        # A socket message across nodes once more.
        cid = "after-ws-" + uuid.uuid4().hex
        await receivers[0].send({"type": "message", "chat_id": g, "text": "after ws", "client_id": cid})
        sent.append((await receivers[0].until(is_("message", client_id=cid), timeout=15))["message_id"])

        # Every receiver (never disconnected, chatd never restarted) got every message once,
        # in commit order.
        for ws in receivers:
            await wait_seen(ws, g, sent, timeout=30)
        for ws in receivers:
            await ws.drain(0.5)
            assert message_ids_seen(ws, g) == sorted(sent), (ws.name, message_ids_seen(ws, g), sent)
            await ws.ping()
        for ws in receivers[:2]:
            check_seq_order(ws)
        for ws in receivers:
            await ws.close()

    run(main(), timeout=120)


def test_a_node_catching_up_keeps_from_a_member_what_they_hid(own_redis, make_cluster):
    """Events about a message leave out the members who hid it, live and in replays; read
    from the log by a node catching up (here after Redis was away) they did not: a member
    who had hidden a message got its deletion for everyone, and their unread count lost
    the message a second time, until a recount."""
    cluster = make_cluster(2, REDIS_PORT=own_redis.port)
    api = [Client(n) for n in cluster]
    a, b = api[1].register(), api[1].register()
    p = private_chat(api[1], a, b)

    async def main():
        b_ws = await user_ws(cluster[0], b)
        ids = [(await rest(rest_send, api[1], a, p, f"m{k}"))["id"] for k in range(3)]
        await b_ws.until(is_("unread", chat_id=p, unread_count=3), timeout=10)
        r = await rest(api[1].request, "DELETE", f"/api/messages/{ids[2]}/?for=me", token=b["access"])
        assert r.status_code == 204, r.text
        await b_ws.until(is_("unread", chat_id=p, unread_count=2), timeout=10)
        own_redis.kill()
        r = await rest(api[1].request, "DELETE", f"/api/messages/{ids[2]}/", token=a["access"])
        assert r.status_code in (200, 204), r.text
        r = await rest(api[1].request, "DELETE", f"/api/messages/{ids[1]}/", token=a["access"])
        assert r.status_code in (200, 204), r.text
        own_redis.start()
        # Node 0 reads both deletions from the log: b gets the one of the message they did
        # not hide, and a count that never went below the store's.
        await b_ws.until(is_("delete", message_id=ids[1]), timeout=30)
        await b_ws.until(is_("unread", chat_id=p, unread_count=1), timeout=10)
        await b_ws.drain(1.0)
        assert not [f for f in b_ws.seen if f["type"] == "delete" and f["message_id"] == ids[2]
                    and not f.get("for_me")], b_ws.seen
        counts = [f["unread_count"] for f in b_ws.seen if f["type"] == "unread"]
        assert min(counts) == 1 and counts[-1] == 1, counts
        chat = (await rest(api[0].get, f"/api/chats/{p}/", token=b["access"])).json()
        assert chat["unread_count"] == 1, chat
        await b_ws.close()

    run(main(), timeout=120)


def test_presence_survives_redis_losing_its_data(own_redis, make_cluster):
    """Redis restarts empty (no persistence). A user still connected is not announced online
    a second time; one whose last socket closed while Redis was down is announced offline
    once it is back; one who leaves afterwards is announced offline as usual."""
    # Refreshes every 4 s: the outage below stays well within one TTL of the last one.
    cluster = make_cluster(2, REDIS_PORT=own_redis.port, PRESENCE_TTL=12, PRESENCE_GRACE=1)
    api = [Client(n) for n in cluster]
    watcher, stays, leaves = api[0].register(), api[1].register(), api[1].register()
    g = group_chat(api[0], watcher, stays, leaves, name="presence-restart")

    def statuses(ws, who):
        return [f["is_online"] for f in ws.seen if f["type"] == "user_status" and f["user_id"] == uid(who)]

    async def main():
        w = await user_ws(cluster[0], watcher)
        s_ws = await user_ws(cluster[1], stays)
        l_ws = await user_ws(cluster[1], leaves)
        for who in (stays, leaves):
            await saw(w, is_("user_status", user_id=uid(who), is_online=True), timeout=10)

        own_redis.kill()
        await l_ws.close()  # the last socket of `leaves` closes while Redis is down
        await asyncio.sleep(2)  # past PRESENCE_GRACE: its release cannot reach Redis
        own_redis.start()
        for node in cluster:
            await rest(wait_for, f"node {node.port} ready again", lambda: ready(node) == 200, 30)
        # Announced at a keep-alive at least 3 s after Redis answers again (once the other
        # nodes have resubscribed).
        f = await w.until(is_("user_status", user_id=uid(leaves), is_online=False), timeout=25)
        assert isinstance(f["last_seen"], str), f
        await rest(wait_for, "leaves offline over REST", lambda: is_online(api[0], watcher, leaves) is False, 10)
        # The keep-alive that announced it restored `stays` first: online over REST, and not
        # announced again.
        await w.drain(5)
        assert is_online(api[0], watcher, stays) is True
        assert statuses(w, stays) == [True], w.seen
        assert statuses(w, leaves) == [True, False], w.seen

        await s_ws.close()
        await w.until(is_("user_status", user_id=uid(stays), is_online=False), timeout=15)
        await w.drain(1)
        assert statuses(w, stays) == [True, False], w.seen
        assert statuses(w, leaves) == [True, False], w.seen
        await w.close()

    run(main(), timeout=120)


def test_presence_is_put_back_as_soon_as_redis_is(own_redis, make_cluster):
    """With refreshes 40 s apart, a Redis that restarts empty does not wait for the next one:
    a node puts its users' entries back when it reconnects, and announces offline whoever
    left meanwhile a few seconds later (once the other nodes hear again)."""
    cluster = make_cluster(2, REDIS_PORT=own_redis.port, PRESENCE_TTL=120, PRESENCE_GRACE=1)
    api = [Client(n) for n in cluster]
    watcher, stays, leaves = api[0].register(), api[1].register(), api[1].register()
    g = group_chat(api[0], watcher, stays, leaves, name="presence-back")
    assert g

    async def main():
        w = await user_ws(cluster[0], watcher)
        s_ws = await user_ws(cluster[1], stays)
        l_ws = await user_ws(cluster[1], leaves)
        for who in (stays, leaves):
            await saw(w, is_("user_status", user_id=uid(who), is_online=True), timeout=10)
        own_redis.kill()
        await l_ws.close()
        await asyncio.sleep(2)  # past PRESENCE_GRACE: the release cannot reach Redis
        own_redis.start()
        for node in cluster:
            await rest(wait_for, f"node {node.port} ready again", lambda: ready(node) == 200, 30)
        await rest(wait_for, "stays online over REST again",
                   lambda: is_online(api[0], watcher, stays) is True, 8)
        await w.until(is_("user_status", user_id=uid(leaves), is_online=False), timeout=12)
        assert is_online(api[0], watcher, leaves) is False
        for ws in (w, s_ws):
            await ws.close()

    run(main(), timeout=90)


def test_an_offline_decided_by_a_release_redis_ran_late_is_still_announced(own_redis, make_cluster):
    """The release of a user who left goes to a Redis that hangs: chatd gives up on it, but
    Redis runs it when it resumes, recording "offline" with its answer lost. The node, not
    knowing whether it ran, says "offline" when its retry finds it already recorded."""
    cluster = make_cluster(2, REDIS_PORT=own_redis.port, PRESENCE_TTL=60, PRESENCE_GRACE=1)
    api = [Client(n) for n in cluster]
    watcher, leaves = api[0].register(), api[1].register()
    assert group_chat(api[0], watcher, leaves, name="late-release")

    async def main():
        w = await user_ws(cluster[0], watcher)
        l_ws = await user_ws(cluster[1], leaves)
        await saw(w, is_("user_status", user_id=uid(leaves), is_online=True), timeout=10)
        await l_ws.close()
        await asyncio.sleep(0.4)  # the linger is answered; the release follows the grace
        own_redis.pause()
        try:
            await asyncio.sleep(4)  # the release is sent, then given up after 2 s of silence
        finally:
            own_redis.resume()
        await w.until(is_("user_status", user_id=uid(leaves), is_online=False), timeout=20)
        assert is_online(api[0], watcher, leaves) is False
        await w.close()

    run(main(), timeout=90)


def test_a_broker_catch_up_brings_no_old_events_to_a_new_socket(own_redis, make_cluster):
    """A node that lost Redis reads the log from where it stood to catch up. A socket that
    opened without since= loads its state through REST as of its opening: an event from
    before then is old news to it, even when the catch-up brings it along."""
    cluster = make_cluster(2, REDIS_PORT=own_redis.port)
    api = [Client(n) for n in cluster]
    owner, u = api[0].register(), api[0].register()
    # u's history, all through node 0 (node 1 hears none of it): removed from one group,
    # a member of another that is deleted, and a member of a third that stays.
    left = group_chat(api[0], owner, u, name="left")
    assert api[0].request("DELETE", f"/api/chats/{left}/members/{uid(u)}/", token=owner["access"]).status_code == 204
    gone = group_chat(api[0], owner, u, name="gone")
    assert api[0].request("DELETE", f"/api/chats/{gone}/", token=owner["access"]).status_code == 204
    stays = group_chat(api[0], owner, u, name="stays")
    rest_send(api[0], owner, stays, "before the socket")
    opened_at = api[0].get("/api/events/?since=0", token=owner["access"]).json()["seq"]

    async def main():
        ws = await user_ws(cluster[1], u)
        own_redis.kill()
        await asyncio.sleep(1)
        own_redis.start()
        for node in cluster:
            await rest(wait_for, f"node {node.port} ready again", lambda: ready(node) == 200, 30)
        await asyncio.sleep(1)
        after = (await rest(rest_send, api[0], owner, stays, "after the restart"))["id"]
        await ws.until(is_("message", message_id=after), timeout=20)
        await ws.drain(0.5)
        old = [f for f in ws.seen if isinstance(f.get("seq"), int) and f["seq"] <= opened_at]
        assert not old, old
        check_seq_order(ws)
        await ws.close()

    run(main(), timeout=120)


def test_a_hung_redis_holds_up_no_request_and_loses_nothing(own_redis, make_cluster):
    """Redis stops answering without closing anything. Logins, sends and handshakes still
    answer (each node gives up on Redis after a short wait and carries on as when Redis is
    down), readiness says the broker is missing, and once Redis answers again the messages
    committed meanwhile reach the other node's sockets, once each and in order."""
    cluster = make_cluster(2, REDIS_PORT=own_redis.port)
    api = [Client(n) for n in cluster]
    a, b, c = api[0].register(), api[1].register(), api[1].register()
    g = group_chat(api[0], a, b, c, name="redis-hangs")

    async def main():
        b_ws = await user_ws(cluster[1], b)
        sent = [rest_send(api[0], a, g, "before")["id"]]
        await wait_seen(b_ws, g, sent, timeout=10)
        # b's receipt of it, written within 200 ms, must not be published into the hang: an
        # event a node is unsure reached Redis comes back by a resync, possibly after newer
        # ones (README: Broker), and the seq order is checked below.
        await b_ws.until(is_("delivered", user_id=uid(b)), timeout=10)

        own_redis.pause()
        try:
            # Each of these used to wait for Redis for ever. Bounded by the clients' timeouts.
            fresh = await rest(api[0].login, uname(a), a["password"], timeout=15)
            assert fresh["access"]
            for k in range(5):
                r = await rest(api[0].post, "/api/messages/", token=a["access"],
                               json={"chat": g, "text": f"during {k}"}, timeout=15)
                assert r.status_code == 201, r.text
                sent.append(r.json()["id"])
            c_ws = await user_ws(cluster[1], c)
            await c_ws.ping()
            await rest(wait_for, "node 0 not ready while Redis hangs",
                       lambda: ready(cluster[0]) == 503, 20)
        finally:
            own_redis.resume()

        for node in cluster:
            await rest(wait_for, f"node {node.port} ready again", lambda: ready(node) == 200, 30)
        sent.append(rest_send(api[0], a, g, "after")["id"])
        # b's socket was open all along; c's opened after the sends during the hang.
        await wait_seen(b_ws, g, sent[1:], timeout=30)
        await wait_seen(c_ws, g, sent[-1:], timeout=30)
        await b_ws.drain(0.5)
        assert message_ids_seen(b_ws, g) == sorted(sent), message_ids_seen(b_ws, g)
        check_seq_order(b_ws)
        for ws in (b_ws, c_ws):
            await ws.ping()
            await ws.close()

    run(main(), timeout=150)


# ---- (e) PostgreSQL goes away and comes back ----------------------------------------------------

PG_BIN = os.environ.get("CHATD_TEST_PG_BIN")
PG_DATA = os.environ.get("CHATD_TEST_PG_DATA")
PG_LOG = os.environ.get("CHATD_TEST_PG_LOG")


def pg_ctl(*args, check=True):
    cmd = [os.path.join(PG_BIN, "pg_ctl"), "-D", PG_DATA, *args]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if check:
        assert r.returncode == 0, (cmd, r.stdout, r.stderr)
    return r


def pg_running():
    return pg_ctl("status", check=False).returncode == 0


def ensure_pg_running():
    if not pg_running():
        log = ["-l", PG_LOG] if PG_LOG else []
        pg_ctl("start", "-w", "-t", "60", *log)


def status_and_body(client, method, path, who, **kw):
    r = client.request(method, path, token=who["access"], timeout=15, **kw)
    return r.status_code, (r.json() if r.content else None)


def handshake_answer(node, path, token):
    """The first bytes a WebSocket handshake gets back."""
    with socket.create_connection(("127.0.0.1", node.port), timeout=15) as s:
        s.sendall((f"GET {path}?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{node.port}\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        return s.recv(4096)


def pair_on_two_nodes(make_cluster):
    """Two nodes able to stop the test cluster, and a private chat between a user of each."""
    if not (PG_BIN and PG_DATA):
        pytest.skip("CHATD_TEST_PG_BIN and CHATD_TEST_PG_DATA name the test cluster (scripts/test-services.sh)")
    cluster = make_cluster(2)
    api = [Client(n) for n in cluster]
    a, b = api[0].register(), api[1].register()
    return cluster, api, a, b, private_chat(api[0], a, b)


def test_postgres_outage_gives_503_and_error_events_then_recovers(make_cluster):
    cluster, api, a, b, p = pair_on_two_nodes(make_cluster)

    async def main():
        a_ws = await user_ws(cluster[0], a)
        b_ws = await user_ws(cluster[1], b)
        first = rest_send(api[0], a, p, "before the outage")["id"]
        await b_ws.until(is_("message", message_id=first), timeout=10)

        try:
            await rest(pg_ctl, "stop", "-m", "fast", "-w", "-t", "60")
            # REST: 503 with a DRF body (never 500) on both nodes; liveness stays 200.
            for i, node in enumerate(cluster):
                await rest(wait_for, f"node {i} answers 503",
                           lambda: status_and_body(api[i], "GET", "/api/chats/", a)[0] == 503, 20)
                for method, path, body in (("GET", "/api/chats/", None),
                                           ("POST", "/api/messages/", {"chat": p, "text": "lost"}),
                                           ("GET", f"/api/users/{uid(b)}/", None)):
                    status, answer = await rest(status_and_body, api[i], method, path, a, json=body)
                    assert status == 503 and isinstance(answer, dict) and isinstance(answer.get("detail"), str), \
                        (i, method, path, status, answer)
                # More than LOGIN_FAILURES_PER_USER (10): a check that could not be made does
                # not count as a failure, so the login works once the database is back.
                for _ in range(6):
                    r = await rest(api[i].post, "/api/auth/login/",
                                   json={"username": a["user"]["username"], "password": a["password"]})
                    assert r.status_code == 503 and "detail" in r.json(), r.text
                assert await rest(ready, node) == 503
                assert (await rest(requests.get, node.url + "/healthz", timeout=3)).status_code == 200
                # A socket handshake: 503 too, not a connection dropped without an answer.
                for path in ("/ws/", f"/ws/chat/{p}/"):
                    raw = await rest(handshake_answer, node, path, a["access"])
                    assert raw.startswith(b"HTTP/1.1 503") and b'"detail"' in raw, (i, path, raw[:300])
            # WebSocket: an `error` event for the message, and the socket stays open.
            await a_ws.send({"type": "message", "chat_id": p, "text": "not now", "client_id": "outage-1"})
            f = await a_ws.until(is_("error", request_type="message"), timeout=20)
            assert set(f) >= ERROR_KEYS, f
            await a_ws.ping()
            await b_ws.ping()
        finally:
            await rest(ensure_pg_running)

        # chatd recovers by itself: REST, readiness, and messages across nodes on the same sockets.
        for i, node in enumerate(cluster):
            await rest(wait_for, f"node {i} answers 200 again",
                       lambda: status_and_body(api[i], "GET", "/api/chats/", a)[0] == 200, 30)
            await rest(wait_for, f"node {i} ready again", lambda: ready(node) == 200, 30)
        await rest(api[0].login, a["user"]["username"], a["password"])
        cid = "after-" + uuid.uuid4().hex
        await a_ws.send({"type": "message", "chat_id": p, "text": "after the outage", "client_id": cid})
        ack = await a_ws.until(is_("message", client_id=cid), timeout=15)
        f = await b_ws.until(is_("message", message_id=ack["message_id"]), timeout=10)
        assert f["text"] == "after the outage" and f["client_id"] is None, f
        back = (await rest(rest_send, api[1], b, p, "and back"))["id"]
        await a_ws.until(is_("message", message_id=back), timeout=10)
        # Nothing refused during the outage was stored.
        assert history_ids(api[1], b, p) == [first, ack["message_id"], back]
        for ws in (a_ws, b_ws):
            await ws.close()

    try:
        run(main(), timeout=240)
    finally:
        ensure_pg_running()


def test_a_user_who_leaves_during_an_outage_is_announced_offline_when_it_ends(make_cluster):
    """A user's last socket closes while PostgreSQL is away, and the grace period ends
    before it is back: recording last_seen and reading who to tell both fail. The
    announcement is tried again, so the other member hears user_status offline, with a
    last_seen, once the database answers (before, it was never sent and last_seen stayed
    unset)."""
    cluster, api, a, b, p = pair_on_two_nodes(make_cluster)

    async def main():
        b_ws = await user_ws(cluster[1], b)
        a_ws = await user_ws(cluster[0], a)
        await b_ws.until(is_("user_status", user_id=uid(a), is_online=True), timeout=10)
        try:
            await rest(pg_ctl, "stop", "-m", "fast", "-w", "-t", "60")
            await a_ws.close()
            await asyncio.sleep(4)  # the grace period (1 s) ends during the outage
        finally:
            await rest(ensure_pg_running)
        off = await b_ws.until(is_("user_status", user_id=uid(a), is_online=False), timeout=30)
        assert off["last_seen"] is not None, off
        view = await rest(api[1].get, f"/api/users/{uid(a)}/", token=b["access"])
        assert view.status_code == 200 and view.json()["last_seen"] is not None, view.text
        await b_ws.close()

    try:
        run(main(), timeout=150)
    finally:
        ensure_pg_running()


def pg_processes():
    """The test cluster's postmaster and its children (backends, checkpointer...)."""
    with open(os.path.join(PG_DATA, "postmaster.pid")) as f:
        postmaster = int(f.readline())
    children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True).stdout
    return [postmaster] + [int(p) for p in children.split()]


def test_a_hung_postgres_gets_503_within_db_timeout(make_cluster):
    """PostgreSQL stops answering without closing anything (a frozen host, stalled storage):
    requests get their 503 and socket events their `unavailable` error after DB_TIMEOUT,
    the sockets stay open, and everything works again once it answers."""
    if not PG_DATA:
        pytest.skip("CHATD_TEST_PG_DATA names the test cluster (scripts/test-services.sh)")
    cluster = make_cluster(1, DB_TIMEOUT=3)
    api = Client(cluster[0])
    a, b = api.register(), api.register()
    p = private_chat(api, a, b)

    async def main():
        a_ws = await user_ws(cluster[0], a)
        first = rest_send(api, a, p, "before the hang")["id"]
        await a_ws.until(is_("message", message_id=first), timeout=10)
        frozen = pg_processes()
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            status, body = await rest(status_and_body, api, "GET", "/api/chats/", a)
            assert status == 503 and isinstance(body.get("detail"), str), (status, body)
            status, _ = await rest(status_and_body, api, "POST", "/api/messages/", a,
                                   json={"chat": p, "text": "not now"})
            assert status == 503
            await a_ws.send({"type": "message", "chat_id": p, "text": "not now either",
                             "client_id": "hang-1"})
            f = await a_ws.until(is_("error", request_type="message"), timeout=20)
            assert set(f) >= ERROR_KEYS, f
            assert time.monotonic() - started < 25  # each within DB_TIMEOUT, not the hang's length
            await a_ws.ping()
        finally:
            for pid in reversed(frozen):
                os.kill(pid, signal.SIGCONT)
        await rest(wait_for, "answers 200 again",
                   lambda: status_and_body(api, "GET", "/api/chats/", a)[0] == 200, 30)
        after = rest_send(api, a, p, "after the hang")["id"]
        await a_ws.until(is_("message", message_id=after), timeout=10)
        await a_ws.close()

    run(main(), timeout=120)


def test_a_commit_that_lands_after_its_503_still_reaches_the_sockets(make_cluster):
    """A send's COMMIT round trip outlasts DB_TIMEOUT while its backend waits for the event
    log's lock (held here by a session standing in for a node that froze holding it): the
    sender gets 503, the nodes are asked to read the log, and then the backend gets the
    lock and commits. The nodes are asked again later, so the recipient's socket gets the
    message without another write in the deployment (before, only the next event did it)."""
    cluster = make_cluster(1, DB_TIMEOUT=3)
    api = Client(cluster[0])
    a, b = api.register(), api.register()
    p = private_chat(api, a, b)
    info = _conninfo()
    holder = subprocess.Popen(
        ["psql", "-X", "-q", "-At", "-h", info["host"], "-p", str(info["port"]), "-U", info["user"],
         "-d", cluster[0].db.name],
        env=dict(os.environ, PGPASSWORD=info["password"]), stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    async def main():
        b_ws = await user_ws(cluster[0], b)
        holder.stdin.write("SELECT pg_advisory_lock(7316002);\nSELECT 'held';\n")
        holder.stdin.flush()
        assert (await rest(holder.stdout.readline)).strip() == "", "the lock call's empty line"
        assert (await rest(holder.stdout.readline)).strip() == "held"
        r = await rest(api.post, "/api/messages/", token=a["access"], timeout=30,
                       json={"chat": p, "text": "late", "client_id": "late-1"})
        assert r.status_code == 503, r.text
        await asyncio.sleep(1.5)  # the first request to read the log goes out meanwhile
        holder.communicate("SELECT pg_advisory_unlock(7316002);\n", timeout=10)
        f = await b_ws.until(is_("message", client_id=None, text="late"), timeout=30)
        again = await rest(api.post, "/api/messages/", token=a["access"],
                           json={"chat": p, "text": "late", "client_id": "late-1"})
        assert again.status_code == 200 and again.json()["id"] == f["message_id"], again.text
        await b_ws.close()

    try:
        run(main(), timeout=120)
    finally:
        if holder.poll() is None:
            holder.kill()


def test_a_receipt_noted_while_postgres_is_away_is_written_once_it_is_back(make_cluster):
    """A message reaches b's socket just before PostgreSQL stops: the delivered receipt,
    noted then, waits for the database instead of being dropped with its batch."""
    cluster, api, a, b, p = pair_on_two_nodes(make_cluster)

    async def main():
        a_ws = await user_ws(cluster[0], a)
        b_ws = await user_ws(cluster[1], b)
        m = rest_send(api[0], a, p, "delivered in the nick of time")["id"]
        await b_ws.until(is_("message", message_id=m), timeout=10)
        try:
            await rest(pg_ctl, "stop", "-m", "immediate", "-w", "-t", "60")
            await asyncio.sleep(1.5)
        finally:
            await rest(ensure_pg_running)
        await a_ws.until(is_("delivered", user_id=uid(b), last_delivered_message_id=m), timeout=20)
        r = await rest(api[0].get, f"/api/messages/?chat={p}&limit=1", token=a["access"])
        assert r.status_code == 200 and r.json()["results"][0]["status"] == "delivered", r.text
        for ws in (a_ws, b_ws):
            await ws.close()

    run(main(), timeout=90)


class SlowLink:
    """A TCP relay to a local port that can hold everything it carries, each way, for
    `delay` seconds: a database that still answers, only late (a congested link). `cut()`
    drops every connection through it and refuses new ones until `restore()`: the one node
    that goes through it loses that server (here Redis) while the others keep it."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.delay = 0.0
        self.up = True
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                near, _ = self.listener.accept()
            except OSError:
                return  # closed
            with self.lock:
                try:
                    if not self.up:
                        raise OSError("cut")
                    far = socket.create_connection(("127.0.0.1", self.target_port))
                except OSError:
                    near.close()
                    continue
                self.sockets += [near, far]
            for src, dst in ((near, far), (far, near)):
                q = queue.Queue()
                threading.Thread(target=self._read, args=(src, q), daemon=True).start()
                threading.Thread(target=self._write, args=(dst, q), daemon=True).start()

    def _read(self, src, q):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            q.put((time.monotonic() + self.delay, data))
            if not data:
                return

    @staticmethod
    def _write(dst, q):
        while True:
            due, data = q.get()
            time.sleep(max(0.0, due - time.monotonic()))
            try:
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                dst.sendall(data)
            except OSError:
                return

    def cut(self):
        with self.lock:
            self.up = False
            sockets, self.sockets = self.sockets, []
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def restore(self):
        with self.lock:
            self.up = True

    def close(self):
        self.listener.close()
        self.cut()


@pytest.fixture
def slow_link():
    """Makes SlowLinks; closes them after the test's nodes have stopped (set up before
    make_cluster, it is torn down after it)."""
    links = []

    def make(target_port):
        links.append(SlowLink(target_port))
        return links[-1]
    yield make
    for link in links:
        link.close()


def slow_node_cluster(slow_link, make_cluster, slow_env=None, **env):
    """Two nodes on one fresh database, node 1 reaching it through a SlowLink; `slow_env`:
    more settings of node 1. Returns the link and the cluster."""
    db = Database()
    link = slow_link(int(db.env["DB_PORT"]))
    node_1 = {"DB_HOST": "127.0.0.1", "DB_PORT": link.port, **(slow_env or {})}
    return link, make_cluster(2, database=db, node_env=[{}, node_1], **env)


async def open_db_connections(node, who):
    """Has `node` open its database connections now, before its link is slowed: opening
    one takes several round trips."""
    await asyncio.gather(*(rest(Client(node).get, "/api/chats/", token=who["access"])
                           for _ in range(6)))


def send_many(node, who, chat_id, n, threads=4):
    """`n` messages by `who` in `chat_id` through `node`, from `threads` clients at once;
    returns their ids."""
    def worker(k0):
        c = Client(node)
        return [rest_send(c, who, chat_id, f"filler {k}")["id"] for k in range(k0, n, threads)]
    with concurrent.futures.ThreadPoolExecutor(threads) as ex:
        return [i for part in ex.map(worker, range(threads)) for i in part]


LOST_REDIS = "lost the subscription connection"
BACK_ON_REDIS = "subscribed again; catching up"


def cuttable_redis_cluster(own_redis, slow_link, make_cluster):
    """Two nodes on one fresh database; node 1 reaches Redis (`own_redis`) through a
    SlowLink that can be cut, and the database through one that can be slowed. Returns the
    Redis link, the database link and the cluster."""
    rlink = slow_link(own_redis.port)
    dblink, cluster = slow_node_cluster(slow_link, make_cluster, {"REDIS_PORT": rlink.port},
                                        REDIS_PORT=own_redis.port)
    return rlink, dblink, cluster


async def cut_redis_after_a_message(api, node, rlink, sender, who, chat_id, silent=False):
    """Opens a user socket of `who` on `node`, has it get a message of `sender` in
    `chat_id`, then cuts `rlink` (node's Redis) and waits until node says so. `silent`:
    instead, `rlink` holds everything for 6 s (past the 2 s a node waits for an answer)
    and nothing is closed, so the node finds out only when it next waits for Redis.
    Returns the socket and the seq before that message."""
    ws = await user_ws(node, who)
    first = rest_send(api, sender, chat_id, "hello")["id"]
    since = (await ws.until(is_("message", message_id=first), timeout=10))["seq"] - 1
    await ws.drain(1.0)
    if silent:
        rlink.delay = 6.0
        return ws, since
    rlink.cut()
    await rest(wait_for, "the node lost Redis", lambda: LOST_REDIS in node.read_log(), 10, 0.01)
    return ws, since


async def restore_redis(node, rlink):
    """Lets `node` reach Redis through `rlink` again and waits until it has subscribed
    again (and begun its catch-up from the log)."""
    rlink.restore()
    await rest(wait_for, "the node subscribed again", lambda: BACK_ON_REDIS in node.read_log(),
               30, 0.01)


def ask_every_node_to_resync(own_redis, node, from_seq):
    """Publishes what a node that may have missed publishing events asks for: every node
    (sharing `node`'s Redis prefix) reads the log from `from_seq` on."""
    redis_cli(own_redis.port, "PUBLISH", f"{node.redis_prefix}resync", str(from_seq))


async def assert_got_all_after_a_last_message(api, ws, sender, who, chat_ids, since, timeout):
    """`sender` sends a last message in each chat; once `ws` (a user socket of `who`) has
    them (or `timeout` has passed for one: named with the rest of what is missing), it
    must have got every logged event of its replay after `since`, once each, in seq
    order."""
    for c in chat_ids:
        last = (await rest(rest_send, api, sender, c, "after"))["id"]
        try:
            await ws.until(is_("message", message_id=last), timeout=timeout)
        except AssertionError:
            pass  # named below, with the rest of what is missing
    await ws.drain(1.0)
    replay, after = [], since
    while True:
        r = await rest(api.get, f"/api/events/?since={after}&limit=500", token=who["access"])
        assert r.status_code == 200, r.text
        replay += r.json()["results"]
        if not r.json()["has_more"]:
            break
        after = replay[-1]["seq"]
    got = [f["seq"] for f in ws.seen if f["type"] in LOGGED and f.get("seq", 0) > since]
    want = [e["seq"] for e in replay]
    missing = [(e["seq"], e["type"], e["chat_id"]) for e in replay if e["seq"] not in got]
    assert not missing, missing
    assert got == want, [(got[k - 1], s) for k, s in enumerate(got) if k and s <= got[k - 1]]


def test_a_node_catching_up_from_a_slow_database_holds_a_bounded_number_of_events(
        own_redis, slow_link, make_cluster):
    """A node catching up from the event log (here after Redis cut its subscription) holds
    the live events of its chats until its reads are done. With a database that answers
    slowly, a busy chat's events would pile up for as long as that takes: past
    REDIS_MAX_HELD_EVENTS the node drops them and reads the log again from the first one
    dropped, also when its read was already on its way. The socket still gets every message
    once and in each chat's order, and the chats it caught up on in one seq order. (A chat
    joined meanwhile holds back the others' events for only a second while it is read,
    and this database takes longer: its events may come after newer ones of the others.)"""
    limit = 20
    link, cluster = slow_node_cluster(slow_link, make_cluster, {"REDIS_MAX_HELD_EVENTS": limit},
                                      REDIS_PORT=own_redis.port)
    api = [Client(n) for n in cluster]
    a, b = api[0].register(), api[0].register()
    p = private_chat(api[0], a, b)
    q = group_chat(api[0], a, b, name="quiet")

    async def main():
        b_ws = await user_ws(cluster[1], b)
        sent = {p: [(await rest(rest_send, api[0], a, p, "before"))["id"]], q: []}
        await b_ws.until(is_("message", message_id=sent[p][0]), timeout=10)
        # A catch-up read takes 1.2 s a round trip: more than `limit` events come meanwhile
        # whether or not a connection must be opened first (at 0.25 s, the drop happened
        # only when one had to be).
        link.delay = 0.6
        redis_cli(own_redis.port, "CLIENT", "KILL", "TYPE", "pubsub")
        held = []
        for k in range(160):
            if k == 40:  # a chat node 1 does not hear yet: its events come on b's channel
                g = await rest(group_chat, api[0], a, b, name="made while catching up")
                sent[g] = []
            chat = g if k > 40 and k % 2 else q if k % 7 == 3 else p
            sent[chat].append((await rest(rest_send, api[0], a, chat, f"during {k}"))["id"])
            if k % 8 == 0:
                held.append(value(await rest(scrape, api[1]), "chatd_broker_held_events"))
            await asyncio.sleep(0.02)
        link.delay = 0
        for chat, ids in sent.items():
            await wait_seen(b_ws, chat, ids, timeout=30)
        await b_ws.drain(0.5)
        for chat, ids in sent.items():
            assert message_ids_seen(b_ws, chat) == sorted(ids), (chat, message_ids_seen(b_ws, chat))
        assert len([f for f in b_ws.seen if f["type"] == "chat_created"]) == 1
        caught_up = [f["seq"] for f in b_ws.seen if f.get("chat_id") in (p, q) and "seq" in f]
        assert caught_up == sorted(set(caught_up)), caught_up
        m = await rest(scrape, api[1])
        assert value(m, "chatd_broker_held_dropped_total") > 0, held
        assert max(held) <= limit and value(m, "chatd_broker_held_events") == 0, held
        await b_ws.close()

    try:
        run(main(), timeout=180)
    finally:
        link.delay = 0


def test_redis_lost_again_while_a_node_catches_up_loses_nothing(own_redis, slow_link, make_cluster):
    """A node that lost Redis catches every local user up from the event log once it has
    subscribed again; here its database answers a second late, so that takes a while, and
    Redis is lost again before it is done. The events it had still to read were lost: the
    next catch-up started from the newest event the connection had brought, past a chat
    made while Redis was away (its chat_created and every message after it, for good) and
    past a chat made between the two losses, whose chat_created then came after newer
    events and whose message sent meanwhile went to no one. The socket must get every event
    of its replay, once, in seq order."""
    rlink, dblink, cluster = cuttable_redis_cluster(own_redis, slow_link, make_cluster)
    api = Client(cluster[0])
    a, u = api.register(), api.register()
    p = private_chat(api, a, u)
    lost, back = LOST_REDIS, BACK_ON_REDIS

    def logged(text, times):
        return lambda: cluster[1].read_log().count(text) >= times

    async def main():
        u_ws, since = await cut_redis_after_a_message(api, cluster[1], rlink, a, u, p)
        # More than a page of the catch-up (500) for u, then a new chat.
        await rest(send_many, cluster[0], u, p, 520)
        g1 = await rest(group_chat, api, a, u, name="made while Redis was away")
        await rest(rest_send, api, a, g1, "in g1")
        dblink.delay = 1.0
        rlink.restore()
        await rest(wait_for, "node 1 subscribed again", logged(back, 1), 30, 0.01)
        await rest(rest_send, api, a, p, "between the losses")
        g2 = await rest(group_chat, api, a, u, name="made between the losses")
        await asyncio.sleep(0.2)
        rlink.cut()  # the catch-up's first page is still on its way
        await rest(wait_for, "node 1 lost Redis again", logged(lost, 2), 10, 0.01)
        await rest(rest_send, api, a, g2, "in g2 while Redis was away again")
        await asyncio.sleep(0.3)
        rlink.restore()
        await rest(wait_for, "node 1 subscribed again (2)", logged(back, 2), 30, 0.01)
        await asyncio.sleep(5)
        dblink.delay = 0
        await assert_got_all_after_a_last_message(api, u_ws, a, u, (p, g1, g2), since, 15)
        await u_ws.close()

    try:
        run(main(), timeout=180)
    finally:
        dblink.delay = 0


def test_a_chat_joined_during_a_catch_up_of_every_user_waits_for_its_older_pages(
        own_redis, slow_link, make_cluster):
    """A node that lost Redis catches every local user up from the event log, page by page,
    once it has subscribed again; here its database answers a second late and there are
    three pages. A group the user joined while Redis was away is heard from its
    chat_created, in the first page. Read on its own, it went live while the catch-up still
    had older pages to read, and its live messages reached the socket before older
    messages of another chat. Adopted by the catch-up only once its next page was being
    read, its messages in that page were passed over for good. The socket must get every
    event of its replay, once, in seq order."""
    rlink, dblink, cluster = cuttable_redis_cluster(own_redis, slow_link, make_cluster)
    api = Client(cluster[0])
    a, u = api.register(), api.register()
    p = private_chat(api, a, u)

    async def main():
        u_ws, since = await cut_redis_after_a_message(api, cluster[1], rlink, a, u, p)
        g = await rest(group_chat, api, a, u, name="made while Redis was away")
        await rest(send_many, cluster[0], u, p, 600)  # past the catch-up's first page (500)
        for k in range(3):
            await rest(rest_send, api, a, g, f"in the second page {k}")
        await rest(send_many, cluster[0], u, p, 500)  # and a third page
        dblink.delay = 1.0
        await restore_redis(cluster[1], rlink)
        for k in range(16):  # while the pages are read
            await rest(rest_send, api, a, g, f"live {k}")
            await asyncio.sleep(0.5)
        dblink.delay = 0
        await assert_got_all_after_a_last_message(api, u_ws, a, u, (p, g), since, 20)
        await u_ws.close()

    try:
        run(main(), timeout=180)
    finally:
        dblink.delay = 0


@pytest.mark.parametrize("silent", [False, True], ids=["cut", "silent"])
def test_a_chat_made_during_an_outage_reaches_a_socket_open_through_it_beside_a_newer_one(
        own_redis, slow_link, make_cluster, silent):
    """A user's socket stays open on a node through a Redis outage, during which a group
    with the user is made (its chat_created, meant for the node, is lost with Redis) and
    the user opens a second socket on the same node. The second socket makes the node hear
    the group from where it read its chats, past the chat_created; the node used to go on
    from there once Redis was back, so the first socket never heard of the group, and none
    of its messages reached it. Cut: the node knows Redis is away when the second socket
    opens. Silent: Redis stops answering the node without closing anything, and the node
    finds out only when the second socket's subscription goes unconfirmed. Both sockets
    must get every event of their replay, once, in seq order."""
    rlink, _, cluster = cuttable_redis_cluster(own_redis, slow_link, make_cluster)
    api = Client(cluster[0])
    a, u = api.register(), api.register()
    p = private_chat(api, a, u)

    async def main():
        first, since = await cut_redis_after_a_message(api, cluster[1], rlink, a, u, p, silent)
        g = await rest(group_chat, api, a, u, name="made while Redis was away")
        await rest(rest_send, api, a, g, "before the second socket")
        second = await user_ws(cluster[1], u)
        second_since = max((e["seq"] for e in (await rest(
            api.get, f"/api/events/?since={since}&limit=500", token=u["access"])).json()["results"]))
        await rest(wait_for, "node 1 lost Redis", lambda: LOST_REDIS in cluster[1].read_log(), 10, 0.01)
        await rest(rest_send, api, a, g, "after the second socket")
        rlink.delay = 0
        await restore_redis(cluster[1], rlink)
        await assert_got_all_after_a_last_message(api, first, a, u, (p, g), since, 20)
        await assert_got_all_after_a_last_message(api, second, a, u, (g,), second_since, 20)
        await first.close()
        await second.close()

    try:
        run(main(), timeout=120)
    finally:
        rlink.delay = 0


@pytest.mark.parametrize("opener,resync", [("same-user", False), ("new-user", False),
                                           ("new-user", True)],
                         ids=["same-user", "new-user", "new-user-beside-a-resync"])
def test_a_chat_made_during_an_outage_reaches_a_socket_open_through_it_when_one_opens_after(
        own_redis, slow_link, make_cluster, opener, resync):
    """As above, but the other socket opens once Redis is back, while the node's catch-up of
    the outage still reads (a slow database, six pages of messages before the group's
    chat_created): a second socket of the same user, or the first of another member. It
    made the node hear the group from where it read its chats, past the chat_created,
    beside that catch-up, which then passed the group over: the socket open through the
    outage never heard of it. Every socket must get every event of its replay, once, in
    seq order. Beside a resync: another node (as one that committed while Redis was away
    does) asks every node to read the log from before the outage, so two catch-ups of every
    user read at once."""
    rlink, dblink, cluster = cuttable_redis_cluster(own_redis, slow_link, make_cluster)
    api = Client(cluster[0])
    a, u, w = api.register(), api.register(), api.register()
    p = private_chat(api, a, u)

    async def main():
        await open_db_connections(cluster[1], u)
        first, since = await cut_redis_after_a_message(api, cluster[1], rlink, a, u, p)
        await rest(send_many, cluster[0], a, p, 3000, 8)
        g = await rest(group_chat, api, a, u, w, name="made while Redis was away")
        await rest(rest_send, api, a, g, "before the other socket")
        # Each of the catch-up's seven reads takes 0.6 s; the socket's own reads make it
        # ask for the group after about three of them.
        dblink.delay = 0.3
        await restore_redis(cluster[1], rlink)
        if resync:
            ask_every_node_to_resync(own_redis, cluster[1], since + 1)
        opener_user = u if opener == "same-user" else w
        second = await user_ws(cluster[1], opener_user)
        dblink.delay = 0
        # At least where the socket read its chats (the first socket's receipts may follow).
        second_since = max(e["seq"] for e in (await rest(
            api.get, "/api/events/?since=0&limit=500", token=w["access"])).json()["results"])
        await assert_got_all_after_a_last_message(api, first, a, u, (p, g), since, 20)
        await assert_got_all_after_a_last_message(api, second, a, opener_user, (g,),
                                                  second_since, 20)
        await first.close()
        await second.close()

    try:
        run(main(), timeout=180)
    finally:
        dblink.delay = 0
        rlink.restore()


def test_two_catch_ups_of_every_user_release_what_they_held_in_one_seq_order(
        own_redis, slow_link, make_cluster):
    """After an outage a node catches up from the log, and a resync (asked by a node that
    committed while Redis was away) starts a second catch-up of every user beside it.
    Events that come live meanwhile are held: a chat's own with the chat, those of chats
    the node does not hear (a new group's chat_created) apart. The first catch-up to end
    made its chats live, and their held messages went out while an older chat_created was
    still held for the other one: the socket's seq went back. The resync comes while the
    first catch-up reads its last page from a slow database, and new groups and messages
    come meanwhile; the socket open through the outage must get every event of its
    replay, once, in seq order."""
    rlink, dblink, cluster = cuttable_redis_cluster(own_redis, slow_link, make_cluster)
    api = Client(cluster[0])
    a, u = api.register(), api.register()
    p = private_chat(api, a, u)

    async def main():
        await open_db_connections(cluster[1], u)
        first, since = await cut_redis_after_a_message(api, cluster[1], rlink, a, u, p)
        await rest(send_many, cluster[0], a, p, 600, 8)
        dblink.delay = 1.0  # a read: 2 s; the catch-up after the loss reads two pages
        await restore_redis(cluster[1], rlink)
        groups = []
        t0 = time.monotonic()
        resync_sent = False
        while time.monotonic() - t0 < 7.0:
            if not resync_sent and time.monotonic() - t0 > 2.5:
                ask_every_node_to_resync(own_redis, cluster[1], since + 1)
                resync_sent = True
            k = len(groups)
            groups.append(await rest(group_chat, api, a, u, name=f"made while catching up {k}"))
            await rest(rest_send, api, a, p, f"live {k}")
            await asyncio.sleep(0.05)
        dblink.delay = 0
        await assert_got_all_after_a_last_message(api, first, a, u, [p] + groups, since, 20)
        await first.close()

    try:
        run(main(), timeout=180)
    finally:
        dblink.delay = 0
        rlink.restore()


@pytest.mark.parametrize("cut,delay", [(True, 0.25), (False, 0.5)], ids=["redis-cut", "slow-reads"])
def test_a_first_socket_whose_catch_up_redis_cut_short_keeps_seq_order(
        own_redis, slow_link, make_cluster, cut, delay):
    """A user's first socket on a node makes it hear the user's chats it did not, read from
    the log while the others go on live; the socket holds both and sends them in seq order
    once the read is done. Redis lost while that read is out cuts the read short: the
    catch-up after the loss brings what it held. Made ready when the cut-short one ended,
    the socket sent a newer message of a chat the node heard before an older one of the
    chat being read (every run). Without a loss, a database answering 0.5 s late did the
    same: the socket's wait (3 s at most) was counted from before its own reads."""
    rlink, dblink, cluster = cuttable_redis_cluster(own_redis, slow_link, make_cluster)
    api = Client(cluster[0])
    a, u, v = api.register(), api.register(), api.register()
    x = group_chat(api, a, u, v, name="heard")  # node 1 hears it through v's socket
    y = private_chat(api, a, u)                  # ...not this one, until u's socket opens

    def subscribers(chat_id):
        out = redis_cli(own_redis.port, "PUBSUB", "NUMSUB", f"{cluster[1].redis_prefix}c:{chat_id}")
        return int(out[1])

    async def main():
        v_ws = await user_ws(cluster[1], v)
        first = rest_send(api, a, x, "hello")["id"]
        await v_ws.until(is_("message", message_id=first), timeout=10)
        dblink.delay = delay
        # Its handshake reads through the slow link, behind node 1's other work there (seen
        # to take 12 s on a busy machine): the wait below, not the client's usual 10 s, is
        # what it is given.
        opening = asyncio.create_task(user_ws(cluster[1], u, open_timeout=40))
        await rest(wait_for, "node 1 hears y", lambda: subscribers(y) > 0, 30, 0.005)
        older = (await rest(rest_send, api, a, y, "older, in the chat being read"))["id"]
        newer = (await rest(rest_send, api, a, x, "newer, in a chat heard"))["id"]
        await v_ws.until(is_("message", message_id=newer), timeout=5)
        if cut:
            rlink.cut()  # the read that brings `older` is still out
        u_ws = await asyncio.wait_for(opening, 40)
        await u_ws.drain(1.5)
        rlink.restore()
        dblink.delay = 0
        for m in (older, newer):
            await u_ws.until(is_("message", message_id=m), timeout=20)
        check_seq_order(u_ws)
        got = [f["message_id"] for f in u_ws.seen if f["type"] == "message"]
        assert got.index(older) < got.index(newer), got
        await u_ws.close()
        await v_ws.close()

    try:
        run(main(), timeout=120)
    finally:
        dblink.delay = 0


def test_a_chat_joined_through_an_event_comes_before_newer_events_of_other_chats(
        slow_link, make_cluster):
    """A new chat reaches a node as an event on its members' channels; the node starts
    hearing the chat then, and reads from the log what the chat had meanwhile. A busy
    chat's newer events wait for that read (a database answering in 0.1 s here), so the
    socket's seqs still only grow."""
    link, cluster = slow_node_cluster(slow_link, make_cluster)
    api = [Client(n) for n in cluster]
    a, b = api[0].register(), api[0].register()
    p = private_chat(api[0], a, b)

    async def main():
        b_ws = await user_ws(cluster[1], b)
        await open_db_connections(cluster[1], b)
        link.delay = 0.05
        stop = threading.Event()

        def chatter():
            sent = []
            while not stop.is_set() and len(sent) < 300:
                sent.append(rest_send(Client(cluster[0]), a, p, "busy")["id"])
                time.sleep(0.01)
            return sent
        busy = asyncio.get_running_loop().run_in_executor(None, chatter)
        await asyncio.sleep(0.5)
        g = await rest(group_chat, api[0], a, b, name="new while busy")
        new = [(await rest(rest_send, api[0], a, g, f"new {k}"))["id"] for k in range(3)]
        await asyncio.sleep(0.5)
        stop.set()
        busy = await busy
        link.delay = 0
        await wait_seen(b_ws, g, new, timeout=20)
        await wait_seen(b_ws, p, busy, timeout=20)
        check_seq_order(b_ws)
        await b_ws.close()

    try:
        run(main(), timeout=120)
    finally:
        link.delay = 0


def test_a_chat_joined_through_an_event_waits_for_older_events_still_coming_from_redis(
        slow_link, make_cluster):
    """The node reads a chat joined through an event from the log, fast, while the other
    chats' events reach it through Redis, here 0.05 s late, and the new chat keeps busy.
    Events of other chats committed just before the new chat's newest were still on their
    way when the log's newer ones went out: the socket's seqs went back (every run). The
    read now waits until Redis has brought everything up to the newest seq it read."""
    link = slow_link(int(os.environ["CHATD_TEST_REDIS_PORT"]))
    cluster = make_cluster(2, node_env=[{}, {"REDIS_PORT": link.port}])
    api = [Client(n) for n in cluster]
    a, b, c = api[0].register(), api[0].register(), api[0].register()
    busy_chats = [group_chat(api[0], c, b, name=f"busy {k}") for k in range(3)]

    async def main():
        b_ws = await user_ws(cluster[1], b)
        link.delay = 0.05
        stop = threading.Event()
        newest = []  # the chats joined so far, the newest last

        def chatter(sender, chats_of):
            sent = {}
            me = Client(cluster[0])
            for k in range(1000):
                chats = chats_of()
                if stop.is_set():
                    break
                if not chats:
                    time.sleep(0.01)
                    continue
                chat = chats[k % len(chats)]
                sent.setdefault(chat, []).append(rest_send(me, sender, chat, f"k{k}")["id"])
                time.sleep(0.003)
            return sent
        loop = asyncio.get_running_loop()
        # Other chats' events all along, and the chat just joined busy as it is read.
        busy = loop.run_in_executor(None, chatter, c, lambda: busy_chats)
        joining = loop.run_in_executor(None, chatter, a, lambda: newest[-1:])
        await asyncio.sleep(0.3)
        for k in range(6):
            newest.append(await rest(group_chat, api[0], a, b, name=f"joined {k}"))
            await asyncio.sleep(0.3)
        stop.set()
        busy, joining = await busy, await joining
        link.delay = 0
        for chat, ids in list(busy.items()) + list(joining.items()):
            await wait_seen(b_ws, chat, ids, timeout=20)
        check_seq_order(b_ws)
        await b_ws.close()

    try:
        run(main(), timeout=120)
    finally:
        link.delay = 0


@pytest.mark.parametrize("resume", [False, True], ids=["fresh", "since"])
def test_a_first_socket_gets_its_new_chats_in_seq_order_with_busy_ones(slow_link, make_cluster, resume):
    """A user's first socket on a node makes the node hear the user's chats it did not yet
    hear, and read from the log what they had since the socket read its chats, while the
    chats it heard already go on live. With a database answering in 0.05 s, a busy chat's
    newer events came before a quiet one's older, caught-up ones: the socket's seqs went
    back. Fresh, or resuming with since=, its seqs only grow, and nothing is missing."""
    link, cluster = slow_node_cluster(slow_link, make_cluster)
    api = [Client(n) for n in cluster]
    a, b, c = api[0].register(), api[0].register(), api[0].register()
    busy_chat = group_chat(api[0], a, b, c, name="busy")
    quiet = private_chat(api[0], a, b)

    async def main():
        c_ws = await user_ws(cluster[1], c)  # node 1 hears the busy chat, not the quiet one
        since = (await rest(api[0].get, "/api/events/?since=0", token=b["access"])).json()["seq"]
        await open_db_connections(cluster[1], b)
        link.delay = 0.05
        stop = threading.Event()

        def chatter():
            sent = {busy_chat: [], quiet: []}
            me = Client(cluster[0])
            for k in range(400):
                if stop.is_set():
                    break
                chat = quiet if k % 4 == 0 else busy_chat
                sent[chat].append(rest_send(me, a, chat, f"k{k}")["id"])
                time.sleep(0.005)
            return sent
        work = asyncio.get_running_loop().run_in_executor(None, chatter)
        await asyncio.sleep(0.5)
        b_ws = await (user_ws(cluster[1], b, sync=False, since=since) if resume else user_ws(cluster[1], b))
        await asyncio.sleep(0.5)
        stop.set()
        sent = await work
        link.delay = 0
        last = max(max(ids) for ids in sent.values())
        await b_ws.until(lambda f: f.get("type") == "message" and f["message_id"] == last, timeout=20)
        await b_ws.drain(0.3)
        if resume:  # everything since the cursor, once
            for chat, ids in sent.items():
                assert message_ids_seen(b_ws, chat) == ids, chat
        check_seq_order(b_ws)
        await b_ws.close()
        await c_ws.close()

    try:
        run(main(), timeout=120)
    finally:
        link.delay = 0


# ---- login throttling is counted by all nodes together ------------------------------------------

def test_login_failures_are_counted_across_nodes(make_cluster):
    cluster = make_cluster(3, LOGIN_FAILURES_PER_USER=3, LOGIN_FAILURES_PER_ADDRESS=50,
                           LOGIN_FAILURE_WINDOW="10m", TRUSTED_PROXIES="127.0.0.1")
    api = [Client(n) for n in cluster]
    user = api[0].register()
    name, password = user["user"]["username"], user["password"]

    def login(node, pw, address):
        return api[node].post("/api/auth/login/", json={"username": name, "password": pw},
                              headers={"X-Forwarded-For": address})

    # One failure on each node: three in all, the limit for this account and address.
    for node in range(3):
        assert login(node, "wrong-guess", "203.0.113.9").status_code == 401
    for node in range(3):
        r = login(node, "wrong-guess", "203.0.113.9")
        assert r.status_code == 429, (node, r.text)
        assert 0 < int(r.headers["Retry-After"]) <= 600
    # The right password from another address still works on every node.
    for node in range(3):
        assert login(node, password, "198.51.100.3").status_code == 200


def test_a_users_requests_are_counted_across_nodes(make_cluster):
    cluster = make_cluster(2, USER_THROTTLE_RATE="4/hour")
    api = [Client(n) for n in cluster]
    user = api[0].register()
    for i in range(4):  # two on each node: four in all, the limit
        assert api[i % 2].get("/api/users/me/", token=user["access"]).status_code == 200
    for node in range(2):
        r = api[node].get("/api/chats/", token=user["access"])
        assert r.status_code == 429, (node, r.text)
        assert 0 < int(r.headers["Retry-After"]) <= 900
    # Another user is counted apart.
    other = api[1].register()
    assert api[0].get("/api/users/me/", token=other["access"]).status_code == 200


def test_unread_counts_stay_exact_with_senders_on_another_node(make_cluster):
    """The reader's node hears the messages through Redis, later than the store has them."""
    cluster = make_cluster(2)
    unread_stays_exact_under_sends([cluster[0]], cluster[1], Client(cluster[0]))


def test_a_member_added_on_a_node_that_hears_the_chat_for_no_one_gets_member_added(make_cluster):
    """The new member's node starts hearing the chat at its chat_created: the member_added
    of the same change still reaches the new member's socket there, as on one node."""
    cluster = make_cluster(2)
    api = Client(cluster[0])
    a, b, c = api.register(), api.register(), api.register()
    group = group_chat(api, a, b, name="elsewhere")

    async def main():
        a_user = await user_ws(cluster[0], a)
        c_user = await user_ws(cluster[1], c)
        r = api.post(f"/api/chats/{group}/members/", token=a["access"], json={"user_id": uid(c)})
        assert r.status_code == 201, r.text
        want = {"type": "member_added", "chat_id": group, "user_id": uid(c), "role": "member"}
        created = await c_user.until(is_("chat_created", chat_id=group))
        added = await c_user.until(is_("member_added", chat_id=group))
        assert {k: v for k, v in added.items() if k != "seq"} == want, added
        assert created["seq"] < added["seq"], (created, added)
        await a_user.until(is_("member_added", chat_id=group))
        for ws in (a_user, c_user):
            await ws.close()

    run(main())


def redis_input_bytes(port):
    stats = redis_cli(port, "INFO", "stats")
    return int(next(s for s in stats if s.startswith("total_net_input_bytes:")).split(":")[1])


def test_a_large_new_group_reaches_other_nodes_at_a_cost_linear_in_its_size(own_redis, make_cluster):
    """A new chat's event names every member, and each member's node must start hearing the
    chat. Past a few members their channels get a notice, not a copy each (members² bytes:
    a 10,000-member group once took gigabytes and a node with it), and the node reads the
    event from the log: once, in order with what follows it."""
    cluster = make_cluster(2, REDIS_PORT=own_redis.port, PASSWORD_HASH_MEMORY_KIB=1024,
                           PASSWORD_HASH_OPS=1)
    api = Client(cluster[0])
    owner = api.register()
    others = [api.register() for _ in range(199)]
    far, leaver, near = others[0], others[1], others[2]
    # A chat the far member's node hears, busy while the group is made: its events must not
    # overtake the new chat's on the far member's socket (seqs only grow).
    busy = private_chat(api, far, near)

    async def main():
        far_ws = await user_ws(cluster[1], far)
        leaver_ws = await user_ws(cluster[1], leaver)
        near_ws = await user_ws(cluster[0], near)
        before = redis_input_bytes(own_redis.port)
        chatter = asyncio.get_running_loop().run_in_executor(
            None, lambda: [rest_send(Client(cluster[0]), near, busy, f"busy {i}") for i in range(40)])
        r = api.post("/api/chats/", token=owner["access"],
                     json={"type": "group", "name": "everyone", "member_ids": [uid(o) for o in others]})
        assert r.status_code == 201, r.text
        group = r.json()["id"]
        # A message, then a removal at once: the leaver's node must bring the message (sent
        # while they were a member) and the removal after the creation, in that order.
        first = rest_send(api, owner, group, "welcome")
        r = api.request("DELETE", f"/api/chats/{group}/members/{uid(leaver)}/", token=owner["access"])
        assert r.status_code == 204, r.text
        second = rest_send(api, owner, group, "after the leaver")
        await chatter
        for ws in (far_ws, near_ws):
            created = await ws.until(is_("chat_created", chat_id=group))
            assert len(created["chat"]["members"]) == 200, len(created["chat"]["members"])
            await ws.until(is_("message", message_id=second["id"]))
        got = [await leaver_ws.until(p) for p in (
            is_("chat_created", chat_id=group), is_("message", message_id=first["id"]),
            is_("member_removed", chat_id=group, user_id=uid(leaver)))]
        assert [f["seq"] for f in got] == sorted(f["seq"] for f in got), got
        # A copy per member would be 199 x ~11 KB (the chat and its 200 members) = 2 MB.
        spent = redis_input_bytes(own_redis.port) - before
        assert spent < 300_000, spent
        for ws in (far_ws, leaver_ws, near_ws):
            await ws.drain(0.5)
            assert len([f for f in ws.seen if f.get("type") == "chat_created"]) == 1, (ws.name, ws.seen)
            check_seq_order(ws)
        for ws in (far_ws, near_ws):
            assert len([f for f in ws.seen if f.get("type") == "message" and f["chat_id"] == busy]) == 40
        assert not [f for f in leaver_ws.seen if f.get("type") == "message" and f["message_id"] == second["id"]]
        for ws in (far_ws, leaver_ws, near_ws):
            await ws.close()

    run(main(), timeout=90)


def test_events_a_killed_node_committed_but_never_published_still_arrive_in_order(make_cluster):
    """A node killed between its COMMIT and its PUBLISH leaves events in the log that no
    node was told of. Seqs are gapless, so the next commit (on any node) finds the gap when
    it publishes, and every node reads the missing events from the log before the newer
    ones: the sockets get them late, but in commit order and before what follows."""
    cluster = make_cluster(2)
    api = [Client(n) for n in cluster]
    a, b = api[0].register(), api[0].register()
    g = group_chat(api[0], a, b, name="gap")

    async def main():
        b_user = await user_ws(cluster[1], b)
        b_chat = await chat_ws(cluster[1], b, g)
        first = (await rest(rest_send, api[0], a, g, "before the crash"))["id"]
        await b_user.until(is_("message", message_id=first))
        await b_chat.until(is_("message", message_id=first))
        # b's delivery receipt is the last commit before the crash.
        await b_user.until(is_("delivered", user_id=uid(b), last_delivered_message_id=first))
        # What the killed node left: its event taken with the next seq under the event-log
        # lock and committed (a copy of the first message's event), and nothing published.
        cluster.db.execute(
            "DO $$ BEGIN PERFORM pg_advisory_xact_lock(7316002); "
            "UPDATE event_log_state SET last_seq = last_seq + 1 WHERE id = 1; "
            "INSERT INTO events(seq, chat_id, user_id, type, payload, created_at, message_id) "
            "SELECT s.last_seq, e.chat_id, e.user_id, e.type, e.payload, e.created_at, e.message_id "
            f"FROM events e, event_log_state s WHERE s.id = 1 AND e.message_id = {first} "
            "AND e.type = 'message'; END $$")
        lost = cluster.db.scalar(
            f"SELECT max(seq) FROM events WHERE message_id = {first} AND type = 'message'")
        await b_user.drain(0.5)
        assert not [f for f in b_user.seen if f.get("seq") == lost], "published by no one"
        # The next commit (b's sockets are on node 1; this goes through node 0).
        second = (await rest(rest_send, api[0], a, g, "after the crash"))["id"]
        again = await b_user.until(lambda f: f.get("seq") == lost, timeout=10)
        assert again["type"] == "message" and again["message_id"] == first, again
        after = await b_user.until(is_("message", message_id=second))
        assert after["seq"] > lost, (after, lost)
        check_seq_order(b_user)
        # The chat socket (no seqs) got both, the lost one first.
        await b_chat.until(is_("message", message_id=second))
        copies = [f["message_id"] for f in messages_in(b_chat.seen, g)]
        assert copies == [first, first, second], copies
        for ws in (b_user, b_chat):
            await ws.close()

    run(main())


def redis_cli(port, *args):
    r = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_a_killed_nodes_users_are_offline_within_presence_ttl(make_cluster):
    """A node's presence entries live five sixths of PRESENCE_TTL past each refresh and the
    nodes sweep every sixth of it, so a killed node's users are offline within the TTL."""
    ttl = 6
    cluster = make_cluster(2, PRESENCE_TTL=ttl, PRESENCE_GRACE=1)
    api = Client(cluster[0])
    b, d = api.register(), api.register()
    private_chat(api, b, d)
    port = cluster[0].env["REDIS_PORT"]
    entries = f"{cluster[0].redis_prefix}p:{uid(d)}"

    async def main():
        b_ws = await user_ws(cluster[0], b)
        await user_ws(cluster[1], d)
        await rest(wait_for, "d online", lambda: is_online(api, b, d) is True, timeout=5)
        # Through two refreshes (one every third of the TTL), no entry outlives 5/6 of it.
        for _ in range(12):
            now_s, now_us = redis_cli(port, "TIME")
            now = int(now_s) * 1000 + int(now_us) // 1000
            scores = [float(x) for x in redis_cli(port, "ZRANGE", entries, "0", "-1", "WITHSCORES")[1::2]]
            assert scores and all(s - now <= ttl * 1000 * 5 / 6 + 50 for s in scores), (scores, now)
            await asyncio.sleep(0.4)
        cluster[1].kill()
        # The last entry the node wrote (Redis runs on this machine's clock): d is offline
        # once it expires, within 5/6 of the TTL of the kill.
        expires = max(float(x) for x in redis_cli(port, "ZRANGE", entries, "0", "-1", "WITHSCORES")[1::2])
        await rest(wait_for, "d offline", lambda: is_online(api, b, d) is False, timeout=ttl + 10,
                   interval=0.1)
        # Polling REST on a loaded machine gets a few seconds on top.
        assert time.time() - expires / 1000 <= 3.0, time.time() - expires / 1000
        await saw(b_ws, is_("user_status", user_id=uid(d), is_online=False), timeout=5)
        await b_ws.close()

    run(main(), timeout=60)


def test_the_socket_limit_holds_for_the_deployment(make_cluster):
    """WS_MAX_SOCKETS_PER_USER counts a user's sockets on every node together: the socket past
    the limit closes the user's oldest, whichever node holds it. A killed node's sockets stop
    counting once its presence has expired, so they push none of the living ones out."""
    ttl = 3
    cluster = make_cluster(2, WS_MAX_SOCKETS_PER_USER=4, PRESENCE_TTL=ttl, PRESENCE_GRACE=1)
    api = Client(cluster[0])
    a, b = api.register(), api.register()
    chat = private_chat(api, a, b)

    async def all_open(sockets):
        for ws in sockets:
            await ws.ping()

    async def main():
        # Four, on alternating nodes: within the limit.
        s = [await user_ws(cluster[i % 2], a) for i in range(4)]
        await all_open(s)
        # A fifth on node 1 closes the oldest, on node 0; a sixth on node 0 (a chat socket)
        # the next oldest, on node 1.
        s.append(await user_ws(cluster[1], a))
        assert await s[0].closed() == 1008
        assert throttled_count(Client(cluster[1]), "ws_sockets") == 1  # counted where decided
        s.append(await chat_ws(cluster[0], a, chat))
        assert await s[1].closed() == 1008
        await all_open(s[2:])
        m = rest_send(api, b, chat, "to the four left")["id"]
        for ws in s[2:]:
            await ws.until(is_("message", message_id=m), timeout=10)
        # Another user is not counted with a.
        b_sockets = [await user_ws(cluster[i % 2], b) for i in range(4)]
        await all_open(b_sockets + s[2:])

        # Node 1 dies with s[3] and s[4]; once its presence has expired, two more sockets on
        # node 0 make four there, and s[2] and s[5] stay open.
        cluster[1].kill()
        await asyncio.sleep(ttl + 1)
        s += [await user_ws(cluster[0], a) for _ in range(2)]
        await asyncio.sleep(0.5)
        for ws in (s[2], s[5], s[6], s[7]):
            await ws.ping()
        # And the limit still holds on what is left.
        s.append(await user_ws(cluster[0], a))
        assert await s[2].closed() == 1008
        await all_open(s[5:])
        for ws in s[5:] + b_sockets[::2]:
            await ws.close()

    run(main(), timeout=60)


def test_sockets_opening_at_once_on_fresh_nodes_keep_the_limit(make_cluster):
    """Sockets that open together, on nodes that have just started, are counted as the
    others are: one the limit closes while it is still opening (its node not yet hearing the
    user) closes once it is open, and a node's own sockets count from its first socket on,
    before its presence has written anything. Rounds of a few sockets at once, limit 2."""
    cluster = make_cluster(2, WS_MAX_SOCKETS_PER_USER=2)
    api = Client(cluster[0])
    a = api.register()

    async def state(ws):
        """'open' or the close code, once the socket has settled."""
        try:
            await ws.ping(timeout=3)
        except (AssertionError, ConnectionClosed):
            return ws.conn.close_code
        return "open"

    async def main():
        for round_ in range(4):
            sockets = await asyncio.gather(*(connect(cluster[i % 2], a["access"], "/ws/", sync=False,
                                                     name=f"r{round_}s{i}") for i in range(5)))
            # Settled once two remain open (closes cross nodes through Redis: give a slow
            # build a few seconds), and then still two.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 6
            await asyncio.sleep(1.0)
            states = [await state(ws) for ws in sockets]
            while states.count("open") > 2 and loop.time() < deadline:
                await asyncio.sleep(0.3)
                states = [await state(ws) for ws in sockets]
            assert states.count("open") == 2, (round_, states)
            assert all(s in ("open", 1008) for s in states), (round_, states)
            for ws in sockets:
                await ws.close()
            await asyncio.sleep(0.3)

    run(main(), timeout=60)


# ---- additions racing other chat changes --------------------------------------------------------

def at_once(*calls):
    """Runs the calls in threads released together; their results, in order."""
    barrier = threading.Barrier(len(calls))
    out = [None] * len(calls)

    def one(i, call):
        barrier.wait(30)
        out[i] = call()

    threads = [threading.Thread(target=one, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def members_from_events(api, who, chat, since):
    """The member list a client builds from its replayed events of `chat`."""
    members = None
    for e in api.get(f"/api/events/?since={since}&limit=1000", token=who["access"]).json()["results"]:
        if e.get("chat_id") != chat:
            continue
        if e["type"] == "chat_created":
            members = {m["id"] for m in e["chat"]["members"]}
        elif members is not None and e["type"] == "member_added":
            members.add(e["user_id"])
        elif members is not None and e["type"] == "member_removed":
            members.discard(e["user_id"])
    return members


def test_members_added_at_once_through_two_nodes_each_learn_of_the_other(make_cluster):
    """Two additions at once: the one committed second must name the first in its
    `chat_created` (the first's `member_added` went out before it joined), and neither
    member's replay may start before their own joining."""
    cluster = make_cluster(2)
    api = [Client(n) for n in cluster]
    a, b, p, q = (api[0].register() for _ in range(4))
    g = group_chat(api[0], a, b)
    for attempt in range(12):
        since = [api[0].get("/api/events/", token=w["access"]).json()["seq"] for w in (p, q)]
        added = at_once(
            lambda: api[0].post(f"/api/chats/{g}/members/", token=a["access"], json={"user_id": uid(p)}),
            lambda: api[1].post(f"/api/chats/{g}/members/", token=a["access"], json={"user_id": uid(q)}))
        assert [r.status_code for r in added] == [201, 201], [r.text for r in added]
        rest = {m["id"] for m in api[0].get(f"/api/chats/{g}/", token=a["access"]).json()["members"]}
        for w, s in zip((p, q), since):
            assert members_from_events(api[1], w, g, s) == rest, (attempt, uname(w))
        for w in (p, q):
            assert api[0].request("DELETE", f"/api/chats/{g}/members/{uid(w)}/",
                                  token=a["access"]).status_code == 204


def test_a_pin_racing_an_addition_reaches_the_new_member(make_cluster):
    """A pin committed while a member is being added is either in the newcomer's
    `chat_created` or arrives after it on their live socket: never logged before their
    joining with a `chat_created` that leaves it out."""
    cluster = make_cluster(3)
    api = [Client(n) for n in cluster]
    a, b, p = (api[0].register() for _ in range(3))
    g = group_chat(api[0], a, b)
    assert api[0].patch(f"/api/chats/{g}/members/{uid(b)}/", token=a["access"],
                        json={"role": "admin"}).status_code == 200
    messages = [rest_send(api[0], a, g, f"m{i}")["id"] for i in range(3)]

    async def main():
        ws = await user_ws(cluster[2], p)
        for attempt in range(12):
            target = messages[attempt % len(messages)]
            loop = asyncio.get_running_loop()
            done = await loop.run_in_executor(None, lambda: at_once(
                lambda: api[0].post(f"/api/chats/{g}/members/", token=a["access"], json={"user_id": uid(p)}),
                lambda: api[1].post("/api/pinned/", token=b["access"], json={"message_id": target})))
            assert [r.status_code for r in done] == [201, 201], [r.text for r in done]
            await ws.drain(1.0)
            pins = None
            for f in ws.buffer:
                if f.get("chat_id") != g:
                    continue
                if f["type"] == "chat_created":
                    pins = set(f["chat"]["pinned_message_ids"])
                elif pins is not None and f["type"] == "pin":
                    pins.add(f["message_id"])
                elif pins is not None and f["type"] == "unpin":
                    pins.discard(f["message_id"])
            listed = api[0].get(f"/api/pinned/?chat={g}", token=p["access"]).json()
            assert pins == {x["message"]["id"] for x in listed}, (attempt, ws.buffer)
            for x in listed:
                api[0].request("DELETE", f"/api/pinned/{x['id']}/", token=a["access"])
            api[0].request("DELETE", f"/api/chats/{g}/members/{uid(p)}/", token=a["access"])
            await ws.until(lambda f: f["type"] == "member_removed" and f["chat_id"] == g)
            await ws.drain(0.3)
            ws.buffer.clear()
        await ws.close()

    run(main(), timeout=120)


def test_a_replay_holds_nothing_from_before_the_members_joining(make_cluster):
    """Receipts and messages committed while a member is being added are logged either
    before the addition (and not replayed to the newcomer) or after it: the newcomer's
    replay starts with their own `chat_created`, as their live socket did."""
    cluster = make_cluster(2)
    api = [Client(n) for n in cluster]
    a, b, x = (api[0].register() for _ in range(3))
    g = group_chat(api[0], a, b)
    stop = threading.Event()

    def busy():  # b sends and reads in the chat through the other node, all the while
        n = 0
        while not stop.is_set() and n < 2000:
            m = rest_send(api[1], b, g, f"busy {n}")
            api[1].get(f"/api/messages/?chat={g}&limit=5", token=a["access"])
            api[1].post(f"/api/chats/{g}/read/", token=a["access"], json={"last_read_message_id": m["id"]})
            n += 1

    worker = threading.Thread(target=busy)
    worker.start()
    try:
        for attempt in range(25):
            since = api[0].get("/api/events/", token=x["access"]).json()["seq"]
            r = api[0].post(f"/api/chats/{g}/members/", token=a["access"], json={"user_id": uid(x)})
            assert r.status_code == 201, r.text
            mine = [e for e in api[0].get(f"/api/events/?since={since}&limit=1000",
                                          token=x["access"]).json()["results"] if e["chat_id"] == g]
            assert mine and mine[0]["type"] == "chat_created", (attempt, mine[:3])
            assert api[0].request("DELETE", f"/api/chats/{g}/members/{uid(x)}/",
                                  token=a["access"]).status_code == 204
    finally:
        stop.set()
        worker.join(60)


@pytest.mark.parametrize("newcomer_too", [False, True], ids=["others", "with-newcomer"])
def test_a_chat_joined_while_another_users_first_socket_catches_up_comes_in_seq_order(
        slow_link, make_cluster, newcomer_too):
    """A node holds an event of a chat it does not hear (a new chat reaching a member through
    their channel) while a user's first socket there catches up from the log, so that it
    cannot overtake what that catch-up delivers. It held it for every user, until the last
    catch-up of users on the node ended: a member with a socket open long before got the
    busy chat's newer messages first, and the new chat's `chat_created` after them (its
    seqs went back), on a node that users kept connecting to (after a restart, say). With
    the newcomer a member of the new chat too, it was held for them, and so for b."""
    link, cluster = slow_node_cluster(slow_link, make_cluster)
    api = [Client(n) for n in cluster]
    a, b = api[0].register(), api[0].register()
    newcomers = [api[0].register() for _ in range(12)]
    busy_chat = group_chat(api[0], a, b, name="busy")

    async def main():
        b_ws = await user_ws(cluster[1], b)  # node 1 hears the busy chat for b
        await open_db_connections(cluster[1], b)
        link.delay = 0.1  # a catch-up from the log takes a few tenths of a second
        stop = threading.Event()

        def chatter():
            sent = []
            me = Client(cluster[0])
            while not stop.is_set() and len(sent) < 3000:
                sent.append(rest_send(me, a, busy_chat, "busy")["id"])
                time.sleep(0.005)
            return sent
        work = asyncio.get_running_loop().run_in_executor(None, chatter)
        joined, opened = [], []
        for k, who in enumerate(newcomers):
            # Another user's first socket on node 1 catches up (after its handshake's own
            # round trips); meanwhile b is added to a new chat, and the busy chat goes on.
            opening = asyncio.ensure_future(user_ws(cluster[1], who, sync=False))
            await asyncio.sleep(0.3 + 0.1 * k)  # at different points of its opening
            members = (b, who) if newcomer_too else (b,)
            joined.append(await rest(group_chat, api[0], a, *members, name=f"joined {k}"))
            opened.append(await opening)
            await asyncio.sleep(0.5)  # the new chat read and heard
        stop.set()
        sent = await work
        link.delay = 0
        await wait_seen(b_ws, busy_chat, sent, timeout=20)
        for g in joined:
            await b_ws.until(is_("chat_created", chat_id=g), timeout=20)
        check_seq_order(b_ws)
        for ws in opened:  # the newcomers' first sockets, in order too
            await ws.drain(0.2)
            check_seq_order(ws)
        for ws in opened + [b_ws]:
            await ws.close()

    try:
        run(main(), timeout=120)
    finally:
        link.delay = 0


def test_a_second_socket_opening_while_the_first_catches_up_gets_seqs_in_order(
        slow_link, make_cluster):
    """A user's first socket on a node makes the node read the chats it did not hear from
    the log, their live events held meanwhile; that socket keeps what it gets until then.
    A second socket of the user opening during that read went live at once: it heard the
    other chats' newer events first, and the held ones after them (its seqs went back)."""
    link, cluster = slow_node_cluster(slow_link, make_cluster)
    api = [Client(n) for n in cluster]
    a, b, x = api[0].register(), api[0].register(), api[0].register()
    heard = group_chat(api[0], a, b, x, name="heard")  # node 1 hears it for b
    fresh = private_chat(api[0], a, x)                  # only x's sockets make node 1 hear it

    async def main():
        b_ws = await user_ws(cluster[1], b)
        await open_db_connections(cluster[1], x)
        link.delay = 0.1
        stop = threading.Event()

        def chatter():
            me = Client(cluster[0])
            for k in range(3000):
                if stop.is_set():
                    break
                rest_send(me, a, fresh if k % 2 else heard, f"k{k}")
                time.sleep(0.003)
        work = asyncio.get_running_loop().run_in_executor(None, chatter)
        seconds = []
        for k in range(6):
            first = asyncio.ensure_future(user_ws(cluster[1], x, sync=False))
            await asyncio.sleep(0.2 + 0.1 * k)  # at different points of the first's opening
            second = await user_ws(cluster[1], x, sync=False)
            first = await first
            await asyncio.sleep(0.3)
            await second.drain(0.2)
            seconds.append(second)
            # Read just before closing: a client that stops reading (its queue full) reads
            # no close frame either, and its close waited out close_timeout (3 s).
            await first.drain(0.05)
            await first.close()
            await second.drain(0.05)
            await second.close()
            await asyncio.sleep(0.3)  # the node stops hearing the fresh chat
        stop.set()
        await work
        link.delay = 0
        for ws in seconds:
            check_seq_order(ws)
        await b_ws.close()

    try:
        run(main(), timeout=180)
    finally:
        link.delay = 0
