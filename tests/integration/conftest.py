"""Fixtures that start a real chatd process on a free loopback port and talk to it over
real sockets.

The same tests run on both storage configurations, chosen by CHATD_TEST_BACKEND (or the
--backend option):
  sqlite    (default) every server gets its own temporary SQLite file and the in-process
            broker;
  postgres  every server (or group of nodes, see `Cluster`) gets a fresh PostgreSQL
            database and a Redis key prefix of its own, on the services that
            scripts/test-services.sh starts (CHATD_TEST_PG_PORT, CHATD_TEST_REDIS_PORT).
Tests marked `sqlite_only` are about the SQLite file itself; tests marked
`postgres_only` (several nodes, nginx) need PostgreSQL and Redis."""
import atexit
import base64
import csv
import hashlib
import hmac
import io
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import tempfile
import time
import uuid

import pytest
import requests

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHATD = os.path.abspath(os.environ.get("CHATD_BIN", os.path.join(ROOT, "build", "release", "chatd")))
SECRET_KEY = "test-secret-key-" + "x1y2z3" * 10  # 76 characters, strong enough for DEBUG=0
BACKENDS = ("sqlite", "postgres")
# Replaced by --backend in pytest_configure; read at run time as conftest.BACKEND.
BACKEND = os.environ.get("CHATD_TEST_BACKEND", "sqlite")


def pytest_addoption(parser):
    parser.addoption("--backend", choices=BACKENDS, default=None,
                     help="storage configuration of the chatd under test "
                          "(default: $CHATD_TEST_BACKEND, else sqlite)")


# Every temporary file of a test session (servers' folders and logs, SQLite files, tools'
# profiles) goes into one folder, which a session that passes removes; a failing session
# keeps it for its logs and says where.
SESSION_TMP = None
_session_passed = False


def _remove_session_tmp():
    # At exit, after pytest's own clean-up of its tmp_path folders inside (atexit runs the
    # handlers registered later first, and pytest registers its one during the tests).
    if _session_passed:
        shutil.rmtree(SESSION_TMP, ignore_errors=True)


def pytest_configure(config):
    global BACKEND, SESSION_TMP
    SESSION_TMP = tempfile.mkdtemp(prefix="chatd-tests-")
    os.chmod(SESSION_TMP, 0o755)  # nginx's worker (nobody) reaches its folders inside
    tempfile.tempdir = SESSION_TMP
    os.environ["TMPDIR"] = SESSION_TMP  # for the programs the tests start
    atexit.register(_remove_session_tmp)
    BACKEND = config.getoption("--backend") or os.environ.get("CHATD_TEST_BACKEND") or "sqlite"
    if BACKEND not in BACKENDS:
        raise pytest.UsageError(f"CHATD_TEST_BACKEND must be one of {BACKENDS}, not {BACKEND!r}")
    if BACKEND == "postgres":
        missing = [v for v in ("CHATD_TEST_PG_PORT", "CHATD_TEST_REDIS_PORT") if not os.environ.get(v)]
        if missing:
            raise pytest.UsageError(
                f"CHATD_TEST_BACKEND=postgres needs {', '.join(missing)}: start the services with "
                "scripts/test-services.sh start DIR and source DIR/services.env")
    config.addinivalue_line("markers", "sqlite_only: about the SQLite file itself; skipped on PostgreSQL")
    config.addinivalue_line("markers", "postgres_only: needs PostgreSQL and Redis (several nodes)")


def pytest_sessionfinish(session, exitstatus):
    global _session_passed
    if SESSION_TMP is None:
        return
    if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        _session_passed = True
    else:
        print(f"\nchatd test files (servers' logs) kept in {SESSION_TMP}")


def pytest_report_header(config):
    return f"chatd: {CHATD}, backend: {BACKEND}"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if BACKEND == "postgres" and item.get_closest_marker("sqlite_only"):
            item.add_marker(pytest.mark.skip(reason="SQLite only (CHATD_TEST_BACKEND=postgres)"))
        if BACKEND != "postgres" and item.get_closest_marker("postgres_only"):
            item.add_marker(pytest.mark.skip(reason="needs CHATD_TEST_BACKEND=postgres"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- databases ------------------------------------------------------------------------------

def _conninfo():
    """The CHATD_TEST_PG libpq key=value string as a dict (defaults: the role `chat`)."""
    info = {"host": "127.0.0.1", "user": "chat", "password": "chat"}
    for part in os.environ.get("CHATD_TEST_PG", "").split():
        k, _, v = part.partition("=")
        info[k] = v
    if os.environ.get("CHATD_TEST_PG_PORT"):
        info["port"] = os.environ["CHATD_TEST_PG_PORT"]
    return info


def psql(sql, dbname="postgres", timeout=60, check=True):
    """Runs SQL statements (a string or a list, each its own transaction) with psql as the
    test role; returns the rows of the last one (CSV-decoded strings, NULL as "\\N")."""
    info = _conninfo()
    cmd = ["psql", "-X", "-q", "--csv", "-t", "-P", "null=\\N", "-v", "ON_ERROR_STOP=1",
           "-h", info["host"], "-p", str(info["port"]), "-U", info["user"], "-d", dbname]
    for statement in ([sql] if isinstance(sql, str) else sql):
        cmd += ["-c", statement]
    env = dict(os.environ, PGPASSWORD=info["password"], PGCONNECT_TIMEOUT="10")
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"psql failed ({r.returncode}): {r.stderr.strip()}\n{sql}")
    return list(csv.reader(io.StringIO(r.stdout))) if r.returncode == 0 else None


def _sql_literal(v):
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (int, float)):
        return repr(v)
    return "'" + str(v).replace("'", "''") + "'"


def _pg_value(v):
    if v == "\\N":
        return None
    if v == "t":
        return True
    if v == "f":
        return False
    try:
        return int(v)
    except ValueError:
        return v


_created_databases = []


class Database:
    """The database of one chatd deployment: an SQLite file in `workdir`, or (postgres
    backend) a fresh PostgreSQL database. `env` is what chatd needs to find it. `query` and
    `execute` take SQL both engines understand, with `?` placeholders; PostgreSQL rows come
    back with integers as int and booleans as bool, like SQLite's (where True == 1)."""

    def __init__(self, workdir=None, backend=None):
        self.backend = backend or BACKEND
        if self.backend == "postgres":
            info = _conninfo()
            self.name = "t_" + uuid.uuid4().hex[:20]
            psql(f'CREATE DATABASE "{self.name}" OWNER "{info["user"]}"')
            _created_databases.append(self.name)
            self.env = {"DB_HOST": info["host"], "DB_PORT": str(info["port"]), "DB_NAME": self.name,
                        "DB_USER": info["user"], "DB_PASSWORD": info["password"]}
        else:
            workdir = workdir or tempfile.mkdtemp(prefix="chatd-test-")
            self.path = os.path.join(workdir, "db.sqlite3")
            self.env = {"SQLITE_PATH": self.path}

    def query(self, sql, *params):
        if self.backend == "postgres":
            parts = sql.split("?")
            assert len(parts) == len(params) + 1, (sql, params)
            text = parts[0] + "".join(_sql_literal(p) + rest for p, rest in zip(params, parts[1:]))
            return [tuple(_pg_value(v) for v in row) for row in psql(text, self.name)]
        db = sqlite3.connect(self.path, timeout=10)
        try:
            with db:
                db.execute("PRAGMA foreign_keys=ON")
                return db.execute(sql, params).fetchall()
        finally:
            db.close()

    def execute(self, sql, *params):
        self.query(sql, *params)

    def scalar(self, sql, *params):
        rows = self.query(sql, *params)
        assert len(rows) == 1 and len(rows[0]) == 1, rows
        return rows[0][0]


def drop_test_databases():
    names, _created_databases[:] = list(_created_databases), []
    if names:
        psql([f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in names], check=False)


def redis_env(prefix=None):
    """chatd's Redis settings for one deployment (postgres backend), with a key prefix of
    its own: pub/sub channels are shared by everything on the Redis server."""
    return {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": os.environ["CHATD_TEST_REDIS_PORT"],
            "REDIS_PREFIX": prefix or f"t{uuid.uuid4().hex[:12]}:"}


# ---- chatd processes ---------------------------------------------------------------------------

class Server:
    """A chatd process. `env` overrides the defaults below. `database` (a Database) and a
    REDIS_PREFIX in `env` are given by `Cluster` to nodes that share them; otherwise a server
    gets a database (and, on PostgreSQL, a Redis prefix) of its own."""

    def __init__(self, workdir=None, database=None, **env):
        self.workdir = workdir or tempfile.mkdtemp(prefix="chatd-test-")
        self.port = free_port()
        self.db = database or Database(self.workdir)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "DEBUG": "0",
            "SECRET_KEY": SECRET_KEY,
            "BIND": "127.0.0.1",
            "PORT": str(self.port),
            "ALLOWED_HOSTS": "localhost,127.0.0.1",
            "THREADS": "2",
            "LOG_LEVEL": "info",
            # Seconds between a user's last socket closing and the offline announcement;
            # short, so presence tests need not wait long on either backend.
            "PRESENCE_GRACE": "1",
            **self.db.env,
        }
        if self.db.backend == "postgres":
            self.env.update(redis_env())
        # A sanitizer build's options (make sanitize-thread passes its suppressions).
        self.env.update({k: v for k, v in os.environ.items()
                         if k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS")})
        self.env.update({k: str(v) for k, v in env.items()})
        self.proc = None
        self.log = None
        self.log_path = os.path.join(self.workdir, f"chatd-{self.port}.log")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def db_path(self):
        assert self.db.backend == "sqlite", "db_path is the SQLite file; use server.db otherwise"
        return self.env["SQLITE_PATH"]

    @property
    def redis_prefix(self):
        return self.env.get("REDIS_PREFIX")

    def spawn(self):
        """Starts the process without waiting for it (see `wait_ready`)."""
        if self.log:
            self.log.close()
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([CHATD, "serve"], env=self.env, cwd=self.workdir,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def wait_ready(self, timeout=30):
        """Until /healthz answers 200 and, with PostgreSQL and Redis, /readyz too (the node
        has its database and its broker, so it hears what the other nodes publish)."""
        paths = ["/healthz"] + (["/readyz"] if "REDIS_HOST" in self.env else [])
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chatd exited with {self.proc.returncode}: {self.read_log()[-4000:]}")
            try:
                while paths and requests.get(self.url + paths[0], timeout=1).status_code == 200:
                    paths.pop(0)
                if not paths:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"chatd did not become ready ({paths[0]}): " + self.read_log()[-4000:])

    def start(self):
        return self.spawn().wait_ready()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log:
            self.log.close()
            self.log = None
        return self.proc.returncode if self.proc else None

    def kill(self):
        """SIGKILL: the node dies without closing anything (a crashed machine)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        return self.stop()

    def restart(self):
        self.stop()
        return self.start()

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


class Cluster:
    """Several chatd nodes on their own ports sharing one database and one Redis prefix:
    one deployment behind a load balancer. `env` goes to every node, `node_env[i]` (a list
    of dicts, as long as wanted) to node i on top of it."""

    def __init__(self, nodes=3, database=None, node_env=(), **env):
        assert BACKEND == "postgres", "several nodes need PostgreSQL and Redis"
        self.db = database or Database()
        env.setdefault("REDIS_PREFIX", f"t{uuid.uuid4().hex[:12]}:")
        self.env = env
        own = list(node_env) + [{}] * nodes
        self.nodes = [Server(database=self.db, **{**env, **own[i]}) for i in range(nodes)]

    def __getitem__(self, i):
        return self.nodes[i]

    def __iter__(self):
        return iter(self.nodes)

    def __len__(self):
        return len(self.nodes)

    def start(self):
        # All at once: their migrations run concurrently, which chatd must cope with.
        for n in self.nodes:
            n.spawn()
        for n in self.nodes:
            n.wait_ready()
        return self

    def stop(self):
        for n in self.nodes:
            n.stop()


class Client:
    """A requests session against one server, with the helpers every test needs."""

    def __init__(self, server):
        self.server = server
        self.http = requests.Session()

    def request(self, method, path, token=None, headers=None, **kw):
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        kw.setdefault("timeout", 30)
        return self.http.request(method, self.server.url + path, headers=h, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def patch(self, path, **kw):
        return self.request("PATCH", path, **kw)

    def register(self, username=None, password="correct-horse-1", email=None, expect=201):
        username = username or unique_name()
        r = self.post("/api/auth/register/",
                      json={"username": username, "password": password,
                            "email": email or f"{username}@example.com"})
        assert r.status_code == expect, r.text
        body = r.json()
        if expect == 201:
            body["password"] = password
        return body

    def login(self, username, password, expect=200, **kw):
        r = self.post("/api/auth/login/", json={"username": username, "password": password}, **kw)
        assert r.status_code == expect, r.text
        return r.json()


def unique_name(prefix="u"):
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def jwt_parts(token):
    header, payload, _ = token.split(".")
    return json.loads(b64url_decode(header)), json.loads(b64url_decode(payload))


def sign_jwt(header: dict, payload: dict, key: str = SECRET_KEY, alg="sha256") -> str:
    """Builds a JWT by hand (for forged and expired tokens)."""
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())
    sig = hmac.new(key.encode(), signing_input.encode(), getattr(hashlib, alg)).digest()
    return signing_input + "." + b64url(sig)


def raw_upgrade(port, token, lines, timeout=10):
    """A socket upgrade written by hand: `GET /ws/?token=...` with Upgrade and Connection,
    then `lines` (each ended by CRLF: Host, the key, the version...). Returns the answer's
    head as read (at least up to its blank line, unless the server closed first)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall((f"GET /ws/?token={token} HTTP/1.1\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\n{lines}\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    return head


def client_frame(opcode, payload, fin=True):
    """A masked WebSocket frame, as a client sends it (for tests that write bare sockets)."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    if not n:
        return head + mask
    key = (mask * (n // 4 + 1))[:n]
    return head + mask + (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def assert_no_server_errors(server):
    log = server.read_log()
    assert "unhandled error" not in log, log[-4000:]
    # Sanitizer builds (make sanitize, make sanitize-thread) report into the same log.
    assert "Sanitizer" not in log and "runtime error:" not in log, log[-8000:]
    # An access log line's status ("POST /api/messages/ 500 ..."), not any 500 ("seq 500").
    assert not re.search(r" [A-Z]+ /\S* 500 ", log), log[-4000:]


@pytest.fixture(scope="session", autouse=True)
def _test_databases():
    """Drops the PostgreSQL databases the tests created, once every server has stopped."""
    yield
    if BACKEND == "postgres":
        drop_test_databases()


@pytest.fixture(scope="session")
def server():
    s = Server().start()
    yield s
    s.stop()
    assert_no_server_errors(s)


@pytest.fixture
def client(server):
    return Client(server)


@pytest.fixture
def make_server():
    """Starts servers with special settings; stops them after the test."""
    started = []

    def make(**env):
        s = Server(**env).start()
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()
        assert_no_server_errors(s)


@pytest.fixture
def make_cluster():
    """Starts groups of nodes (`Cluster`) sharing a database; stops them after the test."""
    started = []

    def make(nodes=3, **env):
        c = Cluster(nodes, **env)
        started.append(c)
        return c.start()

    yield make
    for c in started:
        c.stop()
    for c in started:
        for s in c:
            assert_no_server_errors(s)
