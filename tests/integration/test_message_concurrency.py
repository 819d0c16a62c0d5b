"""Messages under concurrency, over real sockets: many clients sending into one chat at
once (with idempotent client_id retries, some racing each other), readers marking read
while others send, unread counts, and the event log (GET /api/events/) replayed and
tailed while it is being written.

One chatd with four I/O threads for the whole module; users are registered once."""
import asyncio
import concurrent.futures
import json
import threading
import uuid

import pytest
import requests
import websockets

from conftest import Client, Server, assert_no_server_errors, unique_name

N_USERS = 14


class Api:
    """One user's own HTTP session (requests.Session is not shared between threads)."""

    def __init__(self, srv, user):
        self.srv, self.user = srv, user
        self.http = requests.Session()

    def req(self, method, path, body=None):
        kw = {"headers": {"Authorization": f"Bearer {self.user['token']}"}, "timeout": 60}
        if body is not None:
            kw["json"] = body
        return self.http.request(method, self.srv.url + path, **kw)

    def ok(self, method, path, body=None, status=200):
        r = self.req(method, path, body)
        assert r.status_code == status, f"{method} {path} {body!r} -> {r.status_code} {r.text[:400]}"
        return r.json() if r.content else None


@pytest.fixture(scope="module")
def srv():
    s = Server(THREADS=4).start()
    yield s
    s.stop()
    assert_no_server_errors(s)


@pytest.fixture(scope="module")
def users(srv):
    def reg(_):
        body = Client(srv).register(unique_name("cc"))
        return {"id": body["user"]["id"], "username": body["user"]["username"], "token": body["access"]}

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        out = list(pool.map(reg, range(N_USERS)))
    assert len({u["id"] for u in out}) == N_USERS
    return out


def make_group(srv, owner, others, name="g"):
    return Api(srv, owner).ok("POST", "/api/chats/", {"type": "group", "name": f"{name}-{uuid.uuid4().hex[:6]}",
                                                       "member_ids": [u["id"] for u in others]}, 201)["id"]


def history_newest_first(api, chat):
    out, before = [], None
    while True:
        path = f"/api/messages/?chat={chat}&limit=200" + (f"&before={before}" if before else "")
        body = api.ok("GET", path)
        ids = [m["id"] for m in body["results"]]
        assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids), ids
        if out and ids:
            assert ids[0] < out[-1]["id"], "pages overlap or are out of order"
        out += body["results"]
        if not body["has_more"]:
            return out
        assert ids, "has_more with an empty page"
        before = ids[-1]


def history_oldest_first(api, chat):
    out, after = [], 0
    while True:
        body = api.ok("GET", f"/api/messages/?chat={chat}&after={after}&limit=200")
        ids = [m["id"] for m in body["results"]]
        assert ids == sorted(ids) and len(set(ids)) == len(ids), ids
        if out and ids:
            assert ids[0] > out[-1]["id"]
        out += body["results"]
        if not body["has_more"]:
            return out
        assert ids, "has_more with an empty page"
        after = ids[-1]


def chat_state(api, chat):
    return api.ok("GET", f"/api/chats/{chat}/")


def events_from(api, since, limit=1000):
    """Every event after `since`, paging with `limit`; checks each page's own invariants."""
    out = []
    while True:
        body = api.ok("GET", f"/api/events/?since={since}&limit={limit}")
        assert body["resync_required"] is False
        seqs = [e["seq"] for e in body["results"]]
        assert all(s > since for s in seqs), (since, seqs)
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
        assert len(seqs) <= limit
        if body["has_more"]:
            assert len(seqs) == limit and body["seq"] == seqs[-1], (len(seqs), body["seq"], seqs[-1:])
        elif seqs:
            assert body["seq"] >= seqs[-1]
        out += body["results"]
        since = body["seq"]
        if not body["has_more"]:
            return out, body["seq"]


def run_threads(fns):
    """Runs the callables at once (each on its own thread) and returns their results."""
    with concurrent.futures.ThreadPoolExecutor(len(fns)) as pool:
        futures = [pool.submit(fn) for fn in fns]
        return [f.result() for f in futures]


# ---- (a) many senders, client_id retries ------------------------------------------------------

N_SENDERS = 10
PER_SENDER = 25


def test_concurrent_sends_are_stored_exactly_once_and_in_order(srv, users):
    senders, reader = users[:N_SENDERS], users[10]
    chat = make_group(srv, senders[0], senders[1:] + [reader], "burst")
    tag = uuid.uuid4().hex[:8]

    def plan(i):
        out = []
        for j in range(PER_SENDER):
            body = {"chat": chat, "text": f"burst {tag} s{i} m{j}"}
            if j % 3 != 2:
                body["client_id"] = f"{tag}-{i}-{j}"
            out.append((j, body))
        return out

    barrier = threading.Barrier(2 * N_SENDERS)

    def primary(i):
        api = Api(srv, senders[i])
        barrier.wait()
        got = []
        for j, body in plan(i):
            # every 4th message with a client_id is retried at once (a lost response)
            for _ in range(2 if ("client_id" in body and j % 4 == 0) else 1):
                r = api.req("POST", "/api/messages/", body)
                got.append((i, "primary", j, r.status_code, r.json()))
        return got

    def twin(i):
        # The same client, on a second connection, retrying some client_ids concurrently
        # with the primary (newest first, so sometimes the twin stores the message first).
        api = Api(srv, senders[i])
        barrier.wait()
        got = []
        for j, body in reversed(plan(i)):
            if "client_id" in body and j % 5 == 1:
                for _ in range(2):
                    r = api.req("POST", "/api/messages/", body)
                    got.append((i, "twin", j, r.status_code, r.json()))
        return got

    runs = run_threads([lambda i=i: primary(i) for i in range(N_SENDERS)]
                       + [lambda i=i: twin(i) for i in range(N_SENDERS)])

    by_send = {}  # (sender index, j) -> [(status, body)]
    for run in runs:
        created_ids = []
        for i, kind, j, status, body in run:
            assert status in (200, 201), (i, kind, j, status, body)
            by_send.setdefault((i, j), []).append((status, body))
            if status == 201:
                created_ids.append(body["id"])
        # One connection's requests are sequential, so what it stored it stored in order.
        assert created_ids == sorted(created_ids) and len(set(created_ids)) == len(created_ids), run[0][:2]

    expected = {}  # (i, j) -> message id
    for (i, j), answers in by_send.items():
        text = f"burst {tag} s{i} m{j}"
        statuses = [s for s, _ in answers]
        assert statuses.count(201) == 1, f"sender {i} message {j}: statuses {statuses}"
        ids = {b["id"] for _, b in answers}
        assert len(ids) == 1, f"sender {i} message {j}: several ids {ids}"
        for _, b in answers:
            assert b["text"] == text and b["sender_id"] == senders[i]["id"] and b["chat"] == chat
            assert b["client_id"] == (f"{tag}-{i}-{j}" if j % 3 != 2 else None)
        expected[(i, j)] = ids.pop()
    assert len(expected) == N_SENDERS * PER_SENDER
    assert len(set(expected.values())) == N_SENDERS * PER_SENDER, "two sends share a message id"

    # The reader read nothing: every message is from someone else and unread.
    r_api = Api(srv, reader)
    state = chat_state(r_api, chat)
    assert state["unread_count"] == N_SENDERS * PER_SENDER, state
    assert state["last_read_message_id"] == 0

    # History: each distinct send exactly once, ids strictly increasing, nothing lost.
    newest_first = history_newest_first(r_api, chat)
    oldest_first = history_oldest_first(r_api, chat)
    assert [m["id"] for m in oldest_first] == [m["id"] for m in reversed(newest_first)]
    ids = [m["id"] for m in oldest_first]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert len(ids) == N_SENDERS * PER_SENDER
    assert set(ids) == set(expected.values())
    text_of = {m["id"]: m["text"] for m in oldest_first}
    for (i, j), mid in expected.items():
        assert text_of[mid] == f"burst {tag} s{i} m{j}"
    assert all(m["client_id"] is None for m in oldest_first), "client_id leaked to another member"
    assert state["last_message"]["id"] == ids[-1]

    # Each sender sees their own client_ids exactly once, and their unread count is the
    # number of others' messages after their own last message.
    sender_of = {m["id"]: m["sender_id"] for m in oldest_first}
    for i, s in enumerate(senders):
        api = Api(srv, s)
        mine = [m for m in history_newest_first(api, chat) if m["sender_id"] == s["id"]]
        cids = [m["client_id"] for m in mine if m["client_id"] is not None]
        assert sorted(cids) == sorted(f"{tag}-{i}-{j}" for j in range(PER_SENDER) if j % 3 != 2)
        last_own = max(m["id"] for m in mine)
        st = chat_state(api, chat)
        assert st["last_read_message_id"] == last_own, (i, st["last_read_message_id"], last_own)
        want = sum(1 for mid in ids if mid > last_own and sender_of[mid] != s["id"])
        assert st["unread_count"] == want, (i, st["unread_count"], want)

    # Reading up to the last id clears it.
    body = r_api.ok("POST", f"/api/chats/{chat}/read/", {"last_read_message_id": ids[-1]})
    assert body == {"unread_count": 0}
    state = chat_state(r_api, chat)
    assert state["unread_count"] == 0 and state["last_read_message_id"] == ids[-1]


# ---- (b) reads racing sends --------------------------------------------------------------------

def test_unread_count_while_reading_and_sending_concurrently(srv, users):
    senders, reader = users[:6], users[11]
    chat = make_group(srv, senders[0], senders[1:] + [reader], "race")
    committed, lock = [], threading.Lock()
    senders_done = threading.Event()
    barrier = threading.Barrier(len(senders) + 1)

    def send(i):
        api = Api(srv, senders[i])
        barrier.wait()
        for j in range(20):
            body = api.ok("POST", "/api/messages/", {"chat": chat, "text": f"race s{i} m{j}"}, 201)
            with lock:
                committed.append(body["id"])

    observations = []

    def read_loop():
        api = Api(srv, reader)
        seen, posted_max, k = [], 0, 0
        barrier.wait()
        while True:
            finished = senders_done.is_set()
            with lock:
                snapshot = list(committed)
            after = seen[-1] if seen else 0
            page = api.ok("GET", f"/api/messages/?chat={chat}&after={after}&limit=200")
            seen += [m["id"] for m in page["results"]]
            assert seen == sorted(seen) and len(set(seen)) == len(seen)
            # Mostly the newest id seen; every third time a stale one (never lowers).
            value = seen[-1] if seen and k % 3 else (seen[len(seen) // 2] if seen else 0)
            unread = api.ok("POST", f"/api/chats/{chat}/read/", {"last_read_message_id": value})["unread_count"]
            posted_max = max(posted_max, value)
            observations.append(("read", posted_max, snapshot, unread, posted_max))
            st = chat_state(api, chat)
            observations.append(("chat", posted_max, snapshot, st["unread_count"], st["last_read_message_id"]))
            k += 1
            if finished:
                return posted_max

    def send_all():
        try:
            run_threads([lambda i=i: send(i) for i in range(len(senders))])
        finally:
            senders_done.set()

    _, final_mark = run_threads([send_all, read_loop])

    # More messages after the reader's last read.
    for i, s in enumerate(senders):
        api = Api(srv, s)
        for j in range(3):
            committed.append(api.ok("POST", "/api/messages/", {"chat": chat, "text": f"late s{i} m{j}"}, 201)["id"])

    final = [m["id"] for m in history_oldest_first(Api(srv, senders[0]), chat)]
    assert sorted(final) == sorted(committed) and len(final) == len(senders) * 23
    assert any(len(o[2]) < len(senders) * 20 for o in observations), "the reader never overlapped the senders"
    for kind, mark, snapshot, unread, last_read in observations:
        assert unread >= 0, (kind, mark, unread)
        assert last_read == mark, f"{kind}: last_read_message_id {last_read}, highest read posted {mark}"
        low = sum(1 for x in snapshot if x > mark)  # committed before the request was sent
        high = sum(1 for x in final if x > mark)  # everything that was ever sent
        assert low <= unread <= high, f"{kind}: unread {unread} outside [{low}, {high}] at watermark {mark}"

    st = chat_state(Api(srv, reader), chat)
    assert st["last_read_message_id"] == final_mark
    want = sum(1 for x in final if x > final_mark)  # the reader sent none
    assert want >= 3 * len(senders)
    assert st["unread_count"] == want, (st["unread_count"], want)


# ---- (c) what unread counts ---------------------------------------------------------------------

def test_unread_excludes_deleted_hidden_and_own_messages(srv, users):
    s1, s2, reader = users[0], users[1], users[12]
    chat = make_group(srv, s1, [s2, reader], "unread")
    a1, a2, r = Api(srv, s1), Api(srv, s2), Api(srv, reader)
    w = uuid.uuid4().hex[:8]

    def send(api, text):
        return api.ok("POST", "/api/messages/", {"chat": chat, "text": text}, 201)["id"]

    def unread(api):
        st = chat_state(api, chat)
        listed = [c for c in api.ok("GET", "/api/chats/") if c["id"] == chat][0]
        assert listed["unread_count"] == st["unread_count"], (listed["unread_count"], st["unread_count"])
        return st["unread_count"]

    assert unread(r) == 0
    r1 = send(r, "mine one")
    assert unread(r) == 0 and chat_state(r, chat)["last_read_message_id"] == r1
    first = [send(a1, f"a{k}") for k in range(3)]
    assert unread(r) == 3
    r2 = send(r, "mine two")  # sending moves my own watermark past what I answered
    assert unread(r) == 0 and chat_state(r, chat)["last_read_message_id"] == r2
    b = [send(a1, f"b{k} bword{w}{k}") for k in range(4)]
    c = [send(a2, f"c{k} cword{w}{k}") for k in range(4)]
    assert unread(r) == 8
    assert unread(a1) == 4 and unread(a2) == 0
    cursors = {"r": events_from(r, 0)[1], "a1": events_from(a1, 0)[1]}

    a1.ok("DELETE", f"/api/messages/{b[0]}/", status=204)  # for everyone
    assert unread(r) == 7 and unread(a1) == 4 and unread(a2) == 0
    r.ok("DELETE", f"/api/messages/{c[0]}/?for=me", status=204)  # hidden for the reader only
    assert unread(r) == 6 and unread(a1) == 4
    r.ok("DELETE", f"/api/messages/{b[0]}/?for=me", status=204)  # deleted and hidden: counted off once
    assert unread(r) == 6
    a2.ok("DELETE", f"/api/messages/{c[1]}/", status=204)
    r.ok("DELETE", f"/api/messages/{c[1]}/?for=me", status=204)
    assert unread(r) == 5 and unread(a1) == 3
    r.ok("DELETE", f"/api/messages/{first[0]}/?for=me", status=204)  # already read: no change
    assert unread(r) == 5
    r.ok("DELETE", f"/api/messages/{c[3]}/?for=me", status=204)  # the newest one
    assert unread(r) == 4

    # last_message, history and search follow the reader's view.
    assert chat_state(r, chat)["last_message"]["id"] == c[2]
    assert chat_state(a1, chat)["last_message"]["id"] == c[3]
    seen = [m["id"] for m in history_oldest_first(r, chat)]
    assert seen == [r1] + first[1:] + [r2] + b[1:] + [c[2]], seen
    assert [m["id"] for m in history_oldest_first(a1, chat)] == [r1] + first + [r2] + b + c
    assert r.ok("GET", f"/api/messages/search/?q=cword{w}0")["results"] == []
    assert [m["id"] for m in a1.ok("GET", f"/api/messages/search/?q=cword{w}0")["results"]] == [c[0]]

    # Read up to the newest visible one: nothing left; a stale read never lowers it.
    assert r.ok("POST", f"/api/chats/{chat}/read/", {"last_read_message_id": c[2]}) == {"unread_count": 0}
    assert r.ok("POST", f"/api/chats/{chat}/read/", {"last_read_message_id": first[1]}) == {"unread_count": 0}
    st = chat_state(r, chat)
    assert st["unread_count"] == 0 and st["last_read_message_id"] == c[2]
    send(r, "mine three")
    assert unread(r) == 0
    d = send(a1, "d0")
    assert unread(r) == 1
    a1.ok("DELETE", f"/api/messages/{d}/", status=204)
    assert unread(r) == 0

    # A delete ?for=me is an event for the caller only; deletes for everyone reach everyone
    # but those who hid the message (b[0] and c[1] for the reader, whichever came first).
    def deletes(api, since):
        evs = [e for e in events_from(api, since)[0] if e["type"] == "delete" and e["chat_id"] == chat]
        return (sorted(e["message_id"] for e in evs if e.get("for_me") is True),
                sorted(e["message_id"] for e in evs if "for_me" not in e))
    assert deletes(r, cursors["r"]) == (sorted([c[0], b[0], c[1], first[0], c[3]]), [d])
    assert deletes(a1, cursors["a1"]) == ([], sorted([b[0], c[1], d]))


# ---- (d) the event log -------------------------------------------------------------------------

def test_event_log_replays_every_event_once_while_written(srv, users):
    senders, reader = users[2:8], users[13]
    chat = make_group(srv, senders[0], senders[1:] + [reader], "events")
    r_api = Api(srv, reader)
    _, cursor0 = events_from(r_api, 0)

    stop = threading.Event()
    barrier = threading.Barrier(len(senders) + 1)
    tag = uuid.uuid4().hex[:8]

    def tail():
        """A client tailing the log during the writes: cursor = the answer's seq."""
        api = Api(srv, reader)
        got, cursor = [], cursor0
        barrier.wait()
        while True:
            finishing = stop.is_set()
            body = api.ok("GET", f"/api/events/?since={cursor}&limit=25")
            seqs = [e["seq"] for e in body["results"]]
            assert all(s > cursor for s in seqs) and seqs == sorted(seqs), (cursor, seqs)
            got += body["results"]
            cursor = body["seq"]
            if finishing and not body["has_more"]:
                return got

    def send(i):
        api = Api(srv, senders[i])
        barrier.wait()
        ids = []
        for j in range(15):
            body = {"chat": chat, "text": f"ev {tag} s{i} m{j}"}
            if j % 2 == 0:
                body["client_id"] = f"{tag}-{i}-{j}"
            r = api.req("POST", "/api/messages/", body)
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
            if j % 4 == 0:  # a retry: no second message and no second event
                r = api.req("POST", "/api/messages/", body)
                assert r.status_code == 200 and r.json()["id"] == ids[-1], r.text
        api.ok("PATCH", f"/api/messages/{ids[1]}/", {"text": f"ev {tag} s{i} edited"})
        api.ok("DELETE", f"/api/messages/{ids[2]}/", status=204)
        if i == 0:
            api.ok("POST", "/api/pinned/", {"message_id": ids[3]}, 201)
        return ids

    def send_all():
        try:
            return run_threads([lambda i=i: send(i) for i in range(len(senders))])
        finally:
            stop.set()

    sent, tailed = run_threads([send_all, tail])
    all_ids = sorted(x for ids in sent for x in ids)
    assert len(all_ids) == len(senders) * 15

    full, last = events_from(r_api, cursor0)
    seqs = [e["seq"] for e in full]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # The tail saw exactly the same events, in the same order: none missed, none twice.
    assert [e["seq"] for e in tailed] == seqs, "tailing the log lost or repeated events"
    # The same events but for their texts: the full read came after the edits and
    # deletions, which rewrote what the log holds of those messages.
    def without_text(e):
        return {k: v for k, v in e.items() if k != "text"}

    assert [without_text(e) for e in tailed] == [without_text(e) for e in full]
    now = {ids[1]: f"ev {tag} s{i} edited" for i, ids in enumerate(sent)}
    now.update({ids[2]: "" for ids in sent})
    for e in full:
        if e["type"] in ("message", "edit") and e.get("chat_id") == chat:
            assert e["text"] == now.get(e["message_id"], e["text"]), e

    mine = [e for e in full if e.get("chat_id") == chat]
    messages = [e for e in mine if e["type"] == "message"]
    assert sorted(e["message_id"] for e in messages) == all_ids, "message events missing or repeated"
    assert [e["message_id"] for e in messages] == sorted(e["message_id"] for e in messages), \
        "message events not in commit (id) order"
    assert all(e["client_id"] is None for e in messages), "client_id shown to a non-sender"
    edits = sorted(e["message_id"] for e in mine if e["type"] == "edit")
    deletes = sorted(e["message_id"] for e in mine if e["type"] == "delete")
    pins = [e["message_id"] for e in mine if e["type"] == "pin"]
    assert edits == sorted(ids[1] for ids in sent)
    assert deletes == sorted(ids[2] for ids in sent)
    assert pins == [sent[0][3]]
    # Replaying from a middle cursor gives exactly the rest.
    k = len(full) // 2
    rest, _ = events_from(r_api, full[k]["seq"])
    assert rest == full[k + 1:]
    rest, _ = events_from(r_api, full[k]["seq"] - 1)  # numbers may skip: below the k-th one
    assert rest == full[k:]
    # Small pages cover the same list.
    paged, _ = events_from(r_api, cursor0, limit=7)
    assert paged == full
    # At the end: nothing, and not more.
    body = r_api.ok("GET", f"/api/events/?since={last}")
    assert body["results"] == [] and body["has_more"] is False and body["seq"] >= last

    # The sender's own replay shows its client_ids on its own messages only.
    s_api = Api(srv, senders[1])
    own_events, _ = events_from(s_api, cursor0)
    own_msgs = {e["message_id"]: e["client_id"] for e in own_events
                if e["type"] == "message" and e.get("chat_id") == chat}
    assert sorted(own_msgs) == all_ids
    for j, mid in enumerate(sent[1]):
        assert own_msgs[mid] == (f"{tag}-1-{j}" if j % 2 == 0 else None), (j, own_msgs[mid])
    others = [mid for i, ids in enumerate(sent) if i != 1 for mid in ids]
    assert all(own_msgs[mid] is None for mid in others)
    # (Last: reading history writes `delivered` events.)
    assert [m["id"] for m in history_oldest_first(r_api, chat)] == all_ids


def test_event_log_from_zero_lists_each_message_once(srv, users):
    """since=0 for a member of several chats: each message event once, seqs increasing,
    and the message events of every chat are exactly that chat's history."""
    member = users[10]
    api = Api(srv, member)
    other = users[9]
    chat = make_group(srv, other, [member], "zero")
    for k in range(5):
        Api(srv, other).ok("POST", "/api/messages/", {"chat": chat, "text": f"zero {k}"}, 201)
    # Fetching delivers: the first read logs the member's `delivered` events, after which
    # the log stands still for the reads compared below.
    events_from(api, 0)
    full, _ = events_from(api, 0)
    seqs = [e["seq"] for e in full]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    msg_events = [e for e in full if e["type"] == "message"]
    ids = [e["message_id"] for e in msg_events]
    assert len(ids) == len(set(ids)), "a message event appears twice"
    per_chat = {}
    for e in msg_events:
        per_chat.setdefault(e["chat_id"], []).append(e["message_id"])
    assert chat in per_chat
    # Paging from zero with a small limit gives the same list.
    paged, _ = events_from(api, 0, limit=97)
    assert paged == full
    # (Last: reading history writes `delivered` events.)
    for chat_id, mids in per_chat.items():
        history = [m["id"] for m in history_oldest_first(api, chat_id)]
        assert mids == history, f"chat {chat_id}: events {len(mids)} vs history {len(history)}"


# ---- (e) edits racing each other ------------------------------------------------------------------

def listen_for_edits(srv, user, message_id, count, ready, timeout=60):
    """The edit events of `message_id` that `user`'s socket receives, in their order, until
    `count` (run on a thread of its own; `ready` is set once the socket is open)."""
    async def listen():
        url = f"ws://127.0.0.1:{srv.port}/ws/?token={user['token']}"
        async with websockets.connect(url, ping_interval=None, max_size=2 ** 22) as ws:
            await ws.send(json.dumps({"type": "ping"}))
            while json.loads(await ws.recv())["type"] != "pong":
                pass
            ready.set()
            edits = []
            while len(edits) < count:
                frame = json.loads(await ws.recv())
                if frame["type"] == "edit" and frame["message_id"] == message_id:
                    edits.append(frame)
            return edits

    return asyncio.run(asyncio.wait_for(listen(), timeout))


def test_racing_edits_never_move_edited_at_back(srv, users):
    """The sender edits one message from eight connections at once. Edits commit one after
    another, and edited_at never goes back from one to the next, as the other member's
    socket sees them: of two racing edits the one committed last may have read the clock
    first, and clients tell the newer version of a message by its edited_at."""
    owner, other = users[4], users[5]
    chat = make_group(srv, owner, [other], "edits")
    message = Api(srv, owner).ok("POST", "/api/messages/", {"chat": chat, "text": "first"}, 201)
    writers, per_writer = 8, 25
    barrier = threading.Barrier(writers)
    ready = threading.Event()

    def edit(i):
        api = Api(srv, owner)
        assert ready.wait(30)
        barrier.wait(30)
        answers = []
        for j in range(per_writer):
            answers.append(api.ok("PATCH", f"/api/messages/{message['id']}/", {"text": f"edit {i}-{j}"}))
        return answers

    def listen():
        return listen_for_edits(srv, other, message["id"], writers * per_writer, ready)

    seen, *mine = run_threads([listen] + [lambda i=i: edit(i) for i in range(writers)])
    answers = sum(mine, [])
    assert len(answers) == len(seen) == writers * per_writer
    for a in answers:
        assert a["is_edited"] is True and a["edited_at"] >= message["created_at"], a
    # ISO-8601 of one width: text order is time order. The socket gets the edits in the
    # order they committed, each as its answer showed it, each stamped later than the one
    # before (a tie would not tell the newer text from the older).
    stamps = [e["edited_at"] for e in seen]
    assert all(a < b for a, b in zip(stamps, stamps[1:])), [(e["text"], e["edited_at"]) for e in seen]
    assert sorted((e["text"], e["edited_at"]) for e in seen) == sorted((a["text"], a["edited_at"]) for a in answers)
    stored = next(m for m in Api(srv, other).ok("GET", f"/api/messages/?chat={chat}")["results"]
                  if m["id"] == message["id"])
    assert (stored["text"], stored["edited_at"]) == (seen[-1]["text"], seen[-1]["edited_at"])


def test_racing_sends_keep_created_at_in_id_order(srv, users):
    """Eight members send into one chat at once. Ids order a chat, and its created_at
    stamps rise with them: a send reads the clock before its write reaches the store, so
    one queued behind another may hold the earlier time, and clients that sort a chat by
    created_at would show its messages in another order than the server's."""
    senders = users[6:14]
    chat = make_group(srv, senders[0], senders[1:], "times")
    per_sender = 25
    barrier = threading.Barrier(len(senders))

    def send(i):
        api = Api(srv, senders[i])
        barrier.wait(30)
        return [api.ok("POST", "/api/messages/", {"chat": chat, "text": f"t {i}-{j}"}, 201)
                for j in range(per_sender)]

    answers = sum(run_threads([lambda i=i: send(i) for i in range(len(senders))]), [])
    stored = history_oldest_first(Api(srv, senders[0]), chat)
    assert len(stored) == len(answers) == len(senders) * per_sender
    # ISO-8601 of one width: text order is time order. Strictly: a tie would not say which
    # came first either.
    stamps = [m["created_at"] for m in stored]
    assert all(a < b for a, b in zip(stamps, stamps[1:])), [
        (a["id"], a["created_at"], b["id"], b["created_at"])
        for a, b in zip(stored, stored[1:]) if a["created_at"] >= b["created_at"]][:5]
    # Each answer carries the time stored, and the chat's activity time is its last message's.
    assert sorted((a["id"], a["created_at"]) for a in answers) == [(m["id"], m["created_at"]) for m in stored]
    state = chat_state(Api(srv, senders[1]), chat)
    assert state["last_message"]["created_at"] == stamps[-1]
