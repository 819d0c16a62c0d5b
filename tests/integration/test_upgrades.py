"""What the README's "Upgrades" and "Backups" steps promise an operator, against real
servers: a node keeps serving while a newer version's migration changes what a statement
it prepared returns (a rolling upgrade), and an SQLite backup taken while messages are
sent holds every message acknowledged before it began."""
import concurrent.futures
import os
import shutil
import sqlite3
import tempfile
import threading
import time

import pytest

import conftest
from conftest import Client, Server, assert_no_server_errors
from test_websocket import is_, private_chat, rest_send, run, uid, user_ws

# What a newer version's migration might do to the send function while older nodes still
# serve: give it one more result column at the end (the rule for such migrations: see
# pg_migrations.cpp). The function is wrapped under its own name, so what it stores is
# unchanged; only its result type is new, which is what invalidates prepared statements.
WIDEN_SEND_FUNCTION = r"""
DO $do$
DECLARE f oid; n int; args text; result text; positional text;
BEGIN
  SELECT p.oid, p.pronargs INTO f, n FROM pg_proc p WHERE p.proname = 'chat_send_messages';
  args := pg_get_function_identity_arguments(f);
  result := pg_get_function_result(f);
  SELECT string_agg('$' || i, ', ') INTO positional FROM generate_series(1, n) i;
  EXECUTE format('ALTER FUNCTION chat_send_messages(%s) RENAME TO chat_send_messages_before', args);
  EXECUTE format('CREATE FUNCTION chat_send_messages(%s) RETURNS %s LANGUAGE sql AS '
                 '$f$ SELECT *, 0 FROM chat_send_messages_before(%s) $f$',
                 args, left(result, length(result) - 1) || ', r_added integer)', positional);
END
$do$;
"""


def test_a_node_keeps_sending_after_a_newer_migration_changes_the_send_functions_result(make_server):
    if conftest.BACKEND != "postgres":
        pytest.skip("statements prepared across a schema change are PostgreSQL's")
    # A pool of two connections, both kept busy before the change (sends at once from two
    # clients), so both hold the statement prepared.
    server = make_server(DB_POOL_SIZE="2")
    c = Client(server)
    ann, bob = c.register(), c.register()
    chat = private_chat(c, ann, bob)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = list(pool.map(lambda i: rest_send(Client(server), (ann, bob)[i % 2], chat, f"before {i}"),
                              range(20)))
    first.sort(key=lambda m: m["id"])

    server.db.execute(WIDEN_SEND_FUNCTION)
    assert server.db.scalar("SELECT count(*) FROM pg_proc WHERE proname = 'chat_send_messages_before'") == 1

    # REST sends and a forward, each on whichever connection the pool lends.
    after = [rest_send(c, ann, chat, f"after {i}") for i in range(6)]
    r = c.post(f"/api/messages/{first[0]['id']}/forward/", token=bob["access"],
               json={"target_chat_id": chat})
    assert r.status_code == 201, r.text
    assert r.json()["forwarded_from"] == first[0]["id"]

    async def socket_send():
        ws = await user_ws(server, bob)
        await ws.send({"type": "message", "chat_id": chat, "text": "over the socket", "client_id": "k1"})
        echo = await ws.until(is_("message", client_id="k1"))
        await ws.close()
        return echo

    echo = run(socket_send())
    assert echo["text"] == "over the socket" and echo["sender_id"] == uid(bob)

    ids = [m["id"] for m in first + after] + [r.json()["id"], echo["message_id"]]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    stored = c.get(f"/api/messages/?chat={chat}&limit=200", token=ann["access"]).json()["results"]
    assert sorted(m["id"] for m in stored) == ids
    # The change was met (and the statements prepared again), not missed.
    assert "preparing again" in server.read_log()
    # The make_server fixture then checks the log for 500s and unhandled errors.


def test_a_backup_taken_while_messages_are_sent_holds_every_acknowledged_one(make_server):
    if conftest.BACKEND != "sqlite":
        pytest.skip("PostgreSQL is backed up with its own tools")
    server = make_server()
    c = Client(server)
    ann, bob = c.register(), c.register()
    chat = private_chat(c, ann, bob)
    for i in range(200):
        rest_send(c, ann, chat, f"warm-up {i} " + "x" * 200)

    acked = []  # (time acknowledged, id), in the order the acknowledgements came
    failures = []
    lock = threading.Lock()
    stop = threading.Event()

    def sender(who, n):
        sc = Client(server)
        try:
            for i in range(n):
                if stop.is_set():
                    return
                m = rest_send(sc, who, chat, f"{who['user']['username']} {i} " + "y" * 200)
                with lock:
                    acked.append((time.monotonic(), m["id"]))
        except Exception as e:  # reported below: a thread's assertion would go unseen
            failures.append(repr(e))

    threads = [threading.Thread(target=sender, args=(who, 3000), daemon=True) for who in (ann, bob, ann)]
    for t in threads:
        t.start()
    backups = []
    try:
        # Several backups under a steady stream of sends; each must finish while sends go
        # on (sqlite3's .backup starts over whenever another process writes).
        workdir = tempfile.mkdtemp(prefix="chatd-backup-")
        for n in range(5):
            time.sleep(0.5)
            with lock:
                before = {i for _, i in acked}
            began = time.monotonic()
            path = os.path.join(workdir, f"backup-{n}.sqlite3")
            source = sqlite3.connect(server.db_path, timeout=10)
            try:
                source.execute("VACUUM INTO ?", (path,))
            finally:
                source.close()
            ended = time.monotonic()
            with lock:
                during = [i for t, i in acked if began <= t <= ended]
            backups.append((path, before, during))
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not failures, failures
    assert any(during for _, _, during in backups), "no send was acknowledged during any backup"
    acknowledged = sorted(i for _, i in acked)

    for path, before, _ in backups:
        db = sqlite3.connect(path)
        try:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            ids = [r[0] for r in db.execute("SELECT id FROM messages WHERE chat_id = ? ORDER BY id", (chat,))]
        finally:
            db.close()
        assert before <= set(ids), sorted(before - set(ids))[:10]
        # A prefix of what was committed (ids follow commit order): no acknowledged message
        # older than the newest it holds is missing.
        held = set(ids)
        assert [i for i in acknowledged if i <= ids[-1] and i not in held] == []

    # A server started on the last backup serves it: history, and new sends after it.
    path, before, _ = backups[-1]
    restored_dir = tempfile.mkdtemp(prefix="chatd-restored-")
    shutil.copy(path, os.path.join(restored_dir, "db.sqlite3"))
    restored = Server(workdir=restored_dir).start()
    try:
        rc = Client(restored)
        page = rc.get(f"/api/messages/?chat={chat}&limit=200", token=ann["access"])
        assert page.status_code == 200, page.text
        newest = page.json()["results"]
        assert newest and newest[0]["id"] >= max(before)
        assert [m["id"] for m in newest] == sorted((m["id"] for m in newest), reverse=True)
        fresh = rest_send(rc, bob, chat, "after the restore")
        assert fresh["id"] > newest[0]["id"]
    finally:
        restored.stop()
    assert_no_server_errors(restored)
