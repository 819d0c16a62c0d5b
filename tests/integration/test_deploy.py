"""Deployment: the container's scripts run here for real, and the files that only Docker,
GitHub or systemd read are checked to refer to nothing that does not exist.

No Docker engine runs on the build machines, so:
  - deploy/build.sh (the image's build stage) installs into a temporary prefix, and the
    installed chatd serves its web pages and Swagger UI from that layout;
  - deploy/runtime-packages.sh (the runtime stage's package list) names installed packages;
  - deploy/docker/entrypoint.sh waits for PostgreSQL and Redis (a Redis started late, on the
    postgres pass), migrates and serves, and `chatd createsuperuser` works beside it;
  - docker-compose.yml, Dockerfile, .env.example, .github/workflows/ci.yml and
    deploy/systemd/chatd@.service are parsed, and every file, variable and command they name
    is looked up: in the repository, in chatd's settings, in `chatd --help`."""
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time

import pytest
import requests
import yaml

import conftest
from conftest import CHATD, ROOT, Client, Server, free_port, unique_name

ENTRYPOINT = os.path.join(ROOT, "deploy", "docker", "entrypoint.sh")
SETTINGS_CPP = os.path.join(ROOT, "src", "config", "settings.cpp")


def read(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return f.read()


def once():
    """Checks of files that do not depend on the storage backend run in the sqlite pass."""
    if conftest.BACKEND != "sqlite":
        pytest.skip("backend-independent: runs in the sqlite pass")


def chatd_settings():
    """Every environment variable chatd reads (the names given to its settings reader)."""
    names = set(re.findall(r'r\.\w+\("([A-Z][A-Z0-9_]*)"', read("src", "config", "settings.cpp")))
    assert {"SECRET_KEY", "DB_HOST", "REDIS_HOST", "LOG_FORMAT"} <= names, names
    return names


def chatd_commands():
    out = subprocess.run([CHATD, "--help"], capture_output=True, text=True, timeout=10).stdout
    commands = set(re.findall(r"^\s+([a-z]+)\s", re.split(r"(?i)subcommands:", out)[-1], re.M))
    assert {"serve", "migrate", "createsuperuser"} <= commands, out
    return commands


def dotenv_names(text):
    return [m.group(1) for m in re.finditer(r"^\s*#?\s*([A-Z][A-Z0-9_]*)=", text, re.M)]


# ---- the build and the installed tree ---------------------------------------------------------

@pytest.fixture(scope="module")
def installed():
    """deploy/build.sh on this run's build folder (already built: only the install is new)."""
    prefix = tempfile.mkdtemp(prefix="chatd-prefix-")
    build_dir = os.path.dirname(CHATD)
    r = subprocess.run([os.path.join(ROOT, "deploy", "build.sh"), build_dir, prefix],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    yield prefix
    shutil.rmtree(prefix, ignore_errors=True)


def test_build_script_installs_a_tree_that_serves_its_pages(installed):
    once()
    chatd = os.path.join(installed, "bin", "chatd")
    assert os.access(chatd, os.X_OK)
    for page in ("web/admin/index.html", "web/docs/index.html",
                 "node_modules/swagger-ui-dist/swagger-ui-bundle.js"):
        assert os.path.isfile(os.path.join(installed, "share", "chatd", page)), page
    # The installed binary, started elsewhere, finds the pages beside it (the image layout).
    workdir = tempfile.mkdtemp(prefix="chatd-installed-")
    s = Server(workdir=workdir)
    s.env.pop("WEB_ROOT", None)
    s.proc = subprocess.Popen([chatd, "serve"], env=s.env, cwd=workdir,
                              stdout=open(s.log_path, "ab"), stderr=subprocess.STDOUT)
    try:
        s.wait_ready()
        c = Client(s)
        assert c.get("/admin/").status_code == 200
        assert c.get("/api/docs/").status_code == 200
        r = c.get("/api/docs/static/swagger-ui-bundle.js")
        assert r.status_code == 200 and len(r.content) > 100_000
    finally:
        s.stop()


def test_runtime_packages_are_the_ones_the_binary_links(installed):
    once()
    r = subprocess.run([os.path.join(ROOT, "deploy", "runtime-packages.sh"),
                        os.path.join(installed, "bin", "chatd")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    packages = r.stdout.split()
    assert {"libpq5", "libsqlite3-0", "libsodium23", "libjwt0", "libssl3", "libstdc++6"} <= set(packages), packages
    assert any(p.startswith("libhiredis") for p in packages) and any(p.startswith("libboost-json") for p in packages)
    for p in packages:
        status = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Status}", p],
                                capture_output=True, text=True).stdout
        assert status == "installed", p


# ---- the entrypoint ---------------------------------------------------------------------------

class EntrypointServer(Server):
    """A chatd started the way the container starts it: through the entrypoint script."""

    def __init__(self, args=(), **env):
        super().__init__(**env)
        self.args = list(args)
        self.env["CHATD"] = CHATD
        self.env.setdefault("WAIT_TIMEOUT", "30")

    def spawn(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([ENTRYPOINT, *self.args], env=self.env, cwd=self.workdir,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        return self


def compose():
    return yaml.safe_load(read("docker-compose.yml"))


def run_healthcheck(port):
    """The backend's compose healthcheck, run as Docker runs it (compose turns `$$` into
    `$`) in a container whose PORT is `port`. Answers its exit status."""
    test = compose()["x-backend"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    command = [arg.replace("$$", "$") for arg in test[1:]]
    env = {"PATH": os.environ["PATH"], "PORT": str(port)}
    return subprocess.run(command, env=env, timeout=10, stderr=subprocess.DEVNULL).returncode


def test_entrypoint_migrates_serves_and_stops_on_sigterm():
    """On SQLite there is nothing to wait for; on PostgreSQL and Redis both are waited
    for (here already up). SIGTERM reaches chatd itself (the script execs it)."""
    s = EntrypointServer()
    s.spawn().wait_ready()
    try:
        assert s.db.scalar("SELECT count(*) FROM users") == 0  # migrated
        # The compose healthcheck, run as Docker would run it, passes against it.
        assert run_healthcheck(s.port) == 0
        log = s.read_log()
        if "DB_HOST" in s.env:
            assert "PostgreSQL at" in log and "is up" in log and "Redis at" in log, log
        else:
            assert "waiting for" not in log, log
    finally:
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(timeout=20) == 0, s.read_log()[-3000:]
        s.stop()
    assert "signal 15: stopping" in s.read_log()
    # The healthcheck fails once nothing serves.
    assert run_healthcheck(s.port) != 0


def test_entrypoint_waits_for_redis_then_serves_and_createsuperuser_works():
    if conftest.BACKEND != "postgres":
        pytest.skip("waits for PostgreSQL and Redis: the postgres pass")
    redis_port = free_port()
    s = EntrypointServer(REDIS_PORT=str(redis_port))
    s.spawn()
    redis = None
    try:
        deadline = time.time() + 10
        while "waiting for Redis" not in s.read_log() and time.time() < deadline:
            time.sleep(0.1)
        assert "waiting for Redis at 127.0.0.1:%d" % redis_port in s.read_log(), s.read_log()
        time.sleep(1.5)
        assert s.proc.poll() is None
        with pytest.raises(requests.RequestException):
            requests.get(s.url + "/healthz", timeout=1)
        # A real Redis comes up late on that port: the entrypoint goes on by itself.
        redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        s.wait_ready(timeout=60)
        assert s.db.scalar("SELECT count(*) FROM users") == 0
        # `docker compose exec backend chatd createsuperuser`: interactive, same settings.
        name, password = unique_name("admin"), "Adm1n-" + unique_name()
        env = {k: v for k, v in s.env.items() if k not in ("CHATD", "WAIT_TIMEOUT")}
        r = subprocess.run([CHATD, "createsuperuser"], env=env, cwd=s.workdir, timeout=60,
                           input=f"{name}\n{name}@example.com\n{password}\n{password}\n",
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        c = Client(s)
        tokens = c.login(name, password)
        assert c.get("/api/admin/users/", token=tokens["access"]).status_code == 200
    finally:
        s.stop()
        if redis:
            redis.terminate()
            redis.wait(timeout=10)


def test_entrypoint_gives_up_after_wait_timeout():
    closed = free_port()
    r = subprocess.run([ENTRYPOINT], env={"PATH": os.environ["PATH"], "CHATD": CHATD, "DB_HOST": "127.0.0.1",
                                          "DB_PORT": str(closed), "WAIT_TIMEOUT": "2"},
                       capture_output=True, text=True, timeout=30, cwd=tempfile.mkdtemp())
    assert r.returncode == 1
    assert f"PostgreSQL at 127.0.0.1:{closed} did not answer within 2s" in r.stderr, r.stderr


def test_env_example_secret_key_is_refused_in_production():
    """The placeholder key must be replaced: with DEBUG=0 chatd does not start with it."""
    once()
    key = re.search(r"^SECRET_KEY=(.*)$", read(".env.example"), re.M).group(1)
    env = {"PATH": os.environ["PATH"], "DEBUG": "0", "SECRET_KEY": key, "BIND": "127.0.0.1",
           "PORT": str(free_port())}
    with subprocess.Popen([CHATD, "serve"], env=env, cwd=tempfile.mkdtemp(), stderr=subprocess.PIPE,
                          text=True) as proc:
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError("chatd served with the placeholder SECRET_KEY and DEBUG=0")
    assert proc.returncode != 0 and "SECRET_KEY: too weak" in err, err


def test_entrypoint_runs_other_commands_as_given():
    once()
    r = subprocess.run([ENTRYPOINT, "echo", "hello"], env={"PATH": os.environ["PATH"], "DB_HOST": "nowhere.invalid"},
                       capture_output=True, text=True, timeout=10)
    assert (r.returncode, r.stdout) == (0, "hello\n"), r.stderr


# ---- files read by Docker, GitHub and systemd ----------------------------------------------------

def test_env_example_names_only_settings_chatd_reads():
    once()
    names = dotenv_names(read(".env.example"))
    original = ["DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DB_NAME", "DB_USER", "DB_PASSWORD",
                "DB_HOST", "DB_PORT", "REDIS_HOST", "REDIS_PORT"]
    assert all(n in names for n in original), names
    unknown = set(names) - chatd_settings()
    assert not unknown, f".env.example names settings chatd does not read: {unknown}"
    # It parses as chatd parses .env: `chatd migrate` accepts it in a scratch folder.
    workdir = tempfile.mkdtemp()
    text = read(".env.example").replace("DB_HOST=db", "DB_HOST=").replace("REDIS_HOST=redis", "REDIS_HOST=")
    with open(os.path.join(workdir, ".env"), "w") as f:
        f.write(text)
    r = subprocess.run([CHATD, "migrate"], env={"PATH": os.environ["PATH"]}, cwd=workdir,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr


def test_compose_file_refers_only_to_what_exists():
    once()
    doc = compose()
    services = doc["services"]
    assert {"db", "redis", "backend", "backend2", "nginx"} <= set(services)
    assert services["backend2"].get("profiles") == ["scale"] and services["nginx"].get("profiles") == ["scale"]
    assert services["backend"]["ports"] == ["8000:8000"]
    text = read("docker-compose.yml")
    # Every ${VAR} comes from .env (so .env.example has it) or has a default.
    env_names = set(dotenv_names(read(".env.example")))
    for var, default in re.findall(r"\$\{([A-Z0-9_]+)(:-[^}]*)?\}", text):
        assert var in env_names or default, f"${{{var}}} is neither in .env.example nor defaulted"
    settings = chatd_settings()
    for name in ("backend", "backend2"):
        svc = services[name]
        assert svc["build"] == "." and os.path.isfile(os.path.join(ROOT, "Dockerfile"))
        assert svc["env_file"] == ".env"
        assert set(svc["environment"]) <= settings, svc["environment"]
        assert set(svc["depends_on"]) == {"db", "redis"}
    # The database service is configured from the same variables chatd uses.
    db_env = services["db"]["environment"]
    assert db_env["POSTGRES_DB"] == "${DB_NAME:-chat}" and db_env["POSTGRES_USER"] == "${DB_USER:-chat}"
    # Bind mounts name files of the repository.
    for svc in services.values():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert os.path.exists(os.path.join(ROOT, source)), source
            else:
                assert source in doc.get("volumes", {}), source
    # nginx: the trusted proxy address is the one it gets; its sed rewrites the upstream
    # lines of the committed config, and only those.
    nginx = services["nginx"]
    assert nginx["networks"]["chat"]["ipv4_address"] == services["backend"]["environment"]["TRUSTED_PROXIES"]
    script = nginx["command"][-1]
    conf = read("deploy", "nginx", "chatd.conf")
    sed = [a for a in shlex.split(script.split("/etc/chatd/chatd.conf")[0])[1:] if a != "-e"]
    rendered = subprocess.run(["sed", *sum((["-e", e] for e in sed), [])], input=conf,
                              capture_output=True, text=True, check=True).stdout
    assert re.findall(r"^\s*server\s+(\S+:\d+)", rendered, re.M) == ["backend:8000", "backend2:8000"], rendered
    assert "127.0.0.1:80" not in rendered
    assert len(rendered.splitlines()) == len(conf.splitlines()) - 1


def test_dockerfile_refers_only_to_what_exists():
    once()
    lines = re.sub(r"\\\n", " ", read("Dockerfile")).splitlines()
    instructions = [(l.split()[0].upper(), l.split(None, 1)[1]) for l in lines
                    if l.strip() and not l.lstrip().startswith("#")]
    froms = [arg.split()[0] for op, arg in instructions if op == "FROM"]
    assert froms == ["debian:12", "debian:12-slim"], froms  # multi-stage, Debian 12
    ignored = [p.strip() for p in read(".dockerignore").splitlines() if p.strip() and not p.startswith("#")]
    copied = []
    for op, arg in instructions:
        if op == "COPY" and not arg.startswith("--from"):
            *sources, dest = arg.split()
            for src in sources:
                assert os.path.exists(os.path.join(ROOT, src)), f"COPY {src}: no such file"
                assert not any(src == p or src.startswith(p + "/") for p in ignored), f"{src} is in .dockerignore"
                copied.append(src)
        if op == "RUN":
            # The scripts a RUN names exist, are executable, and were copied in before it.
            for script in re.findall(r"((?:scripts|deploy)/[\w./-]+\.sh)", arg):
                assert os.access(os.path.join(ROOT, script), os.X_OK), script
                assert any(script == c or script.startswith(c.rstrip("/") + "/") for c in copied), \
                    f"{script} is run before it is copied"
    users = [arg for op, arg in instructions if op == "USER"]
    assert users and users[-1] not in ("root", "0"), "the runtime runs as a user of its own"
    entry = next(arg for op, arg in instructions if op == "ENTRYPOINT")
    assert entry == '["chatd-entrypoint"]'
    assert "COPY deploy/docker/entrypoint.sh /usr/local/bin/chatd-entrypoint" in lines
    cmd = next(arg for op, arg in instructions if op == "CMD")
    assert cmd == '["serve"]' and "serve" in chatd_commands()
    # `docker compose exec backend chatd createsuperuser`: chatd is on the image's PATH.
    assert "COPY --from=build /opt/chatd/bin/chatd /usr/local/bin/chatd" in lines
    assert "createsuperuser" in chatd_commands()
    # The settings the image sets are chatd's.
    for op, arg in instructions:
        if op == "ENV":
            assert {kv.split("=")[0] for kv in arg.split()} <= chatd_settings(), arg


def test_ci_workflow_runs_make_test_on_debian_12():
    once()
    wf = yaml.safe_load(read(".github", "workflows", "ci.yml"))
    job = wf["jobs"]["test"]
    assert job["container"] == "debian:12"
    runs = [step.get("run", "") for step in job["steps"]]
    assert "make test" in runs
    assert "make test" in read(".ci", "run")


def test_systemd_unit_refers_only_to_what_exists():
    once()
    unit = read("deploy", "systemd", "chatd@.service")
    commands = chatd_commands()
    for line in re.findall(r"^Exec\w+=(.*)$", unit, re.M):
        program, *args = line.split()
        assert program == "/usr/local/bin/chatd" and args[0] in commands, line
    for name in re.findall(r"^Environment=([A-Z_]+)=", unit, re.M):
        assert name in chatd_settings(), name
    systemd_analyze = shutil.which("systemd-analyze")
    if systemd_analyze:
        # Checked as an instance, with the paths it names present in a scratch root.
        folder = tempfile.mkdtemp()
        path = os.path.join(folder, "chatd@8000.service")
        with open(path, "w") as f:
            f.write(unit.replace("/usr/local/bin/chatd", CHATD))
        r = subprocess.run([systemd_analyze, "verify", "--man=no", path], capture_output=True, text=True, timeout=60)
        problems = [l for l in r.stderr.splitlines() if "chatd@8000.service" in l]
        assert not problems, r.stderr
