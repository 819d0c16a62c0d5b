"""The repository's nginx config (deploy/nginx/chatd.conf) in front of three chatd nodes:
a real nginx on a loopback port proxies REST and WebSocket traffic to them.

The committed file is the one a human installs (listen 80, nodes on 127.0.0.1:8001-8003);
the test rewrites only its `listen` line and its upstream `server` lines to this run's
ports, and wraps it in a minimal main config whose pid, logs and temp folders are in a
temporary folder."""
import asyncio
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import pytest

from conftest import ROOT, Client, free_port
from test_websocket import (chat_ws, connect, is_, private_chat, rest_send, run, uid, user_ws)

CONF = os.path.join(ROOT, "deploy", "nginx", "chatd.conf")
NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
                                       if os.access(p, os.X_OK)), None)
UPSTREAM_SERVER = re.compile(r"^([ \t]*server[ \t]+)127\.0\.0\.1:80\d\d\b([^;\n]*;)[ \t]*\n", re.M)
LISTEN = re.compile(r"^([ \t]*)listen[ \t]+(\[::\]:)?80\b[^;\n]*;[ \t]*\n", re.M)


def render(text, listen_port, node_ports):
    """The committed config with this run's ports: the first upstream `server` line becomes
    one line per node (keeping its parameters), the other ones go, and `listen 80` becomes
    the loopback port (an IPv6 `listen [::]:80` goes)."""
    servers = UPSTREAM_SERVER.findall(text)
    assert servers, "no `server 127.0.0.1:80NN ...;` lines in the upstream block of " + CONF
    first = [True]

    def node_lines(m):
        if not first:
            return ""
        first.clear()
        head, params = m.group(1), m.group(2)
        return "".join(f"{head}127.0.0.1:{p}{params}\n" for p in node_ports)

    text = UPSTREAM_SERVER.sub(node_lines, text)
    listens = LISTEN.findall(text)
    assert listens, "no `listen 80;` line in " + CONF
    text = LISTEN.sub(lambda m: "" if m.group(2) else f"{m.group(1)}listen 127.0.0.1:{listen_port};\n", text)
    assert f"listen 127.0.0.1:{listen_port};" in text and all(f"127.0.0.1:{p} " in text for p in node_ports)
    return text


def test_render_keeps_the_committed_file_usable():
    """The committed file itself names the obvious ports a human edits."""
    with open(CONF) as f:
        text = f.read()
    assert re.search(r"^\s*listen\s+80;", text, re.M), text
    assert len(UPSTREAM_SERVER.findall(text)) >= 2, "several nodes in the upstream"
    for directive in ("proxy_http_version 1.1;", "proxy_set_header Upgrade $http_upgrade;",
                      "$proxy_add_x_forwarded_for", "proxy_read_timeout"):
        assert directive in text, directive
    out = render(text, 18080, [31001, 31002])
    assert "127.0.0.1:8001" not in out and "listen 80" not in out
    assert out.count("server 127.0.0.1:3100") == 2, out


class Nginx:
    def __init__(self, node_ports):
        self.dir = tempfile.mkdtemp(prefix="chatd-nginx-")
        os.chmod(self.dir, 0o755)  # the worker (nobody) reads and writes its temp folders here
        self.port = free_port()
        with open(CONF) as f:
            site = render(f.read(), self.port, node_ports).replace("/var/log/nginx/", self.dir + "/")
        with open(os.path.join(self.dir, "chatd.conf"), "w") as f:
            f.write(site)
        d = self.dir
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write(f"""daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    include {d}/chatd.conf;
}}
""")
        self.cmd = [NGINX, "-p", d, "-c", os.path.join(d, "nginx.conf"), "-e", os.path.join(d, "error.log")]
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        check = subprocess.run(self.cmd + ["-t"], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.time() + 15
        while time.time() < deadline:
            assert self.proc.poll() is None, self.read("error.log")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("nginx did not listen: " + self.read("error.log"))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful shutdown
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def read(self, name):
        try:
            with open(os.path.join(self.dir, name), errors="replace") as f:
                return f.read()
        except OSError:
            return ""


@pytest.fixture
def proxied(make_cluster):
    if NGINX is None:
        pytest.skip("nginx is not installed (scripts/install-deps.sh test installs it)")
    if os.geteuid() != 0:
        pytest.skip("nginx runs as root here (it switches its worker to nobody)")
    cluster = make_cluster(3, TRUSTED_PROXIES="127.0.0.1")
    front = Nginx([n.port for n in cluster]).start()
    yield cluster, front
    front.stop()
    errors = [line for line in front.read("error.log").splitlines() if "[error]" in line or "[crit]" in line
              or "[emerg]" in line or "[alert]" in line]
    assert not errors, errors


def nodes_that_served(cluster, request_line):
    return [n.port for n in cluster if request_line in n.read_log()]


@pytest.mark.postgres_only
def test_rest_and_websocket_through_nginx(proxied):
    cluster, front = proxied
    c = Client(front)
    assert c.get("/healthz").status_code == 200
    assert c.get("/readyz").status_code == 200
    # Metrics are not public: Prometheus scrapes each node on its own address.
    for path in ("/metrics", "/metrics/", "/metrics%2F", "//metrics", "/./metrics"):
        assert c.get(path).status_code == 403, path
    assert Client(cluster[0]).get("/metrics").status_code == 200
    a, b = c.register(), c.register()
    a_login = c.login(a["user"]["username"], a["password"])
    b_login = c.login(b["user"]["username"], b["password"])
    a, b = dict(a, access=a_login["access"]), dict(b, access=b_login["access"])
    chat = private_chat(c, a, b)
    r = c.get(f"/api/chats/{chat}/", token=b["access"])
    assert r.status_code == 200 and {m["id"] for m in r.json()["members"]} == {uid(a), uid(b)}, r.text
    # Requests are spread over the nodes (least_conn falls back to round-robin when idle).
    served = set(nodes_that_served(cluster, "POST /api/auth/register/")) | \
        set(nodes_that_served(cluster, "POST /api/auth/login/"))
    assert len(served) >= 2, f"every request went to one node: {served}"

    async def main():
        # Several sockets of b: least_conn puts them on different nodes. Each one hears a
        # message sent through nginx (REST), whichever node took the request.
        b_sockets = [await user_ws(front, b) for _ in range(3)]
        b_sockets.append(await chat_ws(front, b, chat))
        # Same-origin check through the proxy: Host keeps the port, so this Origin matches.
        a_chat = await chat_ws(front, a, chat, origin=front.url)
        m = rest_send(c, a, chat, "through nginx")
        for ws in b_sockets:
            f = await ws.until(is_("message", message_id=m["id"]), timeout=10)
            assert f["text"] == "through nginx" and f["chat_id"] == chat, f
        # A message sent on a socket: acknowledged to the sender, delivered to every b socket.
        cid = "ng-" + uuid.uuid4().hex
        await a_chat.send({"type": "message", "text": "over the socket", "client_id": cid})
        ack = await a_chat.until(is_("message", client_id=cid), timeout=10)
        for ws in b_sockets:
            f = await ws.until(is_("message", message_id=ack["message_id"]), timeout=10)
            assert f["client_id"] is None and f["text"] == "over the socket", f
        # A socket kept quiet is not cut by the proxy, and still answers.
        await asyncio.sleep(1)
        for ws in b_sockets + [a_chat]:
            await ws.ping()
        # Resume through the proxy (on whichever node): the two messages replay.
        ws = await connect(front, b["access"], "/ws/", sync=False, since=0)
        replay = []
        while (f := await ws.next(timeout=10))["type"] != "synced":
            replay.append(f)
        assert [f["message_id"] for f in replay if f["type"] == "message"] == [m["id"], ack["message_id"]]
        for s in b_sockets + [a_chat, ws]:
            await s.close()

    run(main())
    served = nodes_that_served(cluster, "GET /ws/")
    assert len(served) >= 2, f"the user sockets all went to one node: {served}"
    # The sockets went in with ?token=...: nginx logged them by path, without the token.
    log = front.read("access.log")
    assert '"GET /ws/ HTTP/1.1" 101' in log and '"GET /ws/chat/' in log, log[-2000:]
    assert "token=" not in log and b["access"] not in log and a["access"] not in log
    history = c.get(f"/api/messages/?chat={chat}", token=b["access"]).json()["results"]
    assert [x["text"] for x in history] == ["over the socket", "through nginx"], history


@pytest.mark.postgres_only
def test_forwarded_for_reaches_chatd_and_cannot_be_forged(proxied):
    cluster, front = proxied
    probe = f"/api/probe-{uuid.uuid4().hex}/"
    # Connect to nginx from another loopback address; the spoofed header is ignored.
    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=10, source_address=("127.0.0.5", 0))
    try:
        conn.request("GET", probe, headers={"X-Forwarded-For": "10.9.9.9"})
        r = conn.getresponse()
        r.read()
    finally:
        conn.close()
    assert r.status == 404
    # The request's line is written once the answer has gone out: it may come a moment
    # after the client has the answer.
    deadline = time.time() + 5
    while True:
        lines = [line for n in cluster for line in n.read_log().splitlines() if probe in line]
        if lines or time.time() > deadline:
            break
        time.sleep(0.05)
    assert len(lines) == 1, lines
    assert " 127.0.0.5 " in lines[0] and "10.9.9.9" not in lines[0], lines[0]
