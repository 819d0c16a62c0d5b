"""The browser tests of the chat client at / (tests/browser/chat.mjs), run against a chatd of
their own: two users in two browser contexts of Debian's headless chromium chat through the
page (see tests/browser/chat.spec.mjs for the steps). chat.mjs registers its own users with
random names and writes what it did to a JSON file; this harness then checks the run's
effects from the server's side, through the REST API: every message sent while a side was
offline or disconnected is stored exactly once, the edit, the deletions, the unpin and the
membership changes are what the page showed.

Needs node, chromium and node_modules/playwright-core, as tests/integration/test_browser.py
(skipped without them, a failure under CI=true). Runs once, in the sqlite pass: the page is
the same on either backend. Screenshots go to test-artifacts/browser/chat-*.png."""
import glob
import json
import os
import tempfile

import pytest

import conftest
from conftest import ROOT, Client
from test_browser import ARTIFACTS, _chromium, _require_browser_tools, run_node

CHAT_MJS = os.path.join(ROOT, "tests", "browser", "chat.mjs")
RUN_TIMEOUT = 240  # seconds for the whole node run; each step is bounded to 60 s


def _history(client, token, chat_id):
    """A chat's whole history as one user sees it, oldest first."""
    out, before = [], None
    for _ in range(20):
        path = f"/api/messages/?chat={chat_id}&limit=200" + (f"&before={before}" if before else "")
        r = client.get(path, token=token)
        assert r.status_code == 200, r.text
        page = r.json()
        out.extend(page["results"])
        if not page["has_more"]:
            break
        before = page["results"][-1]["id"]
    return sorted(out, key=lambda m: m["id"])


def _texts(messages):
    return [m["text"] for m in messages]


def test_chat_client_in_a_browser(make_server):
    if conftest.BACKEND != "sqlite":
        pytest.skip("the browser tests run once, in the sqlite pass (the page is the same on either backend)")
    _require_browser_tools()
    server = make_server()
    c = Client(server)

    # Stale screenshots of an earlier run would be mistaken for this one's (the admin
    # panel's are test_browser.py's).
    for old in glob.glob(os.path.join(ARTIFACTS, "chat-*.png")):
        os.remove(old)
    result_file = os.path.join(tempfile.mkdtemp(prefix="chatd-web-client-"), "result.json")
    env = dict(os.environ, CHATD_URL=server.url, CHROMIUM_PATH=_chromium(), RESULT_FILE=result_file)
    code, out, seconds = run_node(CHAT_MJS, env, RUN_TIMEOUT)
    print(f"node tests/browser/chat.mjs: exit {code} after {seconds:.1f} s; screenshots in {ARTIFACTS}\n{out}")
    assert code is not None, f"node tests/browser/chat.mjs did not finish within {RUN_TIMEOUT} s:\n{out}"
    assert code == 0, f"node tests/browser/chat.mjs exited with {code} after {seconds:.1f} s:\n{out}"

    with open(result_file, encoding="utf-8") as f:
        run = json.load(f)
    users = run["users"]
    a = c.login(users["a"]["username"], users["a"]["password"])["access"]
    b = c.login(users["b"]["username"], users["b"]["password"])["access"]

    # The private chat as A sees it: everything sent across the offline spell, the dropped
    # socket and the resync is stored once.
    seen_by_a = _history(c, a, run["private_chat_id"])
    texts = _texts(seen_by_a)
    for text in ["While you were away 1", "While you were away 2", "While you were away 3",
                 "Sent while offline", "After the reconnect", "Sent during the drop 1",
                 "Sent during the drop 2", "After the drop", "Only REST can tell A about this",
                 "After the resync", "Hi A"]:
        assert texts.count(text) == 1, (text, texts)
    edited = [m for m in seen_by_a if m["text"] == "Hello B, edited"]
    assert len(edited) == 1 and edited[0]["is_edited"] is True, seen_by_a
    assert "Hello B" not in texts
    deleted = [m for m in seen_by_a if m["is_deleted"]]
    assert len(deleted) == 1 and deleted[0]["text"] == "", deleted
    # B hid "Hi A" for themselves only.
    assert "Hi A" not in _texts(_history(c, b, run["private_chat_id"]))
    # B unpinned what A pinned.
    r = c.get(f"/api/pinned/?chat={run['private_chat_id']}", token=a)
    assert r.status_code == 200 and r.json() == [], r.text

    # The group: C was added and removed again; it holds the forwarded copy.
    r = c.get(f"/api/chats/{run['group_id']}/", token=b)
    assert r.status_code == 200, r.text
    group = r.json()
    assert group["name"] == run["group_name"]
    assert sorted(m["username"] for m in group["members"]) == sorted([users["a"]["username"], users["b"]["username"]])
    copies = _history(c, b, run["group_id"])
    assert len(copies) == 1 and copies[0]["text"] == "Hello B, edited", copies
    assert copies[0]["forwarded_from"] == edited[0]["id"], (copies, edited)

    # A read C's long history to the end in the page.
    r = c.get(f"/api/chats/{run['history_chat_id']}/", token=a)
    assert r.status_code == 200, r.text
    assert r.json()["unread_count"] == 0, r.json()
    assert len(_history(c, a, run["history_chat_id"])) == run["history_size"]
