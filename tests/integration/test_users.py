"""The Users endpoints as API.md and DRF define them: the own profile (read, change
email/password with the current password), public user search with limit/offset paging,
public user detail, and deactivated users."""
import datetime
import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from conftest import Client, unique_name

ME_KEYS = {"id", "username", "email", "is_online", "last_seen", "date_joined"}
PUBLIC_KEYS = {"id", "username", "is_online", "last_seen"}
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
NO_CREDENTIALS = {"detail": "Authentication credentials were not provided."}
BLACKLISTED = {"detail": "Token is blacklisted", "code": "token_not_valid"}
BAD_LOGIN = {"detail": "No active account found with the given credentials"}
TOO_SHORT = "This password is too short. It must contain at least 8 characters."
NUMERIC = "This password is entirely numeric."


def hexpart():
    return uuid.uuid4().hex[:10]


def deactivate(server, user_id):
    server.db.execute("UPDATE users SET is_active = FALSE WHERE id = ?", user_id)


# --- GET /api/users/me/ ----------------------------------------------------------------

def test_me_returns_the_full_profile(client):
    before = datetime.datetime.now(datetime.timezone.utc)
    user = client.register()
    r = client.get("/api/users/me/", token=user["access"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == ME_KEYS
    assert body["id"] == user["user"]["id"]
    assert body["username"] == user["user"]["username"]
    assert body["email"] == user["user"]["email"]
    assert body["is_online"] is False
    assert body["last_seen"] is None
    assert TIMESTAMP.match(body["date_joined"]), body["date_joined"]
    joined = datetime.datetime.strptime(body["date_joined"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)
    after = datetime.datetime.now(datetime.timezone.utc)
    assert before - datetime.timedelta(seconds=5) <= joined <= after + datetime.timedelta(seconds=5)


def test_me_requires_a_token(client):
    for method in ("GET", "PATCH", "PUT"):
        r = client.request(method, "/api/users/me/", json={})
        assert r.status_code == 401, (method, r.text)
        assert r.json() == NO_CREDENTIALS
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="api"'


# --- PATCH/PUT /api/users/me/ ----------------------------------------------------------

def test_patch_changes_the_email(client):
    user = client.register()
    token = user["access"]
    new_email = f"changed-{hexpart()}@example.org"
    r = client.patch("/api/users/me/", token=token,
                     json={"email": new_email, "current_password": user["password"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == ME_KEYS
    assert body["email"] == new_email
    assert body["id"] == user["user"]["id"]
    assert body["username"] == user["user"]["username"]
    me = client.get("/api/users/me/", token=token)
    assert me.status_code == 200
    assert me.json() == body


def test_patch_needs_the_current_password(client):
    user = client.register()
    token = user["access"]
    r = client.patch("/api/users/me/", token=token, json={"email": "new@example.com"})
    assert r.status_code == 400, r.text
    assert r.json() == {"current_password": ["This field is required."]}
    r = client.patch("/api/users/me/", token=token,
                     json={"email": "new@example.com", "current_password": "not-my-password"})
    assert r.status_code == 400, r.text
    assert r.json() == {"current_password": ["Wrong password."]}
    # Nothing changed.
    me = client.get("/api/users/me/", token=token)
    assert me.status_code == 200
    assert me.json()["email"] == user["user"]["email"]


def test_patch_validates_the_email(client):
    user = client.register()
    token = user["access"]
    for bad in ("not-an-email", "two@@example.com", "user@LOCALHOST"):
        r = client.patch("/api/users/me/", token=token,
                         json={"email": bad, "current_password": user["password"]})
        assert r.status_code == 400, (bad, r.text)
        assert r.json() == {"email": ["Enter a valid email address."]}, bad
    me = client.get("/api/users/me/", token=token)
    assert me.json()["email"] == user["user"]["email"]


def test_patch_validates_a_new_password(client):
    user = client.register()
    token = user["access"]
    cases = [
        ("short1", [TOO_SHORT]),
        ("12345678", [NUMERIC]),
        ("1234", [TOO_SHORT, NUMERIC]),
    ]
    for password, messages in cases:
        r = client.patch("/api/users/me/", token=token,
                         json={"password": password, "current_password": user["password"]})
        assert r.status_code == 400, (password, r.text)
        assert r.json() == {"password": messages}, password
    # The old password still works: nothing was changed.
    client.login(user["user"]["username"], user["password"])


def test_patch_with_an_empty_body_changes_nothing(client):
    user = client.register()
    token = user["access"]
    before = client.get("/api/users/me/", token=token).json()
    r = client.patch("/api/users/me/", token=token, json={})
    assert r.status_code == 200, r.text
    assert r.json() == before
    assert client.get("/api/users/me/", token=token).json() == before


def test_put_behaves_like_patch(client):
    user = client.register()
    token = user["access"]
    r = client.request("PUT", "/api/users/me/", token=token, json={"email": "put@example.com"})
    assert r.status_code == 400, r.text
    assert r.json() == {"current_password": ["This field is required."]}
    r = client.request("PUT", "/api/users/me/", token=token,
                       json={"email": "put@example.com", "current_password": "wrong-one-1"})
    assert r.status_code == 400, r.text
    assert r.json() == {"current_password": ["Wrong password."]}
    new_email = f"put-{hexpart()}@example.com"
    r = client.request("PUT", "/api/users/me/", token=token,
                       json={"email": new_email, "current_password": user["password"]})
    assert r.status_code == 200, r.text
    assert set(r.json()) == ME_KEYS
    assert r.json()["email"] == new_email
    assert client.get("/api/users/me/", token=token).json()["email"] == new_email


def test_password_change_ends_every_other_session(client):
    """As Django keeps only the session that changed the password: every other login of
    the user ends at once (its refresh and access tokens are refused), the caller's goes on."""
    user = client.register()
    name, old_password = user["user"]["username"], user["password"]
    second = client.login(name, old_password)
    assert client.get("/api/users/me/", token=second["access"]).status_code == 200
    new_password = "brand-new-secret-9"
    r = client.patch("/api/users/me/", token=user["access"],
                     json={"password": new_password, "current_password": old_password})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == ME_KEYS
    assert body["id"] == user["user"]["id"]
    # The old password is gone, the new one works.
    r = client.post("/api/auth/login/", json={"username": name, "password": old_password})
    assert r.status_code == 401, r.text
    assert r.json() == BAD_LOGIN
    fresh = client.login(name, new_password)
    # The other session is over: its refresh token and its access token are refused...
    r = client.post("/api/auth/refresh/", json={"refresh": second["refresh"]})
    assert (r.status_code, r.json()) == (401, BLACKLISTED), r.text
    r = client.get("/api/users/me/", token=second["access"])
    assert r.status_code == 401 and r.json()["code"] == "token_not_valid", r.text
    # ...while the caller's session, and one started after the change, go on.
    assert client.get("/api/users/me/", token=user["access"]).status_code == 200
    for refresh in (user["refresh"], fresh["refresh"]):
        r = client.post("/api/auth/refresh/", json={"refresh": refresh})
        assert r.status_code == 200, r.text
        assert set(r.json()) == {"access"}


def test_password_changes_at_once_with_the_same_password_apply_once(client):
    """Changes confirmed with the same current password race: the first applies and its
    session goes on; the others find that password replaced ("Wrong password.") and change
    nothing. All of them answered 200, and every session ended, the winner's too."""
    user = client.register()
    name, old_password = user["user"]["username"], user["password"]
    sessions = [user] + [client.login(name, old_password) for _ in range(3)]
    barrier = threading.Barrier(len(sessions))

    def change(i):
        barrier.wait(timeout=30)
        return requests.patch(client.server.url + "/api/users/me/", timeout=30,
                              headers={"Authorization": f"Bearer {sessions[i]['access']}"},
                              json={"password": f"brand-new-secret-{i}",
                                    "current_password": old_password})

    with ThreadPoolExecutor(len(sessions)) as pool:
        answers = list(pool.map(change, range(len(sessions))))
    won = [i for i, r in enumerate(answers) if r.status_code == 200]
    assert len(won) == 1, [(r.status_code, r.text) for r in answers]
    for i, r in enumerate(answers):
        if i != won[0]:
            assert (r.status_code, r.json()) == (400, {"current_password": ["Wrong password."]}), r.text
    winner = won[0]
    client.login(name, f"brand-new-secret-{winner}")
    for i in range(len(sessions)):
        if i != winner:
            client.login(name, f"brand-new-secret-{i}", expect=401)
    assert client.get("/api/users/me/", token=sessions[winner]["access"]).status_code == 200
    r = client.post("/api/auth/refresh/", json={"refresh": sessions[winner]["refresh"]})
    assert r.status_code == 200, r.text


# --- GET /api/users/?search= -----------------------------------------------------------

def register_many(client, names):
    users = []
    for n in names:
        users.append(client.register(n, email=f"secret-{hexpart()}@mail-{hexpart()}.example.com"))
    return users


def test_search_is_a_case_insensitive_username_prefix(client):
    tag = hexpart()
    users = register_many(client, [f"srch{tag}_a", f"SRCH{tag}_B", f"Srch{tag}_c"])
    outsider = register_many(client, [f"zz_srch{tag}"])[0]  # contains, but does not start with
    token = users[0]["access"]
    expected_ids = [u["user"]["id"] for u in users]
    for query in (f"srch{tag}", f"SRCH{tag}", f"sRcH{tag}_", f"srch{tag}_b"):
        r = client.get("/api/users/", token=token, params={"search": query})
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"count", "next", "previous", "results"}
        want = expected_ids if not query.endswith("_b") else [users[1]["user"]["id"]]
        assert body["count"] == len(want), (query, body)
        assert [u["id"] for u in body["results"]] == want, query
        assert body["next"] is None and body["previous"] is None
        for u in body["results"]:
            assert set(u) == PUBLIC_KEYS, u
            assert "email" not in u
        # No email of anybody appears anywhere in the answer.
        for other in users + [outsider]:
            assert other["user"]["email"] not in r.text
    r = client.get("/api/users/", token=token, params={"search": f"srch{tag}_"})
    by_id = {u["id"]: u for u in r.json()["results"]}
    for u in users:
        pub = by_id[u["user"]["id"]]
        assert pub["username"] == u["user"]["username"]
        assert pub["is_online"] is False
        assert pub["last_seen"] is None
    r = client.get("/api/users/", token=token, params={"search": f"nomatch{tag}"})
    assert r.status_code == 200
    assert r.json() == {"count": 0, "next": None, "previous": None, "results": []}


def test_search_paging(client):
    tag = hexpart()
    users = register_many(client, [f"page{tag}_{i}" for i in range(5)])
    token = users[0]["access"]
    ids = sorted(u["user"]["id"] for u in users)

    def page(**params):
        r = client.get("/api/users/", token=token, params={"search": f"page{tag}", **params})
        assert r.status_code == 200, (params, r.text)
        return r.json()

    full = page()
    assert full["count"] == 5
    assert [u["id"] for u in full["results"]] == ids
    assert full["next"] is None and full["previous"] is None

    first = page(limit=2)
    assert first["count"] == 5
    assert [u["id"] for u in first["results"]] == ids[:2]
    assert first["previous"] is None
    assert first["next"] is not None and "offset=2" in first["next"] and "limit=2" in first["next"]

    middle = page(limit=2, offset=2)
    assert middle["count"] == 5
    assert [u["id"] for u in middle["results"]] == ids[2:4]
    assert middle["previous"] is not None
    assert middle["next"] is not None and "offset=4" in middle["next"]

    last = page(limit=2, offset=4)
    assert last["count"] == 5
    assert [u["id"] for u in last["results"]] == ids[4:]
    assert last["next"] is None
    assert last["previous"] is not None

    beyond = page(limit=2, offset=50)
    assert beyond["count"] == 5
    assert beyond["results"] == []
    assert beyond["next"] is None

    # The next link is a working URL that keeps the search.
    r = requests.get(first["next"], headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 200, (first["next"], r.text)
    assert r.json() == middle


def test_page_links_are_drfs(client, server):
    """next/previous as DRF's replace_query_param writes them: every parameter of the
    request kept, sorted by name, values quote_plus'ed ("+" as %2B, a space as "+"); the
    previous link of the second page has no offset. Following them gives the pages."""
    tag = hexpart()
    users = register_many(client, [f"pl{tag}+{i}" for i in range(3)])
    token = users[0]["access"]
    base = f"http://127.0.0.1:{server.port}/api/users/"

    def get(url):
        r = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert r.status_code == 200, (url, r.text)
        return r.json()

    first = get(f"{base}?search=pl{tag}%2B&limit=1&zeta=a%20b&alpha=1&alpha=2")
    assert first["count"] == 3
    assert first["next"] == f"{base}?alpha=1&alpha=2&limit=1&offset=1&search=pl{tag}%2B&zeta=a+b"
    second = get(first["next"])
    assert second["count"] == 3 and second["results"][0]["username"] == f"pl{tag}+1"
    assert second["previous"] == f"{base}?alpha=1&alpha=2&limit=1&search=pl{tag}%2B&zeta=a+b"
    assert get(second["previous"]) == first
    third = get(second["next"])
    assert third["results"][0]["username"] == f"pl{tag}+2" and third["next"] is None
    assert third["previous"] == f"{base}?alpha=1&alpha=2&limit=1&offset=1&search=pl{tag}%2B&zeta=a+b"


def test_search_with_a_bad_limit_or_offset_falls_back_to_defaults(client):
    tag = hexpart()
    users = register_many(client, [f"bad{tag}_{i}" for i in range(3)])
    token = users[0]["access"]
    ids = sorted(u["user"]["id"] for u in users)
    for params in ({"limit": "abc"}, {"limit": "0"}, {"limit": "-5"}, {"limit": ""},
                   {"offset": "abc"}, {"offset": "-1"}, {"limit": "99999999999999999999999"}):
        r = client.get("/api/users/", token=token, params={"search": f"bad{tag}", **params})
        assert r.status_code == 200, (params, r.text)
        body = r.json()
        assert body["count"] == 3, params
        assert [u["id"] for u in body["results"]] == ids, params


def test_limit_and_offset_are_read_as_python_int_reads_them(client):
    """DRF's LimitOffsetPagination reads both with int(): whitespace around, a sign and
    underscores between digits are fine; anything else means the default."""
    tag = hexpart()
    users = register_many(client, [f"pyint{tag}_{i}" for i in range(3)])
    token = users[0]["access"]
    ids = sorted(u["user"]["id"] for u in users)

    def got(**params):
        r = client.get("/api/users/", token=token, params={"search": f"pyint{tag}", **params})
        assert r.status_code == 200, (params, r.text)
        return [u["id"] for u in r.json()["results"]]

    for limit in (" 2 ", "+2", "\u00a02\t", "0_2"):
        assert got(limit=limit) == ids[:2], limit
    for limit in ("1_0", "2_", "_2", "2__0", "2.0", "- 2"):
        assert got(limit=limit) == ids, limit  # ten, or not an integer: the default
    assert got(limit="1", offset=" +1") == ids[1:2]
    assert got(limit="1", offset="1_000_000_000_000_000_000_000") == []


def test_search_finds_cyrillic_usernames_regardless_of_case(client):
    tag = hexpart()
    users = register_many(client, [f"Аня{tag}", f"аНЯ{tag}x"])
    token = users[0]["access"]
    ids = [u["user"]["id"] for u in users]
    for query in (f"аня{tag}", f"АНЯ{tag}", f"Аня{tag}"):
        r = client.get("/api/users/", token=token, params={"search": query})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["count"] == 2, (query, body)
        assert [u["id"] for u in body["results"]] == ids
        assert [u["username"] for u in body["results"]] == [f"Аня{tag}", f"аНЯ{tag}x"]


def test_search_without_a_token(client):
    r = client.get("/api/users/", params={"search": "a"})
    assert r.status_code == 401
    assert r.json() == NO_CREDENTIALS


# --- GET /api/users/{id}/ --------------------------------------------------------------

def test_user_detail_is_public(client):
    me, other = client.register(), client.register()
    r = client.get(f"/api/users/{other['user']['id']}/", token=me["access"])
    assert r.status_code == 200, r.text
    assert r.json() == {"id": other["user"]["id"], "username": other["user"]["username"],
                        "is_online": False, "last_seen": None}
    assert other["user"]["email"] not in r.text


def test_user_detail_not_found(client):
    me = client.register()
    for path in ("/api/users/999999999/", "/api/users/abc/", "/api/users/0/", "/api/users/-1/",
                 "/api/users/99999999999999999999999999/", "/api/users/1.5/"):
        r = client.get(path, token=me["access"])
        assert r.status_code == 404, (path, r.text)
        body = r.json()
        assert list(body) == ["detail"], (path, body)
        assert isinstance(body["detail"], str) and body["detail"]


def test_an_id_of_zero_is_a_route_of_its_own_as_djangos_int_converter_takes_it(client):
    me = client.register()
    assert client.get("/api/users/0/").status_code == 401  # authentication comes first
    assert client.get("/api/chats/0/").status_code == 401
    r = client.get("/api/users/0/", token=me["access"])
    assert r.status_code == 404 and r.json() == {"detail": "No User matches the given query."}, r.text
    r = client.get("/api/chats/0/", token=me["access"])
    assert r.status_code == 404 and r.json() == {"detail": "No Chat matches the given query."}, r.text
    r = client.get(f"/api/users/{me['user']['id']:08d}/", token=me["access"])
    assert r.status_code == 200 and r.json()["id"] == me["user"]["id"], r.text


def test_user_detail_without_a_token(client):
    me = client.register()
    r = client.get(f"/api/users/{me['user']['id']}/")
    assert r.status_code == 401
    assert r.json() == NO_CREDENTIALS


# --- deactivated users -----------------------------------------------------------------

def test_deactivated_user_is_hidden_and_locked_out(make_server):
    s = make_server()
    c = Client(s)
    viewer, gone = c.register(), c.register()
    r = c.get(f"/api/users/{gone['user']['id']}/", token=viewer["access"])
    assert r.status_code == 200, r.text
    deactivate(s, gone["user"]["id"])
    r = c.get(f"/api/users/{gone['user']['id']}/", token=viewer["access"])
    assert r.status_code == 404, r.text
    assert list(r.json()) == ["detail"]
    # Their own token stops working...
    for path in ("/api/users/me/", f"/api/users/{viewer['user']['id']}/", "/api/users/?search=u"):
        r = c.get(path, token=gone["access"])
        assert r.status_code == 401, (path, r.text)
        assert r.json() == {"detail": "User is inactive", "code": "user_inactive"}
    # ...and so does logging in.
    r = c.post("/api/auth/login/", json={"username": gone["user"]["username"],
                                         "password": gone["password"]})
    assert r.status_code == 401, r.text
    assert r.json() == BAD_LOGIN


def test_search_wildcards_are_literal(client):
    tag = hexpart()
    user = register_many(client, [f"lk{tag}xa"])[0]
    token = user["access"]
    for query in (f"lk{tag}_", f"lk{tag}%", f"lk%{tag}", f"lk{tag}\\", "%", "_"):
        r = client.get("/api/users/", token=token, params={"search": query})
        assert r.status_code == 200, (query, r.text)
        assert user["user"]["id"] not in [u["id"] for u in r.json()["results"]], query
    r = client.get("/api/users/", token=token, params={"search": f"lk{tag}x"})
    assert [u["id"] for u in r.json()["results"]] == [user["user"]["id"]]


def test_search_reads_terms_as_drfs_search_filter(client):
    """SearchFilter over "^username": commas are spaces, the text is split on whitespace,
    and every term must begin the username (case-insensitively)."""
    prefix = unique_name("s")
    ann = client.register(username=prefix + "annie")
    client.register(username=prefix + "bob")
    token = ann["access"]

    def found(search):
        r = client.get("/api/users/", token=token, params={"search": search})
        assert r.status_code == 200, r.text
        return sorted(u["username"] for u in r.json()["results"])

    assert found(f" {prefix}ann ") == [prefix + "annie"]
    assert found(f"{prefix}ANN {prefix}an") == [prefix + "annie"]
    assert found(f"{prefix}ann,") == [prefix + "annie"]
    assert found(f"{prefix}bob,{prefix}b") == [prefix + "bob"]
    assert found(f'"{prefix}ann"') == [prefix + "annie"]  # a quoted term, without its quotes
    assert found(f'"{prefix}ann {prefix}"') == []  # a phrase: no username holds a space
    assert found(f"{prefix}") == [prefix + "annie", prefix + "bob"]
    r = client.get("/api/users/", token=token, params={"search": f"{prefix}ann {prefix}bob"})
    assert r.json() == {"count": 0, "next": None, "previous": None, "results": []}, r.text

