"""Nothing acknowledged is lost: chatd killed with SIGKILL again and again under load, and
stopped with SIGTERM under load, on both storage configurations.

Clients send over per-chat sockets with `client_id`s (API.md: the sender's copy of its
`message` event is the acknowledgement, sent only after the commit). A client whose
socket drops reconnects and sends again, with the same `client_id`s, everything it has not
seen acknowledged; the server must answer a retry of a committed message with the
message it stored, not a second one. Afterwards the database itself is checked."""
import asyncio
import collections
import json
import os
import random
import signal
import sqlite3
import time

import pytest
import websockets
from websockets.exceptions import WebSocketException

import conftest
import figures
from conftest import Client, assert_no_server_errors

USERS = 100            # each with a socket on its private chat and one on its group: 200 clients
GROUP_SIZE = 25
WINDOW = 3             # messages a client has in flight at once
KILLS = 10
# The load is far past the per-socket rate limit on purpose, and Python clients of a
# 25-member group are slow readers: neither limit is what these tests are about.
LOAD_ENV = {"WS_EVENTS_PER_SECOND": "100000", "WS_EVENT_BURST": "100000",
            "WS_MAX_QUEUED_FRAMES": "1000000", "WS_MAX_QUEUED_BYTES": "1073741824", "PASSWORD_HASH_MEMORY_KIB": "1024",
            "PASSWORD_HASH_OPS": "1"}


class Sender:
    """One client: a per-chat socket that sends numbered messages with client_ids."""

    def __init__(self, server, index, user, chat_id):
        self.server = server
        self.index = index
        self.user_id = user["user"]["id"]
        self.token = user["access"]
        self.chat_id = chat_id
        self.prefix = f"d{index}-"
        self.next = 0
        self.unacked = {}        # client_id -> None, in the order sent
        self.acked = {}          # client_id -> message_id
        self.conflicts = []      # a client_id acknowledged with two different ids
        self.resent = 0
        self.connects = 0
        self.stalls = 0
        self.errors = []
        self.abandoned = False   # set when the test stops waiting for what is unacknowledged

    def frame(self, cid):
        return json.dumps({"type": "message", "text": f"durable {cid}", "client_id": cid})

    async def run(self, stopping, deadline):
        url = f"ws://127.0.0.1:{self.server.port}/ws/chat/{self.chat_id}/?token={self.token}"
        while time.monotonic() < deadline and not self.abandoned:
            if stopping.is_set() and not self.unacked:
                return
            try:
                async with websockets.connect(url, open_timeout=3, close_timeout=1,
                                              ping_interval=None, max_size=None) as ws:
                    self.connects += 1
                    for cid in list(self.unacked):
                        self.resent += 1
                        await ws.send(self.frame(cid))
                    await self.exchange(ws, stopping)
                    return
            except (OSError, WebSocketException, asyncio.TimeoutError) as e:
                if isinstance(e, asyncio.TimeoutError):
                    self.stalls += 1
                await asyncio.sleep(random.uniform(0.02, 0.1))

    async def exchange(self, ws, stopping):
        while True:
            while len(self.unacked) < WINDOW and not stopping.is_set():
                cid = f"{self.prefix}{self.next}"
                self.next += 1
                self.unacked[cid] = None
                await ws.send(self.frame(cid))
            if stopping.is_set() and not self.unacked:
                return
            f = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if f.get("type") == "error":
                self.errors.append(f)
            if f.get("type") != "message" or f.get("sender_id") != self.user_id:
                continue
            cid = f.get("client_id") or ""
            if not cid.startswith(self.prefix):
                continue
            if cid in self.acked and self.acked[cid] != f["message_id"]:
                self.conflicts.append((cid, self.acked[cid], f["message_id"]))
            self.acked[cid] = f["message_id"]
            self.unacked.pop(cid, None)


def setup_world(server):
    """USERS users in private pairs and in groups of GROUP_SIZE; two Senders per user."""
    c = Client(server)
    users = [c.register() for _ in range(USERS)]
    senders = []
    for i in range(0, USERS, 2):
        a, b = users[i], users[i + 1]
        r = c.post("/api/chats/", token=a["access"],
                   json={"type": "private", "member_ids": [b["user"]["id"]]})
        assert r.status_code in (200, 201), r.text
        senders += [Sender(server, len(senders), a, r.json()["id"]),
                    Sender(server, len(senders) + 1, b, r.json()["id"])]
    for g in range(0, USERS, GROUP_SIZE):
        members = users[g:g + GROUP_SIZE]
        r = c.post("/api/chats/", token=members[0]["access"],
                   json={"type": "group", "name": f"g{g}",
                         "member_ids": [m["user"]["id"] for m in members[1:]]})
        assert r.status_code == 201, r.text
        senders += [Sender(server, len(senders) + k, m, r.json()["id"]) for k, m in enumerate(members)]
    assert len(senders) == 2 * USERS
    return senders


def acked_total(senders):
    return sum(len(s.acked) for s in senders)


async def wait_for_acks(senders, count, timeout):
    deadline = time.monotonic() + timeout
    while acked_total(senders) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return acked_total(senders) >= count


def check_store(server, senders):
    """What the clients saw acknowledged against what the database holds. Returns the
    number of stored messages."""
    db = server.db
    rows = db.query("SELECT client_id, id, chat_id, sender_id FROM messages "
                    "WHERE client_id LIKE 'd%' ORDER BY id")
    by_cid = collections.defaultdict(list)
    for cid, mid, chat_id, sender_id in rows:
        by_cid[cid].append((mid, chat_id, sender_id))
    duplicates = {cid: v for cid, v in by_cid.items() if len(v) > 1}
    assert not duplicates, f"stored more than once: {list(duplicates.items())[:5]}"

    attempted = set()
    for s in senders:
        assert not s.conflicts, s.conflicts[:5]
        assert not s.unacked, f"client {s.index} still waits for {list(s.unacked)[:5]}"
        assert not s.errors, s.errors[:5]
        sent = {f"{s.prefix}{n}" for n in range(s.next)}
        attempted |= sent
        # Every message a client sent was acknowledged in the end (retries included)...
        assert set(s.acked) == sent, sorted(sent - set(s.acked))[:5]
        for cid, mid in s.acked.items():
            # ...and is stored exactly once, as the message it was acknowledged as.
            assert by_cid.get(cid) == [(mid, s.chat_id, s.user_id)], (cid, mid, by_cid.get(cid))
    assert set(by_cid) == attempted, sorted(set(by_cid) - attempted)[:5]

    # Per-chat numbering has no holes and no repeats, and the event log (what resuming
    # sockets replay) holds each stored message exactly once.
    ordinals = collections.defaultdict(list)
    for chat_id, ordinal in db.query("SELECT chat_id, ordinal FROM messages ORDER BY chat_id, ordinal"):
        ordinals[chat_id].append(ordinal)
    for chat_id, seen in ordinals.items():
        assert seen == list(range(1, len(seen) + 1)), (chat_id, seen[:10], len(seen))
    logged = dict(db.query("SELECT chat_id, COUNT(*) FROM events WHERE type = 'message' GROUP BY chat_id"))
    assert logged == {k: len(v) for k, v in ordinals.items()}
    return len(rows)


def integrity(server):
    if server.db.backend != "sqlite":
        return "n/a"
    db = sqlite3.connect(server.db_path)
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


def test_acknowledged_messages_survive_sigkill(make_server):
    seed = int(os.environ.get("CHATD_TEST_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    s = make_server(**LOAD_ENV)
    senders = setup_world(s)
    in_doubt_at_kills = []
    kill_times = []

    async def main():
        stopping = asyncio.Event()
        deadline = time.monotonic() + 240
        tasks = [asyncio.create_task(x.run(stopping, deadline)) for x in senders]
        assert await wait_for_acks(senders, 500, 30), "no load before the first kill"
        for _ in range(KILLS):
            # A random moment of steady load: some acknowledged since the restart.
            await asyncio.sleep(rng.uniform(0.2, 1.5))
            kill_times.append(acked_total(senders))
            in_doubt_at_kills.append(sum(len(x.unacked) for x in senders))
            s.proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(s.proc.wait, 10)
            await asyncio.sleep(rng.uniform(0.0, 0.3))
            await asyncio.to_thread(s.start)
            assert await wait_for_acks(senders, acked_total(senders) + 200, 60), \
                f"no progress after restart (seed {seed}): {s.read_log()[-3000:]}"
        stopping.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 120)

    asyncio.run(main())
    # The checks read the database as the last crash left it.
    s.proc.send_signal(signal.SIGKILL)
    s.proc.wait(10)
    stored = check_store(s, senders)
    check = integrity(s)
    assert check in ("ok", "n/a"), check
    assert_no_server_errors(s)
    figures.record("Crash durability (SIGKILL)",
                   clients=len(senders), kills=KILLS, seed=seed,
                   in_flight_at_kills=sum(in_doubt_at_kills),
                   acknowledged=acked_total(senders), stored=stored,
                   resent=sum(x.resent for x in senders), duplicates=0, holes=0,
                   integrity_check=check)
    # Each kill hit messages in flight, or the test proved little.
    assert sum(1 for n in in_doubt_at_kills if n > 0) >= KILLS // 2, in_doubt_at_kills


def test_sigterm_under_load_loses_nothing_acknowledged(make_server):
    s = make_server(**LOAD_ENV)
    senders = setup_world(s)
    closes = []

    async def main():
        stopping = asyncio.Event()
        deadline = time.monotonic() + 60
        # Observers: a socket per chat that only listens, to see the close code.
        chats = sorted({x.chat_id for x in senders})[:10]
        owners = {x.chat_id: x for x in senders}
        observers = []
        for chat_id in chats:
            x = owners[chat_id]
            url = f"ws://127.0.0.1:{s.port}/ws/chat/{chat_id}/?token={x.token}"
            observers.append(await websockets.connect(url, ping_interval=None, max_size=None))
        tasks = [asyncio.create_task(x.run(stopping, deadline)) for x in senders]
        assert await wait_for_acks(senders, 1000, 30)
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)

        async def close_code(ws):
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 15)
            except websockets.exceptions.ConnectionClosed:
                return ws.close_code
        closes.extend(await asyncio.gather(*(close_code(ws) for ws in observers)))
        await asyncio.to_thread(s.proc.wait, 15)
        elapsed = time.monotonic() - t0
        # Stop the clients: what they have not seen acknowledged stays unacknowledged. They
        # give up reconnecting too, or a cancellation the client library turns into a
        # timeout while it connects would leave them retrying until the deadline.
        stopping.set()
        for x in senders:
            x.abandoned = True
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return elapsed

    elapsed = asyncio.run(main())
    assert s.proc.returncode == 0, s.read_log()[-3000:]
    assert elapsed < 10, elapsed
    assert closes == [1001] * len(closes), closes
    # Every acknowledged message is stored, once, as acknowledged.
    rows = s.db.query("SELECT client_id, id FROM messages WHERE client_id LIKE 'd%'")
    stored = collections.Counter(cid for cid, _ in rows)
    ids = dict(rows)
    acked = 0
    for x in senders:
        for cid, mid in x.acked.items():
            acked += 1
            assert stored[cid] == 1 and ids[cid] == mid, (cid, mid, stored[cid])
    assert all(n == 1 for n in stored.values())
    assert integrity(s) in ("ok", "n/a")
    assert_no_server_errors(s)
    figures.record("Graceful shutdown (SIGTERM under load)", clients=len(senders),
                   acknowledged=acked, stored=len(rows), exit_seconds=round(elapsed, 2),
                   close_codes=sorted(set(closes)))
