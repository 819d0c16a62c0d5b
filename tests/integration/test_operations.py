"""Operating chatd: /metrics in Prometheus' text format with counters that move as the server
works, and logs with one line per request and per socket lifecycle event, as JSON with
LOG_FORMAT=json, carrying the request id and never a token or a password.

Each test starts a chatd of its own (counters and the log belong to one process); on the
postgres pass it uses PostgreSQL and Redis, so the database and Redis metrics are those of
the real engines."""
import asyncio
import json
import re
import time

import pytest

import conftest
from conftest import Client, unique_name
from test_websocket import is_, private_chat, rest_send, run, uid, user_ws

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """{(name, frozenset(labels)): value}, checking the text format on the way: every sample
    line parses, every metric has a TYPE line before its samples, histograms are cumulative."""
    samples, types = {}, {}
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in ("counter", "gauge", "histogram"), line
            types[name] = kind
            continue
        if line.startswith("# HELP "):
            continue
        assert not line.startswith("#"), line
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name, labels, value = m.group(1), m.group(3) or "", m.group(4)
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or base in types, f"{name} has no TYPE line before it"
        parsed = dict(LABEL.findall(labels))
        key = (name, frozenset(parsed.items()))
        assert key not in samples, f"duplicate series {line}"
        samples[key] = float(value)
    for (name, labels), value in samples.items():
        if name.endswith("_bucket"):
            rest = frozenset((k, v) for k, v in labels if k != "le")
            count = samples[(name[:-len("_bucket")] + "_count", rest)]
            le = dict(labels)["le"]
            assert value <= count, f"{name}{dict(labels)}: bucket above the count"
            if le == "+Inf":
                assert value == count, f"{name}: +Inf bucket {value} != count {count}"
    return samples, types


def value(samples, name, **labels):
    """The sum of the samples of `name` whose labels include `labels` (0 when none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def scrape(c):
    r = c.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers
    return parse_metrics(r.text)[0]


def test_metrics_text_format_and_names(make_server):
    s = make_server()
    c = Client(s)
    samples, types = parse_metrics(c.get("/metrics").text)
    for name, kind in {
        "chatd_connections_accepted_total": "counter", "chatd_connections_open": "gauge",
        "chatd_ws_sockets": "gauge", "chatd_messages_sent_total": "counter",
        "chatd_deliveries_total": "counter", "chatd_event_log_lag_seconds": "histogram",
        "chatd_http_request_duration_seconds": "histogram", "chatd_db_query_duration_seconds": "histogram",
        "chatd_db_errors_total": "counter", "chatd_redis_command_duration_seconds": "histogram",
        "chatd_redis_errors_total": "counter", "chatd_throttled_total": "counter",
        "process_resident_memory_bytes": "gauge", "process_cpu_seconds_total": "counter",
        "chatd_sqlite_commits_total": "counter", "chatd_sqlite_checkpoints_total": "counter",
        "chatd_sqlite_group_redos_total": "counter",
        "chatd_db_retries_total": "counter",
    }.items():
        assert types.get(name) == kind, f"{name}: {types.get(name)}"
    # Sockets per node: the gauge names the node (host:port) that answers.
    nodes = {dict(ls)["node"] for (n, ls) in samples if n == "chatd_ws_sockets"}
    assert len(nodes) == 1 and nodes.pop().endswith(f":{s.port}"), samples
    assert value(samples, "process_resident_memory_bytes") > 1e6
    # Prometheus scrapes a node by its address: no Host check, like the probes.
    r = c.get("/metrics", headers={"Host": "10.1.2.3:8000"})
    assert r.status_code == 200
    assert c.get("/api/users/me/", headers={"Host": "10.1.2.3:8000"}).status_code == 400


def test_counters_move(make_server):
    s = make_server()
    c = Client(s)
    before = scrape(c)
    alice, bob = c.register(), c.register()
    chat = private_chat(c, alice, bob)

    async def talk():
        a = await user_ws(s, alice)
        b = await user_ws(s, bob)
        during = scrape(c)
        await a.send({"type": "message", "chat_id": chat, "text": "over the socket", "client_id": "m1"})
        await b.until(is_("message", text="over the socket"))
        m = rest_send(c, bob, chat, "over REST")
        await a.until(is_("message", message_id=m["id"]))
        await a.close()
        # A client's own close code (3000-4999) is counted as "other", not as a series of
        # its own: a client could make thousands.
        await asyncio.wait_for(b.conn.close(code=4321), 5)
        return during

    during = run(talk())
    for _ in range(10):  # the failures a username may have from one address
        c.post("/api/auth/login/", json={"username": alice["user"]["username"], "password": "nope"})
    r = c.post("/api/auth/login/", json={"username": alice["user"]["username"], "password": "nope"})
    assert r.status_code == 429, r.text
    c.get("/api/nowhere/")

    # The sockets were counted while open and are gone once closed (asynchronously).
    assert value(during, "chatd_ws_sockets", kind="user") == value(before, "chatd_ws_sockets", kind="user") + 2
    for _ in range(100):
        after = scrape(c)
        if value(after, "chatd_ws_sockets", kind="user") == value(before, "chatd_ws_sockets", kind="user"):
            break
        asyncio.run(asyncio.sleep(0.05))
    assert value(after, "chatd_ws_sockets", kind="user") == value(before, "chatd_ws_sockets", kind="user")

    def grew(name, by=1, **labels):
        old, new = value(before, name, **labels), value(after, name, **labels)
        assert new - old >= by, f"{name}{labels}: {old} -> {new}, expected +{by}"

    grew("chatd_connections_accepted_total", 2)  # the sockets (REST reuses one connection)
    grew("chatd_ws_sockets_opened_total", 2, kind="user")
    grew("chatd_ws_sockets_closed_total", 1, kind="user", code="1000")
    grew("chatd_ws_sockets_closed_total", 1, kind="user", code="other")
    assert value(after, "chatd_ws_sockets_closed_total", code="4321") == 0
    grew("chatd_ws_frames_received_total", 3)  # two pings and a message
    assert value(after, "chatd_messages_sent_total") - value(before, "chatd_messages_sent_total") == 2
    grew("chatd_deliveries_total", 4)  # each message to both users' sockets
    grew("chatd_event_log_lag_seconds_count", 2)
    assert value(after, "chatd_event_log_seq") >= 2
    grew("chatd_http_request_duration_seconds_count", 2, method="POST", route="/api/auth/register/")
    grew("chatd_http_requests_total", 2, method="POST", route="/api/auth/register/", status="201")
    grew("chatd_http_requests_total", 1, method="POST", route="/api/auth/login/", status="429")
    grew("chatd_http_requests_total", 1, route="unmatched", status="404")
    grew("chatd_throttled_total", 1, kind="login")
    backend = "postgres" if conftest.BACKEND == "postgres" else "sqlite"
    grew("chatd_db_query_duration_seconds_count", 10, backend=backend)
    if backend == "sqlite":
        # Registrations, the chat and both messages are writes: each in a committed group.
        grew("chatd_sqlite_commits_total", 1)
    if backend == "postgres":
        # Login throttling, presence and the broker go through Redis.
        grew("chatd_redis_command_duration_seconds_count", 5)
        assert value(after, "chatd_redis_connected") == 1
    # Raw paths never become labels: one series for every chat's history.
    routes = {dict(ls).get("route") for (n, ls) in after if n == "chatd_http_requests_total"}
    assert all(r is None or not re.search(r"/\d+", r) for r in routes), routes


def test_socket_rate_limit_is_counted_as_throttled(make_server):
    s = make_server(WS_EVENTS_PER_SECOND="1", WS_EVENT_BURST="2")
    c = Client(s)
    alice = c.register()
    before = scrape(c)

    async def flood():
        ws = await user_ws(s, alice, sync=False)
        for _ in range(10):
            await ws.send({"type": "ping"})
        return await ws.closed()

    assert run(flood()) == 1008
    after = scrape(c)
    assert value(after, "chatd_throttled_total", kind="ws_events") > value(before, "chatd_throttled_total", kind="ws_events")


# ---- logs ------------------------------------------------------------------------------------

def _exercise(s):
    """Register, log in, refresh, use the access token in a header and in a socket's query
    string, fail a login, change the password and log out: every secret the server sees.
    Returns (secrets, request ids answered, the socket's session)."""
    c = Client(s)
    password, new_password = "pw-" + unique_name(), "pw2-" + unique_name()
    alice = c.register(password=password)
    bob = c.register()
    name = alice["user"]["username"]
    tokens = c.login(name, password)
    refreshed = c.post("/api/auth/refresh/", json={"refresh": tokens["refresh"]})
    assert refreshed.status_code == 200
    ids = [refreshed.headers["X-Request-Id"]]
    me = c.get("/api/users/me/", token=tokens["access"])
    ids.append(me.headers["X-Request-Id"])
    c.post("/api/auth/login/", json={"username": name, "password": "wrong-" + password})
    chat = private_chat(c, alice, bob)

    async def socket():
        ws = await user_ws(s, alice)
        await ws.send({"type": "message", "chat_id": chat, "text": "hello", "client_id": "x"})
        await ws.until(is_("message", text="hello"))
        await ws.close()

    run(socket())
    r = c.patch("/api/users/me/", token=tokens["access"],
                json={"password": new_password, "current_password": password})
    assert r.status_code == 200, r.text
    c.post("/api/auth/logout/", json={"refresh": tokens["refresh"]}, token=bob["access"])
    secrets = [password, new_password, alice["access"], alice["refresh"], tokens["access"],
               tokens["refresh"], refreshed.json()["access"], bob["access"], bob["refresh"]]
    return secrets, ids, uid(alice)


def _no_secrets(log, secrets):
    for secret in secrets:
        assert secret not in log, f"a secret was logged: {secret[:12]}..."
        if secret.count(".") == 2:  # a JWT: not even its signature or payload alone
            header, payload, signature = secret.split(".")
            assert signature not in log and payload not in log, "part of a token was logged"


def test_json_logs_one_line_per_request_and_socket_event(make_server):
    s = make_server(LOG_FORMAT="json")
    secrets, ids, alice_id = _exercise(s)
    s.stop()
    log = s.read_log()
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert all({"time", "level"} <= set(line) for line in lines), lines[:3]
    assert all(("msg" in line) != ("event" in line) for line in lines)
    requests = [line for line in lines if line.get("event") == "request"]
    assert requests and all({"request_id", "method", "path", "status", "duration_us", "route"} <= set(r)
                            for r in requests)
    logged_ids = [r["request_id"] for r in requests]
    assert len(logged_ids) == len(set(logged_ids)), "one line per request, ids unique"
    for rid in ids:
        assert logged_ids.count(rid) == 1, f"request {rid} logged {logged_ids.count(rid)} times"
    # The socket's lifecycle: its upgrade request (101), then opened and closed, all three
    # with the upgrade request's id.
    opened = [line for line in lines if line.get("event") == "socket.open" and line["user"] == alice_id]
    closed = [line for line in lines if line.get("event") == "socket.close" and line["user"] == alice_id]
    assert len(opened) == 1 and len(closed) == 1, (opened, closed)
    assert opened[0]["request_id"] == closed[0]["request_id"] and opened[0]["request_id"]
    upgrade = [r for r in requests if r["request_id"] == opened[0]["request_id"]]
    assert len(upgrade) == 1 and (upgrade[0]["status"], upgrade[0]["route"]) == (101, "/ws/"), upgrade
    assert opened[0]["kind"] == "user" and closed[0]["code"] == 1000
    _no_secrets(log, secrets)


def test_text_logs_never_carry_secrets(make_server):
    s = make_server()
    secrets, ids, _ = _exercise(s)
    s.stop()
    log = s.read_log()
    for rid in ids:
        assert sum(f"id={rid}" in line for line in log.splitlines()) == 1, rid
    assert "socket.open" in log and "socket.close" in log
    _no_secrets(log, secrets)


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_log_lines_stay_whole_with_hostile_paths(make_server, log_format):
    """A path with quotes, backslashes, a newline and bytes that are not UTF-8 is escaped,
    not pasted: it cannot split its line or forge another."""
    s = make_server(LOG_FORMAT=log_format)
    c = Client(s)
    assert c.get("/api/%22x%5Cy%FF%0A2026-01-01T00:00:00Z%20info%20forged/").status_code in (400, 404)
    s.stop()
    lines = [line for line in s.read_log().splitlines() if line.strip()]
    assert not any(line.startswith("2026-01-01") for line in lines), lines
    if log_format == "json":
        parsed = [json.loads(line) for line in lines]
        paths = [line["path"] for line in parsed if line.get("event") == "request"]
        assert '/api/"x\\y\u00ff\n2026-01-01T00:00:00Z info forged/' in paths, paths
    else:
        assert sum("forged" in line for line in lines) == 1
        assert any('"/api/\\"x\\\\y\\u00ff\\n2026' in line for line in lines), lines


def test_every_answer_is_logged_once_with_its_real_status(make_server):
    """Answers the parser gives (431 for huge headers) and refused upgrades get their line
    with the status the client saw; an accepted upgrade gets 101."""
    s = make_server(LOG_FORMAT="json")
    import socket
    with socket.create_connection(("127.0.0.1", s.port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 431"), answer[:60]
    c = Client(s)
    alice = c.register()

    async def sockets():
        from test_websocket import refused
        assert await refused(s, "/ws/", token="not-a-token") == 401
        ws = await user_ws(s, alice)
        await ws.close()

    run(sockets())
    s.stop()
    lines = [json.loads(line) for line in s.read_log().splitlines() if line.strip()]
    requests = [line for line in lines if line.get("event") == "request"]
    big = [r for r in requests if r["status"] == 431]
    assert len(big) == 1 and big[0]["method"] == "-" and big[0]["request_id"], big
    upgrades = [(r["route"], r["status"]) for r in requests if r["route"] == "/ws/"]
    assert sorted(upgrades) == [("/ws/", 101), ("/ws/", 401)], upgrades


def test_log_level_warn_keeps_counting_but_writes_no_request_lines(make_server):
    s = make_server(LOG_LEVEL="warn")
    c = Client(s)

    def healthz_count(at_least):
        # A request is counted once its response is written, so the count may trail the
        # answer by a moment (the start-up probe's too, on another connection).
        deadline = time.monotonic() + 5
        while True:
            n = value(scrape(c), "chatd_http_requests_total", route="/healthz", status="200")
            if n >= at_least or time.monotonic() > deadline:
                return n
            time.sleep(0.02)

    before = healthz_count(1)  # the start-up probe's
    c.get("/healthz")
    assert healthz_count(before + 1) == before + 1
    time.sleep(0.2)
    assert healthz_count(0) == before + 1
    s.stop()
    assert "/healthz" not in s.read_log() and "/metrics" not in s.read_log()


def test_a_steady_trickle_of_sends_is_checkpointed(make_server):
    """SQLite copies the WAL back once it reaches 10,000 pages or writes pause for a second.
    A steady trickle never does either for long, and its WAL grew to about 40 MB before its
    first copy (a disk with less free filled up with WAL alone), so a checkpoint also starts
    10 s after the last one started."""
    if conftest.BACKEND != "sqlite":
        pytest.skip("SQLite's WAL")
    server = make_server()
    c = Client(server)
    a, b = c.register(), c.register()
    chat = private_chat(c, a, b)

    def checkpoints():
        return value(scrape(c), "chatd_sqlite_checkpoints_total", by="background")

    time.sleep(1.5)  # a quiet second: whatever the set-up left is copied now, not below
    before = checkpoints()
    started = last = time.monotonic()
    longest_gap = 0.0
    copied = False
    # About 25 sends a second, never a pause of 1 s, until the count moves: the 10 s rule
    # starts a checkpoint, whose count goes up when its first pass (with its syncs, slow
    # on a slow disk) returns. Each read follows a send: a quiet-second copy never counts.
    # Within 25 s the WAL stays far below the 10,000 pages that start one too.
    while not copied and time.monotonic() - started < 25:
        rest_send(c, a, chat, "trickle")
        now = time.monotonic()
        longest_gap, last = max(longest_gap, now - last), now
        time.sleep(0.04)
        if now - started > 9:
            copied = checkpoints() > before
    assert copied
    # The trickle never paused for the second that starts a quiet checkpoint.
    assert longest_gap < 0.9, longest_gap


def test_a_second_server_on_the_same_sqlite_file_refuses_to_start(make_server):
    """Without Redis a node fans events out in its own process: a second `chatd serve` on
    the same SQLite file would share the data but none of the live events, so it refuses
    to start. `migrate` beside a running server still works."""
    if conftest.BACKEND != "sqlite":
        pytest.skip("the SQLite file")
    import subprocess
    s = make_server()
    env = dict(s.env, PORT=str(conftest.free_port()))
    try:
        second = subprocess.run([conftest.CHATD, "serve"], env=env, cwd=s.workdir,
                                capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail("a second chatd serve on the same SQLite file started serving")
    assert second.returncode == 1, second
    assert f"another chatd is serving {s.db_path}" in second.stderr, second.stderr
    migrate = subprocess.run([conftest.CHATD, "migrate"], env=env, cwd=s.workdir,
                             capture_output=True, text=True, timeout=30)
    assert migrate.returncode == 0, migrate
    # The first one serves on.
    assert Client(s).get("/healthz").status_code == 200
    s.stop()
    # Once it has stopped, the file is free again.
    again = conftest.Server(database=s.db).start()
    try:
        assert Client(again).get("/healthz").status_code == 200
    finally:
        again.stop()
