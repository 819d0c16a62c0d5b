"""The browser tests of the admin panel and Swagger UI (tests/browser/run.mjs), run against a
chatd of their own: this harness prepares the data run.mjs's header asks for (a staff user
made with `chatd createsuperuser`, a victim with a chat and a message, a second member),
runs `node tests/browser/run.mjs` in Debian's headless chromium, then checks the run's
effects from here: the message is deleted, the victim is active again and not staff.

They need node, chromium (/usr/bin/chromium, or CHROMIUM_PATH) and node_modules/playwright-core,
which scripts/install-web.sh test installs (make test does). Without one of them the test is
skipped, except under CI (CI=true), where that is a failure. They run once, in the sqlite
pass: the panel and the docs are the same pages on either backend, and the admin endpoints'
behaviour on PostgreSQL is covered by the REST tests. Screenshots of every step go to
test-artifacts/browser/ (ignored by git)."""
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import conftest
from conftest import CHATD, ROOT, SECRET_KEY, Client, Database, unique_name

RUN_MJS = os.path.join(ROOT, "tests", "browser", "run.mjs")
ARTIFACTS = os.path.join(ROOT, "test-artifacts", "browser")
RUN_TIMEOUT = 360  # seconds for the whole node run; run.mjs bounds each test to 2 minutes


def _under_ci():
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _chromium():
    explicit = os.environ.get("CHROMIUM_PATH")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium")


def _missing_pieces():
    missing = []
    if not shutil.which("node"):
        missing.append("node (not on PATH)")
    if not _chromium():
        missing.append(f"chromium ({os.environ.get('CHROMIUM_PATH') or '/usr/bin/chromium'} is not executable)")
    if not os.path.isfile(os.path.join(ROOT, "node_modules", "playwright-core", "package.json")):
        missing.append("node_modules/playwright-core")
    return missing


def _require_browser_tools():
    missing = _missing_pieces()
    if not missing:
        return
    message = (f"browser tests need {', '.join(missing)}; "
               "install them with `scripts/install-web.sh test` (make test does)")
    if _under_ci():
        pytest.fail(f"{message} (CI is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(message)


def _createsuperuser(db, username, password):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SECRET_KEY": SECRET_KEY, **db.env}
    r = subprocess.run([CHATD, "createsuperuser", "--username", username, "--email", f"{username}@example.com",
                        "--password", password, "--noinput"],
                       env=env, cwd=tempfile.mkdtemp(prefix="chatd-su-"), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"chatd createsuperuser failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"


def run_node(script, env, timeout):
    """Runs a node script in a process group of its own (node and the chromium it starts),
    so a timeout ends all of it. Answers (exit code or None after the timeout, combined
    output, seconds)."""
    started = time.monotonic()
    proc = subprocess.Popen(["node", script], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out, time.monotonic() - started
    return proc.returncode, out, time.monotonic() - started


def _message(client, who, chat_id, message_id):
    r = client.get(f"/api/messages/?chat={chat_id}&before={message_id + 1}&limit=5", token=who)
    assert r.status_code == 200, r.text
    found = [m for m in r.json()["results"] if m["id"] == message_id]
    assert found, f"message {message_id} is not in chat {chat_id}'s history: {r.text}"
    return found[0]


def test_admin_panel_and_swagger_ui_in_a_browser(make_server):
    if conftest.BACKEND != "sqlite":
        pytest.skip("the browser tests run once, in the sqlite pass (the pages are the same on either backend)")
    _require_browser_tools()

    # A chatd of its own, with a superuser made the way an operator makes one.
    workdir = tempfile.mkdtemp(prefix="chatd-browser-")
    db = Database(workdir)
    admin_name, admin_password = unique_name("admin"), "admin-pass-" + unique_name("")
    _createsuperuser(db, admin_name, admin_password)
    server = make_server(workdir=workdir, database=db)
    c = Client(server)

    # The victim (not staff), a second member, their group and the victim's message.
    victim = c.register(unique_name("victim"))
    member = c.register(unique_name("member"))
    victim_id = victim["user"]["id"]
    r = c.post("/api/chats/", token=victim["access"],
               json={"type": "group", "name": "browser test", "member_ids": [member["user"]["id"]]})
    assert r.status_code == 201, r.text
    chat_id = r.json()["id"]
    r = c.post("/api/messages/", token=victim["access"], json={"chat": chat_id, "text": "delete me from the admin panel"})
    assert r.status_code == 201, r.text
    message_id = r.json()["id"]
    assert _message(c, member["access"], chat_id, message_id)["is_deleted"] is False

    # A fresh access token, minted just before the run (its lifetime covers the run).
    victim_access = c.login(victim["user"]["username"], victim["password"])["access"]

    # Stale screenshots of an earlier run would be mistaken for this one's.
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    env = dict(os.environ,
               CHATD_URL=server.url,
               ADMIN_USERNAME=admin_name,
               ADMIN_PASSWORD=admin_password,
               VICTIM_ID=str(victim_id),
               VICTIM_ACCESS=victim_access,
               VICTIM_MESSAGE_ID=str(message_id),
               VICTIM_CHAT_ID=str(chat_id),
               VICTIM_PASSWORD=victim["password"],
               CHROMIUM_PATH=_chromium())
    code, out, seconds = run_node(RUN_MJS, env, RUN_TIMEOUT)
    print(f"node tests/browser/run.mjs: exit {code} after {seconds:.1f} s; screenshots in {ARTIFACTS}\n{out}")
    assert code is not None, f"node tests/browser/run.mjs did not finish within {RUN_TIMEOUT} s:\n{out}"
    assert code == 0, f"node tests/browser/run.mjs exited with {code} after {seconds:.1f} s:\n{out}"

    # The run's effects, seen from here. The message is deleted for the other member...
    gone = _message(c, member["access"], chat_id, message_id)
    assert gone["is_deleted"] is True and gone["text"] == "", gone
    # ...and the victim is active again and not staff, as the admin API reports them.
    admin_access = c.login(admin_name, admin_password)["access"]
    r = c.get(f"/api/admin/users/{victim_id}/", token=admin_access)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == victim_id and body["is_active"] is True and body["is_staff"] is False, body
    assert body["is_superuser"] is False, body
