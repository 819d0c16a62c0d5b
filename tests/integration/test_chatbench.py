"""chatbench, the load generator (bench/chatbench), against a real chatd: its
scenarios run end to end in miniature and report numbers that add up, and its delivery
check fails when the server drops messages. Keeps `make bench` from rotting between runs.

chatbench is the `chatbench` binary next to CHATD_BIN; without it these tests skip."""
import json
import os
import subprocess
import time

import pytest

import conftest
from conftest import Server, assert_no_server_errors, free_port

CHATBENCH = os.path.join(os.path.dirname(conftest.CHATD), "chatbench")
TIMEOUT = 120  # seconds per chatbench run

# What bench/run.sh gives the server: cheap password hashing (users are registered by the
# dozen), tokens that outlive the run, and no per-socket rate limit in the way.
BENCH_SETTINGS = dict(PASSWORD_HASH_MEMORY_KIB=8, PASSWORD_HASH_OPS=1, ACCESS_TOKEN_LIFETIME=3600,
                      WS_EVENTS_PER_SECOND=100000, WS_EVENT_BURST=1000000)
# A rate limit every windowed sender breaks at once: the server closes it with 1008.
FLOOD_SETTINGS = dict(BENCH_SETTINGS, WS_EVENTS_PER_SECOND=1, WS_EVENT_BURST=2)
FLOOD_ARGS = ["fanout", "--members", "20", "--rate", "0", "--window", "4",
              "--warmup", "0", "--seconds", "1", "--runs", "1"]


def require_chatbench():
    if not os.path.isfile(CHATBENCH) or not os.access(CHATBENCH, os.X_OK):
        pytest.skip(f"chatbench is not built next to chatd ({CHATBENCH} does not exist; "
                    "configure with -DCHATD_BENCH=ON)")


def command(server, out, args):
    return [CHATBENCH, *args, "--port", str(server.port), "--server-pid", str(server.proc.pid),
            "--out", str(out)]


def finish(proc, args, started):
    """Waits for a chatbench process (at most TIMEOUT seconds from `started`); returns
    (exit code, stdout, stderr)."""
    try:
        stdout, stderr = proc.communicate(timeout=max(1.0, started + TIMEOUT - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        pytest.fail(f"chatbench {' '.join(args)} hung: no report after {TIMEOUT} s\n"
                    f"stdout: {stdout[-2000:]}\nstderr: {stderr[-2000:]}")
    return proc.returncode, stdout, stderr


def chatbench(server, tmp_path, *args):
    """Runs one scenario to the end and returns its report (the --out file, which must be
    what it printed as well)."""
    out = tmp_path / "report.json"
    started = time.monotonic()
    proc = subprocess.Popen(command(server, out, args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    code, stdout, stderr = finish(proc, args, started)
    assert code == 0, f"chatbench {' '.join(args)} exited with {code}: {stderr[-4000:]}"
    report = json.loads(out.read_text())
    assert json.loads(stdout) == report
    return report


@pytest.fixture(scope="module", autouse=True)
def flood_run(tmp_path_factory):
    """The flooding run of the last test, started before the others: chatbench waits its
    fixed 30 s for messages that never arrive, and this way the wait overlaps them."""
    require_chatbench()
    server = Server(**FLOOD_SETTINGS).start()
    out = tmp_path_factory.mktemp("chatbench-flood") / "report.json"
    started = time.monotonic()
    proc = subprocess.Popen(command(server, out, FLOOD_ARGS), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    run = {"proc": proc, "out": out, "started": started}
    yield run
    if proc.poll() is None:  # the test that waits for it did not run
        proc.kill()
        proc.communicate()
    server.stop()
    assert_no_server_errors(server)


def check_traffic(report, scenario, runs, recipients):
    assert report["scenario"] == scenario
    assert report["check"]["ok"] is True, report["check"]
    assert report["check"]["sockets_with_wrong_count"] == 0
    assert report["check"]["out_of_order"] == 0
    assert report["check"]["unrecognised"] == 0
    assert report["warmup"]["complete"] is True, report["warmup"]
    assert len(report["runs"]) == runs
    for run in report["runs"]:
        assert run["complete"] is True, run
        assert run["messages"] > 0, run
        assert run["deliveries"] == run["messages"] * recipients, run
        latency = run["latency"]
        assert latency["count"] == run["messages"], run
        assert 0 < latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"], latency
        assert run["server_cpu_seconds"] > 0, run
    # The whole scenario's use of the server covers its measured runs.
    assert report["server_cpu_seconds_total"] >= sum(r["server_cpu_seconds"] for r in report["runs"])
    assert report["server_peak_rss_kib"] > 0, report


def test_fanout_closed_loop(make_server, tmp_path):
    server = make_server(**BENCH_SETTINGS)
    report = chatbench(server, tmp_path, "fanout", "--members", "20", "--senders", "2",
                       "--rate", "0", "--window", "2", "--warmup", "0.5", "--seconds", "1",
                       "--runs", "2")
    check_traffic(report, "fanout", runs=2, recipients=20)
    assert report["members"] == 20 and report["senders"] == 2


def test_ingest_paced(make_server, tmp_path):
    server = make_server(**BENCH_SETTINGS)
    report = chatbench(server, tmp_path, "ingest", "--senders", "20", "--rate", "2000",
                       "--warmup", "0.5", "--seconds", "1", "--runs", "1")
    check_traffic(report, "ingest", runs=1, recipients=1)
    assert report["senders"] == 20


def test_idle_sockets(make_server, tmp_path):
    server = make_server(**BENCH_SETTINGS)
    report = chatbench(server, tmp_path, "idle", "--sockets", "30", "--idle-seconds", "2")
    assert report["scenario"] == "idle"
    assert report["sockets"] == 30
    assert report["sockets_closed_by_server"] == 0
    # Thirty sockets take about 90 KiB, less than the allocator may hand back to the kernel
    # meanwhile, so the sign says nothing here (make bench opens 19,000): the figure must
    # be what the two RSS readings give.
    before, opened = report["server_rss_kib_before"], report["server_rss_kib_open"]
    assert before > 0 and opened > 0 and report["server_peak_rss_kib"] >= opened, report
    assert report["server_rss_kib_per_socket"] == pytest.approx((opened - before) / 30), report


def test_reconnect_storm_replays_every_client(make_server, tmp_path):
    server = make_server(**BENCH_SETTINGS)
    report = chatbench(server, tmp_path, "reconnect", "--sockets", "40", "--storm-seconds", "0.5",
                       "--runs", "2")
    assert report["scenario"] == "reconnect" and report["check"]["ok"] is True, report
    assert len(report["runs"]) == 2
    for run in report["runs"]:
        assert run["check"]["ok"] is True, run
        assert run["messages_missed_and_replayed"] == 4, run  # one in every tenth chat
        assert run["handshakes_per_second"] > 0 and run["seconds_to_last_synced"] > 0, run


@pytest.mark.parametrize("chats", [1, 70])
def test_search_answers_every_query_with_the_one_match(make_server, tmp_path, chats):
    """The searcher alone in one group, or in 70 (more chats than SQLite names in one index
    query): either way each answer is exactly its one message."""
    server = make_server(**BENCH_SETTINGS)
    report = chatbench(server, tmp_path, "search", "--search-messages", "200", "--search-words", "20",
                       "--search-chats", str(chats), "--http-connections", "2", "--warmup", "0.2",
                       "--seconds", "0.5", "--runs", "2")
    assert report["scenario"] == "search" and report["fill_messages"] == 200, report
    assert report["searcher_chats"] == chats, report
    assert [q["q"] for q in report["queries"]] == ["a", "ab", "abc", "abcdefg"]
    for q in report["queries"]:
        assert len(q["runs"]) == 2, q
        for run in q["runs"]:
            assert run["requests"] > 0 and run["bad_answers"] == 0, (q["q"], run)
            assert run["latency"]["count"] == run["requests"], run
        assert q["latency_all_runs"]["count"] == sum(r["requests"] for r in q["runs"])


def test_reads_fail_the_run_when_the_server_goes_away(make_server, tmp_path):
    """A connection of a closed loop of reads that fails (refused, cut off) fails the
    scenario, rather than stopping uncounted while the others report a clean run."""
    server = make_server(**BENCH_SETTINGS)
    args = ["search", "--search-messages", "100", "--search-words", "10", "--http-connections", "2",
            "--warmup", "0", "--seconds", "2", "--runs", "3"]
    started = time.monotonic()
    proc = subprocess.Popen(command(server, tmp_path / "report.json", args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(3)  # set up and measuring: 4 queries of 3 runs of 2 s
    assert proc.poll() is None, proc.communicate()
    server.kill()
    code, stdout, stderr = finish(proc, args, started)
    assert code == 1 and "chatbench search:" in stderr, (code, stdout[-500:], stderr[-2000:])
    assert stdout == ""


def test_fanout_through_the_bare_relay(tmp_path):
    """chatbench's relay stands in for the server: the same fan-out and the same checks."""
    require_chatbench()
    port = free_port()
    relay = subprocess.Popen([CHATBENCH, "relay", "--port", str(port)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert "listening" in relay.stdout.readline()
        out = tmp_path / "relay.json"
        args = ["fanout", "--relay", "--members", "20", "--senders", "2", "--rate", "0",
                "--window", "2", "--warmup", "0.5", "--seconds", "1", "--runs", "2"]
        started = time.monotonic()
        proc = subprocess.Popen([CHATBENCH, *args, "--port", str(port), "--server-pid",
                                 str(relay.pid), "--out", str(out)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        code, _, stderr = finish(proc, args, started)
        assert code == 0, stderr[-4000:]
        report = json.loads(out.read_text())
        assert report["scenario"] == "fanout through the bare relay"
        check_traffic(report, report["scenario"], runs=2, recipients=20)
    finally:
        relay.terminate()
        assert relay.wait(10) == 0


def test_fanout_check_fails_when_senders_are_cut_off(flood_run):
    """With a rate limit every sender breaks, the server closes the senders' sockets (1008)
    and most messages never reach everyone: chatbench must not report success."""
    code, stdout, stderr = finish(flood_run["proc"], FLOOD_ARGS, flood_run["started"])
    assert code >= 0, f"chatbench died of signal {-code}: {stderr[-4000:]}"
    if code != 0:
        return  # a failure exit is an honest answer
    report = json.loads(flood_run["out"].read_text())
    assert json.loads(stdout) == report
    assert report["check"]["ok"] is not True, report["check"]
