"""Fixtures that start a real chatd process on a free loopback port and talk to it over
real sockets. Every server gets its own temporary SQLite file."""
import base64
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import pytest
import requests

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHATD = os.path.abspath(os.environ.get("CHATD_BIN", os.path.join(ROOT, "build", "release", "chatd")))
SECRET_KEY = "test-secret-key-" + "x1y2z3" * 10  # 76 characters, strong enough for DEBUG=0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A chatd process. `env` overrides the defaults below."""

    def __init__(self, workdir=None, **env):
        self.workdir = workdir or tempfile.mkdtemp(prefix="chatd-test-")
        self.port = free_port()
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "DEBUG": "0",
            "SECRET_KEY": SECRET_KEY,
            "BIND": "127.0.0.1",
            "PORT": str(self.port),
            "SQLITE_PATH": os.path.join(self.workdir, "db.sqlite3"),
            "ALLOWED_HOSTS": "localhost,127.0.0.1",
            "THREADS": "2",
            "LOG_LEVEL": "info",
        }
        self.env.update({k: str(v) for k, v in env.items()})
        self.proc = None
        self.log_path = os.path.join(self.workdir, f"chatd-{self.port}.log")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def db_path(self):
        return self.env["SQLITE_PATH"]

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([CHATD, "serve"], env=self.env, cwd=self.workdir,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chatd exited with {self.proc.returncode}: {self.read_log()}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError("chatd did not become healthy: " + self.read_log())

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()
        return self.proc.returncode if self.proc else None

    def restart(self):
        self.stop()
        return self.start()

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


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


def assert_no_server_errors(server):
    log = server.read_log()
    assert "unhandled error" not in log, log[-4000:]
    # Sanitizer builds (make sanitize, make sanitize-thread) report into the same log.
    assert "Sanitizer" not in log and "runtime error:" not in log, log[-8000:]
    assert " 500 " not in log, log[-4000:]


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
