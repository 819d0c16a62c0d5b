"""The staff-only admin API: who may call it; the user list and detail (inactive users
included); activating and deactivating accounts (refresh tokens revoked, access tokens
refused at once, sockets closed with 4003 on every node); granting and revoking staff;
chats with their counters and members; messages of any chat; deleting a message for
everyone; and the counters of /api/admin/stats/.

Every response body is validated against the schema api/openapi.json gives for that
operation and status (test_openapi's checks).

Staff users are made by `chatd createsuperuser`, run against the server's own database."""
import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import jsonschema
import pytest
import requests

from conftest import Client, unique_name
from test_openapi import SPEC as DOC
from test_openapi import assert_matches, create_superuser, inline_refs, response_definition
from test_websocket import (chat_ws, group_chat, is_, private_chat, refused, rest_send, run, uid,
                            uname, user_ws, without_seq)

ADMIN_OPERATIONS = [
    ("GET", "/api/admin/users/"),
    ("GET", "/api/admin/users/{id}/"),
    ("PATCH", "/api/admin/users/{id}/"),
    ("GET", "/api/admin/chats/"),
    ("GET", "/api/admin/chats/{id}/"),
    ("GET", "/api/admin/messages/"),
    ("DELETE", "/api/admin/messages/{id}/"),
    ("GET", "/api/admin/stats/"),
]
ADMIN_USER_KEYS = {"id", "username", "email", "is_active", "is_staff", "is_superuser", "is_online",
                   "last_seen", "date_joined"}
ADMIN_CHAT_KEYS = {"id", "type", "name", "created_at", "member_count", "message_count",
                   "last_message_id"}
STATS_KEYS = {"users_total", "users_online", "sockets", "chats_total", "messages_total",
              "messages_per_minute"}
PAGE_KEYS = {"count", "next", "previous", "results"}
NO_CREDENTIALS = {"detail": "Authentication credentials were not provided."}
FORBIDDEN = {"detail": "You do not have permission to perform this action."}
NOT_FOUND = {"detail": "No User matches the given query."}
INACTIVE = {"detail": "User is inactive", "code": "user_inactive"}
BAD_LOGIN = {"detail": "No active account found with the given credentials"}
NOT_BOOLEAN = ["Must be a valid boolean."]
STAFF_PASSWORD = "staff-pass-12"
BOGUS = 987_654_321_987  # an id that never exists
CLOSE_DEACTIVATED = 4003


def call(c, method, template, expect, token=None, ids=None, query=None, **kw):
    """One request, its status asserted and its body validated against the document.
    `ids` fills the template's {id}; `query` is the query string (a dict)."""
    path = template.format(**(ids or {}))
    r = c.request(method, path, token=token, params=query, **kw)
    assert r.status_code == expect, f"{method} {r.url}: expected {expect}, got {r.status_code} {r.text[:1500]}"
    body = None
    if r.content:
        assert r.headers.get("Content-Type", "").startswith("application/json"), (method, r.url, r.headers)
        body = r.json()
    assert_matches(method, template, r.status_code, body)
    return body


def admin_user(c, staff, user_id):
    return call(c, "GET", "/api/admin/users/{id}/", 200, token=staff["access"], ids={"id": user_id})


def admin_users(c, staff, **query):
    return call(c, "GET", "/api/admin/users/", 200, token=staff["access"], query=query)


def set_flags(c, staff, user_id, **flags):
    return call(c, "PATCH", "/api/admin/users/{id}/", 200, token=staff["access"], ids={"id": user_id},
                json=flags)


def admin_chats(c, staff, **query):
    return call(c, "GET", "/api/admin/chats/", 200, token=staff["access"], query=query)


def admin_chat(c, staff, chat_id):
    return call(c, "GET", "/api/admin/chats/{id}/", 200, token=staff["access"], ids={"id": chat_id})


def admin_messages(c, staff, **query):
    return call(c, "GET", "/api/admin/messages/", 200, token=staff["access"], query=query)


def stats(c, staff):
    body = call(c, "GET", "/api/admin/stats/", 200, token=staff["access"])
    assert set(body) == STATS_KEYS, body
    for k, v in body.items():
        assert type(v) is int and v >= 0, (k, body)
    return body


def ids_of(page):
    return [x["id"] for x in page["results"]]


def history(c, who, chat_id):
    body = call(c, "GET", "/api/messages/", 200, token=who["access"], query={"chat": chat_id, "limit": 200})
    return {m["id"]: m for m in body["results"]}


def wait_for(what, fetch, ok, timeout=3.0, interval=0.1):
    """Calls `fetch` until `ok(value)`; returns that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if ok(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last: {value!r})")
        time.sleep(interval)


async def wait_for_async(what, fetch, ok, timeout=3.0):
    return await asyncio.to_thread(wait_for, what, fetch, ok, timeout)


def make_staff(server, c):
    """A superuser made by `chatd createsuperuser` on the server's database, logged in."""
    name = unique_name("staff")
    create_superuser(server, name, STAFF_PASSWORD)
    tokens = c.login(name, STAFF_PASSWORD)
    r = c.get("/api/users/me/", token=tokens["access"])
    assert r.status_code == 200, r.text
    return {"user": r.json(), "password": STAFF_PASSWORD, **tokens}


@pytest.fixture(scope="module")
def superuser_name(server):
    name = unique_name("staff")
    create_superuser(server, name, STAFF_PASSWORD)
    return name


@pytest.fixture
def staff(client, superuser_name):
    """The module's superuser, freshly logged in (access tokens are short-lived)."""
    tokens = client.login(superuser_name, STAFF_PASSWORD)
    r = client.get("/api/users/me/", token=tokens["access"])
    assert r.status_code == 200, r.text
    return {"user": r.json(), "password": STAFF_PASSWORD, **tokens}


# ---- the document itself ----------------------------------------------------------------------

def test_the_document_describes_every_admin_operation():
    for method, template in ADMIN_OPERATIONS:
        op = DOC["paths"].get(template, {}).get(method.lower())
        assert op is not None, f"{method} {template} is not documented"
        assert op.get("tags") == ["admin"], (method, template)
        assert {"401", "403"} <= set(op["responses"]), (method, template)
        for status in op["responses"]:
            definition = response_definition(method, template, status)
            for media in definition.get("content", {}).values():
                jsonschema.Draft202012Validator.check_schema(inline_refs(media["schema"], DOC))
    for name in ("AdminUser", "AdminUserPage", "AdminUserUpdate", "AdminChat", "AdminChatPage",
                 "AdminChatDetail", "AdminStats"):
        schema = DOC["components"]["schemas"][name]
        inlined = inline_refs(schema, DOC)
        jsonschema.Draft202012Validator.check_schema(inlined)
        for example in schema.get("examples", []):
            jsonschema.Draft202012Validator(inlined).validate(example)


# ---- who may call it ----------------------------------------------------------------------------

def test_anonymous_and_non_staff_callers_are_refused(client, staff):
    ann, bob = client.register(), client.register()
    chat = group_chat(client, ann, bob, name="guarded")
    m = rest_send(client, bob, chat, "not to be deleted by ann")
    requests_to_try = [
        ("GET", "/api/admin/users/", {}, {}),
        ("GET", "/api/admin/users/{id}/", {"id": uid(bob)}, {}),
        ("PATCH", "/api/admin/users/{id}/", {"id": uid(bob)}, {"json": {"is_active": False}}),
        ("GET", "/api/admin/chats/", {}, {}),
        ("GET", "/api/admin/chats/{id}/", {"id": chat}, {}),
        ("GET", "/api/admin/messages/", {}, {}),
        ("DELETE", "/api/admin/messages/{id}/", {"id": m["id"]}, {}),
        ("GET", "/api/admin/stats/", {}, {}),
    ]
    assert {(method, t) for method, t, _, _ in requests_to_try} == set(ADMIN_OPERATIONS)
    for method, template, ids, kw in requests_to_try:
        path = template.format(**ids)
        r = client.request(method, path, **kw)
        assert r.status_code == 401, (method, path, r.status_code, r.text)
        assert r.json() == NO_CREDENTIALS, (method, path, r.text)
        assert r.headers.get("WWW-Authenticate") == 'Bearer realm="api"', (method, path, r.headers)
        assert_matches(method, template, 401, r.json())
        bad = call(client, method, template, 401, token="not-a-jwt", ids=ids, **kw)
        assert bad["code"] == "token_not_valid", (method, path, bad)
        # A refresh token is not an access token.
        call(client, method, template, 401, token=ann["refresh"], ids=ids, **kw)
        assert call(client, method, template, 403, token=ann["access"], ids=ids, **kw) == FORBIDDEN, \
            (method, path)
    # Permission comes before looking the object up and before validating the body.
    for method, template, kw in (("GET", "/api/admin/users/{id}/", {}),
                                 ("PATCH", "/api/admin/users/{id}/", {"json": {"is_active": "maybe"}}),
                                 ("GET", "/api/admin/chats/{id}/", {}),
                                 ("DELETE", "/api/admin/messages/{id}/", {})):
        assert call(client, method, template, 403, token=ann["access"], ids={"id": BOGUS}, **kw) == FORBIDDEN
    # Nothing the refused calls asked for happened.
    b = admin_user(client, staff, uid(bob))
    assert b["is_active"] is True and b["is_staff"] is False
    assert history(client, bob, chat)[m["id"]]["is_deleted"] is False
    r = client.get("/api/users/me/", token=bob["access"])
    assert r.status_code == 200, r.text
    # ...and before reading the query string: a non-staff caller learns nothing about it.
    for query in ({"chat": "abc"}, {"limit": "0"}, {"before": "x"}):
        assert call(client, "GET", "/api/admin/messages/", 403, token=ann["access"],
                    query=query) == FORBIDDEN, query


def test_the_staff_flag_grants_and_revokes_access_at_once(client, staff):
    ann = client.register()
    call(client, "GET", "/api/admin/stats/", 403, token=ann["access"])
    body = set_flags(client, staff, uid(ann), is_staff=True)
    assert body["is_staff"] is True and body["is_superuser"] is False and body["is_active"] is True
    # The token ann already holds now opens every admin endpoint.
    stats(client, ann)
    found = call(client, "GET", "/api/admin/users/", 200, token=ann["access"],
                 query={"search": uname(ann)})
    assert ids_of(found) == [uid(ann)] and found["results"][0]["is_staff"] is True
    call(client, "GET", "/api/admin/chats/", 200, token=ann["access"])
    call(client, "GET", "/api/admin/messages/", 200, token=ann["access"])
    # A staff user who is not a superuser may manage others too.
    bob = client.register()
    assert call(client, "PATCH", "/api/admin/users/{id}/", 200, token=ann["access"], ids={"id": uid(bob)},
                json={"is_staff": True})["is_staff"] is True
    assert call(client, "PATCH", "/api/admin/users/{id}/", 200, token=ann["access"], ids={"id": uid(bob)},
                json={"is_staff": False})["is_staff"] is False
    # Revoked: the same token is refused again.
    body = set_flags(client, staff, uid(ann), is_staff=False)
    assert body["is_staff"] is False
    assert call(client, "GET", "/api/admin/stats/", 403, token=ann["access"]) == FORBIDDEN
    assert call(client, "GET", "/api/admin/users/", 403, token=ann["access"]) == FORBIDDEN


# ---- users ----------------------------------------------------------------------------------------

def test_user_detail(client, staff):
    ann = client.register()
    me = client.get("/api/users/me/", token=ann["access"]).json()
    body = admin_user(client, staff, uid(ann))
    assert set(body) == ADMIN_USER_KEYS
    assert body == {"id": uid(ann), "username": uname(ann), "email": ann["user"]["email"],
                    "is_active": True, "is_staff": False, "is_superuser": False, "is_online": False,
                    "last_seen": None, "date_joined": me["date_joined"]}
    own = admin_user(client, staff, staff["user"]["id"])
    assert own["username"] == staff["user"]["username"]
    assert own["email"] == staff["user"]["email"]
    assert (own["is_active"], own["is_staff"], own["is_superuser"]) == (True, True, True)
    for bad in (BOGUS, "abc", "0", "-1", "1.5", "99999999999999999999999999"):
        body = call(client, "GET", "/api/admin/users/{id}/", 404, token=staff["access"], ids={"id": bad})
        assert list(body) == ["detail"], (bad, body)
    # The 404 of an unknown id is DRF's {"detail": "Not found."}.
    body = call(client, "GET", "/api/admin/users/{id}/", 404, token=staff["access"], ids={"id": BOGUS})
    assert body == NOT_FOUND


def test_user_detail_shows_presence(server, client, staff):
    ann = client.register()

    def public():
        r = client.get(f"/api/users/{uid(ann)}/", token=staff["access"])
        assert r.status_code == 200, r.text
        return r.json()

    async def main():
        ws = await user_ws(server, ann)
        await wait_for_async("ann online in the admin API", lambda: admin_user(client, staff, uid(ann)),
                             lambda u: u["is_online"] is True)
        await ws.close()
        gone = await wait_for_async("ann offline in the admin API",
                                    lambda: admin_user(client, staff, uid(ann)),
                                    lambda u: u["is_online"] is False and u["last_seen"] is not None,
                                    timeout=8)
        p = await asyncio.to_thread(public)
        assert p["is_online"] is False and p["last_seen"] == gone["last_seen"], (p, gone)

    run(main())


def register_many(server, names):
    def one(name):
        return Client(server).register(name, email=f"{name}@mail-{uuid.uuid4().hex[:8]}.example.com")

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, names))


def test_user_list_search_is_a_case_insensitive_prefix_and_includes_inactive_users(server, client, staff):
    tag = uuid.uuid4().hex[:10]
    users = [client.register(n) for n in (f"adm{tag}_a", f"ADM{tag}_B", f"Adm{tag}_c")]
    outsider = client.register(f"zz_adm{tag}")  # contains the prefix but does not start with it
    ids = [uid(u) for u in users]
    assert ids == sorted(ids)
    off = set_flags(client, staff, ids[1], is_active=False)
    assert off["is_active"] is False
    for query in (f"adm{tag}", f"ADM{tag}", f"aDm{tag}_"):
        page = admin_users(client, staff, search=query)
        assert set(page) == PAGE_KEYS
        assert page["count"] == 3, (query, page)
        assert ids_of(page) == ids, query  # ordered by id, the inactive one included
        assert page["next"] is None and page["previous"] is None
        for u in page["results"]:
            assert set(u) == ADMIN_USER_KEYS, u
            assert u == admin_user(client, staff, u["id"]), u
        assert [u["is_active"] for u in page["results"]] == [True, False, True]
        assert [u["username"] for u in page["results"]] == [uname(u) for u in users]
        assert [u["email"] for u in page["results"]] == [u["user"]["email"] for u in users]
        assert uid(outsider) not in ids_of(page)
    assert ids_of(admin_users(client, staff, search=f"adm{tag}_b")) == [ids[1]]
    assert ids_of(admin_users(client, staff, search=f"zz_ADM{tag}")) == [uid(outsider)]
    assert admin_users(client, staff, search=f"nomatch{tag}") == {
        "count": 0, "next": None, "previous": None, "results": []}
    # LIKE wildcards are literal characters.
    for query in (f"adm{tag}%", f"adm{tag}_%", f"adm%{tag}", f"adm{tag}\\", "%", "_"):
        assert not set(ids_of(admin_users(client, staff, search=query))) & set(ids), query
    # Cyrillic usernames, any case.
    cyr = [client.register(n, email=f"cyr{i}{tag}@example.com")
           for i, n in enumerate((f"Аня{tag}", f"аНЯ{tag}x"))]
    for query in (f"аня{tag}", f"АНЯ{tag}"):
        assert ids_of(admin_users(client, staff, search=query)) == [uid(u) for u in cyr], query


def test_user_list_paging(client, staff):
    tag = uuid.uuid4().hex[:10]
    users = [client.register(f"pg{tag}_{i}") for i in range(5)]
    ids = sorted(uid(u) for u in users)
    set_flags(client, staff, ids[3], is_active=False)

    def page(**query):
        return admin_users(client, staff, search=f"pg{tag}", **query)

    full = page()
    assert full["count"] == 5 and ids_of(full) == ids
    first = page(limit=2)
    assert first["count"] == 5 and ids_of(first) == ids[:2] and first["previous"] is None
    assert first["next"] and "offset=2" in first["next"] and "limit=2" in first["next"]
    middle = page(limit=2, offset=2)
    assert middle["count"] == 5 and ids_of(middle) == ids[2:4]
    assert middle["previous"] is not None and middle["next"] and "offset=4" in middle["next"]
    last = page(limit=2, offset=4)
    assert ids_of(last) == ids[4:] and last["next"] is None and last["previous"] is not None
    beyond = page(limit=2, offset=50)
    assert beyond["count"] == 5 and beyond["results"] == [] and beyond["next"] is None
    # The links are working URLs that keep the search.
    r = requests.get(first["next"], headers={"Authorization": f"Bearer {staff['access']}"}, timeout=30)
    assert r.status_code == 200, (first["next"], r.text)
    assert r.json() == middle
    r = requests.get(last["previous"], headers={"Authorization": f"Bearer {staff['access']}"}, timeout=30)
    assert r.status_code == 200, (last["previous"], r.text)
    assert ids_of(r.json()) == ids[2:4]
    # A limit or offset that is not a positive integer is ignored (as DRF).
    for query in ({"limit": "abc"}, {"limit": "0"}, {"limit": "-5"}, {"limit": ""},
                  {"offset": "abc"}, {"offset": "-1"}):
        body = page(**query)
        assert body["count"] == 5 and ids_of(body) == ids, query


def test_user_list_default_and_maximum_page_size(server, client, staff):
    total = admin_users(client, staff, limit=1)["count"]
    if total < 201:
        register_many(server, [unique_name("bulk") for _ in range(201 - total)])
    default = admin_users(client, staff)
    assert default["count"] >= 201, default["count"]
    assert len(default["results"]) == 50, len(default["results"])
    assert default["previous"] is None
    assert default["next"] and "limit=50" in default["next"] and "offset=50" in default["next"], default["next"]
    listed = ids_of(default)
    assert listed == sorted(listed) and len(set(listed)) == 50
    big = admin_users(client, staff, limit=1000)
    assert len(big["results"]) == 200, len(big["results"])
    assert ids_of(big)[:50] == listed
    assert ids_of(big) == sorted(ids_of(big))
    assert big["next"] and "limit=200" in big["next"] and "offset=200" in big["next"], big["next"]
    exact = admin_users(client, staff, limit=200, offset=50)
    assert ids_of(exact)[:150] == ids_of(big)[50:]


def test_patch_validates_the_body(client, staff):
    bob = client.register()
    before = admin_user(client, staff, uid(bob))
    path = ("PATCH", "/api/admin/users/{id}/")
    target = {"id": uid(bob)}
    token = staff["access"]
    assert call(client, *path, 400, token=token, ids=target, json={"is_active": "maybe"}) == {
        "is_active": NOT_BOOLEAN}
    assert call(client, *path, 400, token=token, ids=target, json={"is_staff": 7}) == {
        "is_staff": NOT_BOOLEAN}
    assert call(client, *path, 400, token=token, ids=target,
                json={"is_active": "maybe", "is_staff": [True]}) == {
        "is_active": NOT_BOOLEAN, "is_staff": NOT_BOOLEAN}
    # DRF's BooleanField spellings (TRUE_VALUES / FALSE_VALUES), 1.0 and 0.0 among them.
    for spelling, value in (("t", True), ("Yes", True), ("ON", True), (1.0, True),
                            ("F", False), ("No", False), ("OFF", False), (0.0, False)):
        body = call(client, *path, 200, token=token, ids=target, json={"is_staff": spelling})
        assert body["is_staff"] is value, (spelling, body)
    # One invalid field: the valid one is not applied either.
    errors = call(client, *path, 400, token=token, ids=target, json={"is_active": False, "is_staff": "x"})
    assert errors == {"is_staff": NOT_BOOLEAN}
    assert admin_user(client, staff, uid(bob)) == before
    r = client.get("/api/users/me/", token=bob["access"])
    assert r.status_code == 200, r.text
    # A body that is not an object, not JSON, or not JSON at all.
    call(client, *path, 400, token=token, ids=target, json=[{"is_active": False}])
    body = call(client, *path, 400, token=token, ids=target, data="{not json",
                headers={"Content-Type": "application/json"})
    assert "detail" in body
    call(client, *path, 415, token=token, ids=target, data="is_active=0&x",
         headers={"Content-Type": "text/plain"})
    # An empty body, and fields that cannot be changed here, change nothing.
    assert call(client, *path, 200, token=token, ids=target, json={}) == before
    ignored = {"username": "renamed" + uuid.uuid4().hex[:6], "email": "other@example.com",
               "is_superuser": True, "is_online": True, "id": uid(bob) + 1000,
               "date_joined": "2001-01-01T00:00:00.000000Z", "password": "new-password-1"}
    assert call(client, *path, 200, token=token, ids=target, json=ignored) == before
    assert admin_user(client, staff, uid(bob)) == before
    client.login(uname(bob), bob["password"])
    # Unknown users.
    missing = call(client, "GET", "/api/admin/users/{id}/", 404, token=token, ids={"id": BOGUS})
    assert call(client, *path, 404, token=token, ids={"id": BOGUS}, json={"is_active": False}) == missing
    assert list(call(client, *path, 404, token=token, ids={"id": "abc"}, json={"is_active": False})) == ["detail"]
    assert admin_user(client, staff, uid(bob)) == before


def test_staff_cannot_deactivate_or_demote_themself(client, staff):
    me = {"id": staff["user"]["id"]}
    token = staff["access"]
    # DRF's validation shape, under each field that would lock the caller out.
    deactivate = {"is_active": ["You cannot deactivate yourself."]}
    demote = {"is_staff": ["You cannot remove your own staff status."]}
    for body, expected in (({"is_active": False}, deactivate), ({"is_staff": False}, demote),
                           ({"is_active": False, "is_staff": False}, {**deactivate, **demote}),
                           ({"is_active": False, "is_staff": True}, deactivate),
                           ({"is_active": True, "is_staff": False}, demote)):
        answer = call(client, "PATCH", "/api/admin/users/{id}/", 400, token=token, ids=me, json=body)
        assert answer == expected, (body, answer)
    own = admin_user(client, staff, me["id"])
    assert (own["is_active"], own["is_staff"], own["is_superuser"]) == (True, True, True)
    # Setting what is already true is allowed; the account keeps working.
    same = call(client, "PATCH", "/api/admin/users/{id}/", 200, token=token, ids=me,
                json={"is_active": True, "is_staff": True})
    stable = ADMIN_USER_KEYS - {"is_online", "last_seen"}  # presence may move meanwhile
    assert {k: same[k] for k in stable} == {k: own[k] for k in stable}
    stats(client, staff)
    r = client.post("/api/auth/refresh/", json={"refresh": staff["refresh"]})
    assert r.status_code == 200, r.text


def test_deactivation_locks_the_user_out_and_closes_their_sockets(server, client, staff):
    bob, carol = client.register(), client.register()
    second = client.login(uname(bob), bob["password"])
    chat = private_chat(client, bob, carol)

    async def main():
        bob_user = await user_ws(server, bob)
        bob_chat = await chat_ws(server, bob, chat)
        bob_other = await user_ws(server, {**bob, "access": second["access"]})
        carol_user = await user_ws(server, carol)
        carol_chat = await chat_ws(server, carol, chat)
        await wait_for_async("bob online", lambda: admin_user(client, staff, uid(bob)),
                             lambda u: u["is_online"] is True)

        started = time.monotonic()
        off = await asyncio.to_thread(set_flags, client, staff, uid(bob), is_active=False)
        assert off["is_active"] is False and off["id"] == uid(bob) and off["username"] == uname(bob)
        assert off["is_staff"] is False and off["email"] == bob["user"]["email"]
        codes = await asyncio.gather(*(ws.closed(timeout=3) for ws in (bob_user, bob_chat, bob_other)))
        assert codes == [CLOSE_DEACTIVATED] * 3, codes
        assert time.monotonic() - started < 3.5

        # The access tokens stop working at once, everywhere.
        for token in (bob["access"], second["access"]):
            for method, path, kw in (("GET", "/api/users/me/", {}), ("GET", "/api/chats/", {}),
                                     ("GET", f"/api/messages/?chat={chat}", {}),
                                     ("POST", "/api/messages/", {"json": {"chat": chat, "text": "still here?"}})):
                r = client.request(method, path, token=token, **kw)
                assert r.status_code == 401, (method, path, r.status_code, r.text)
                assert r.json() == INACTIVE, (method, path, r.text)
            for path in ("/ws/", f"/ws/chat/{chat}/"):
                assert await refused(server, path, token) == 401, path
        # Every refresh token is revoked, and logging in is refused. A refresh is answered
        # as SimpleJWT answers an inactive account's.
        for refresh in (bob["refresh"], second["refresh"]):
            r = client.post("/api/auth/refresh/", json={"refresh": refresh})
            assert r.status_code == 401, r.text
            assert r.json() == {"detail": "No active account found for the given token."}, r.text
        r = client.post("/api/auth/login/", json={"username": uname(bob), "password": bob["password"]})
        assert r.status_code == 401, r.text
        assert r.json() == BAD_LOGIN

        # Carol's sockets stay open and working.
        for ws in (carol_user, carol_chat):
            await ws.ping()
        m = await asyncio.to_thread(rest_send, client, carol, chat, "bob is gone")
        for ws in (carol_user, carol_chat):
            await ws.until(is_("message", message_id=m["id"]))

        # The admin API still shows bob, inactive.
        assert admin_user(client, staff, uid(bob))["is_active"] is False
        page = admin_users(client, staff, search=uname(bob))
        assert [(u["id"], u["is_active"]) for u in page["results"]] == [(uid(bob), False)]

        # Reactivated: bob logs in again; the revoked refresh tokens stay revoked.
        on = await asyncio.to_thread(set_flags, client, staff, uid(bob), is_active=True)
        assert on["is_active"] is True
        fresh = client.login(uname(bob), bob["password"])
        r = client.get("/api/users/me/", token=fresh["access"])
        assert r.status_code == 200 and r.json()["id"] == uid(bob), r.text
        r = client.post("/api/auth/refresh/", json={"refresh": fresh["refresh"]})
        assert r.status_code == 200, r.text
        for refresh in (bob["refresh"], second["refresh"]):
            r = client.post("/api/auth/refresh/", json={"refresh": refresh})
            assert r.status_code == 401, r.text
            assert r.json() == {"detail": "Token is blacklisted", "code": "token_not_valid"}, r.text
        # The access tokens from before the deactivation do not come back with the account:
        # deactivation ended their sessions.
        for token in (bob["access"], second["access"]):
            r = client.get("/api/users/me/", token=token)
            assert r.status_code == 401, r.text
            assert r.json()["code"] == "token_not_valid", r.text
            for path in ("/ws/", f"/ws/chat/{chat}/"):
                assert await refused(server, path, token) == 401, path
        back = await user_ws(server, {**bob, "access": fresh["access"]})
        m2 = await asyncio.to_thread(rest_send, client, carol, chat, "welcome back")
        await back.until(is_("message", message_id=m2["id"]))
        for ws in (back, carol_user, carol_chat):
            await ws.close()

    run(main())


# ---- chats ------------------------------------------------------------------------------------------

def test_a_private_chat_with_a_since_deactivated_user_is_still_found(client, staff):
    ann, bob, cat = client.register(), client.register(), client.register()
    chat = private_chat(client, ann, bob)
    for who in (bob, cat):
        set_flags(client, staff, uid(who), is_active=False)
    # API.md: a pair that has a chat gets it back with 200, the other side deactivated since.
    r = client.post("/api/chats/", token=ann["access"], json={"type": "private", "member_ids": [uid(bob)]})
    assert r.status_code == 200, r.text
    assert r.json()["id"] == chat
    # A new chat needs an active user.
    r = client.post("/api/chats/", token=ann["access"], json={"type": "private", "member_ids": [uid(cat)]})
    assert r.status_code == 400, r.text
    assert r.json() == {"member_ids": [f'Invalid pk "{uid(cat)}" - object does not exist.']}
    r = client.post("/api/chats/", token=ann["access"],
                    json={"type": "group", "name": "g", "member_ids": [uid(bob)]})
    assert r.status_code == 400, r.text


def test_chat_list_and_detail(client, staff):
    ann, bob, cat = client.register(), client.register(), client.register()
    tag = uuid.uuid4().hex[:10]

    def create(body):
        r = client.post("/api/chats/", token=ann["access"], json=body)
        assert r.status_code == 201, r.text
        return r.json()

    g1 = create({"type": "group", "name": f"Room {tag} Alpha", "member_ids": [uid(bob), uid(cat)]})
    g2 = create({"type": "group", "name": f"room {tag} beta", "member_ids": [uid(bob)]})
    p = create({"type": "private", "member_ids": [uid(cat)]})
    g1_msgs = [rest_send(client, who, g1["id"], f"hi {i}")["id"] for i, who in enumerate((ann, bob, cat))]
    g2_msg = rest_send(client, bob, g2["id"], "only one")["id"]

    want = {
        g1["id"]: {"id": g1["id"], "type": "group", "name": g1["name"], "created_at": g1["created_at"],
                   "member_count": 3, "message_count": 3, "last_message_id": g1_msgs[-1]},
        g2["id"]: {"id": g2["id"], "type": "group", "name": g2["name"], "created_at": g2["created_at"],
                   "member_count": 2, "message_count": 1, "last_message_id": g2_msg},
        p["id"]: {"id": p["id"], "type": "private", "name": "", "created_at": p["created_at"],
                  "member_count": 2, "message_count": 0},
    }

    def check(entry):
        assert set(entry) == ADMIN_CHAT_KEYS, entry
        expected = want[entry["id"]]
        if entry["id"] == p["id"]:
            assert entry["last_message_id"] in (None, 0), entry  # an empty chat
            entry = {k: v for k, v in entry.items() if k != "last_message_id"}
        assert entry == expected

    # Newest first; nothing else creates chats meanwhile.
    newest = admin_chats(client, staff, limit=3)
    assert set(newest) == PAGE_KEYS
    assert ids_of(newest) == [p["id"], g2["id"], g1["id"]], newest
    assert newest["count"] >= 3 and newest["previous"] is None
    for entry in newest["results"]:
        check(entry)
    # Search: a case-insensitive substring of the name.
    found = admin_chats(client, staff, search=tag.upper())
    assert found["count"] == 2 and ids_of(found) == [g2["id"], g1["id"]], found
    for entry in found["results"]:
        check(entry)
    assert ids_of(admin_chats(client, staff, search=f"ROOM {tag} al")) == [g1["id"]]
    assert ids_of(admin_chats(client, staff, search=f"{tag.upper()} BETA")) == [g2["id"]]
    assert ids_of(admin_chats(client, staff, search=f"{tag[3:]} Bet")) == [g2["id"]]
    assert admin_chats(client, staff, search=f"nomatch{tag}") == {
        "count": 0, "next": None, "previous": None, "results": []}
    for query in (f"{tag}%", f"room_{tag}", f"{tag} _lpha"):
        assert admin_chats(client, staff, search=query)["results"] == [], query
    # Paging.
    first = admin_chats(client, staff, search=tag, limit=1)
    assert first["count"] == 2 and ids_of(first) == [g2["id"]]
    assert first["previous"] is None and first["next"] and "offset=1" in first["next"]
    second = admin_chats(client, staff, search=tag, limit=1, offset=1)
    assert ids_of(second) == [g1["id"]] and second["next"] is None and second["previous"] is not None
    r = requests.get(first["next"], headers={"Authorization": f"Bearer {staff['access']}"}, timeout=30)
    assert r.status_code == 200 and r.json() == second, r.text

    # Detail: the counters plus the members, for a chat the staff user is not in.
    detail = admin_chat(client, staff, g1["id"])
    assert set(detail) == ADMIN_CHAT_KEYS | {"members"}
    check({k: v for k, v in detail.items() if k != "members"})
    assert sorted(detail["members"], key=lambda m: m["id"]) == sorted([
        {"id": uid(ann), "username": uname(ann), "role": "owner"},
        {"id": uid(bob), "username": uname(bob), "role": "member"},
        {"id": uid(cat), "username": uname(cat), "role": "member"}], key=lambda m: m["id"])
    detail = admin_chat(client, staff, p["id"])
    check({k: v for k, v in detail.items() if k != "members"})
    assert sorted((m["id"], m["username"], m["role"]) for m in detail["members"]) == sorted(
        [(uid(ann), uname(ann), "member"), (uid(cat), uname(cat), "member")])
    # Membership changes show in the counters.
    r = client.request("DELETE", f"/api/chats/{g1['id']}/members/{uid(cat)}/", token=ann["access"])
    assert r.status_code == 204, r.text
    detail = admin_chat(client, staff, g1["id"])
    assert detail["member_count"] == 2 and uid(cat) not in [m["id"] for m in detail["members"]]
    for bad in (BOGUS, "abc", 0):
        body = call(client, "GET", "/api/admin/chats/{id}/", 404, token=staff["access"], ids={"id": bad})
        assert list(body) == ["detail"], (bad, body)


# ---- messages ---------------------------------------------------------------------------------------

MESSAGE_FIELDS_FOR_ANYONE = ("id", "chat", "sender_id", "sender", "text", "created_at", "edited_at",
                             "is_edited", "is_deleted", "forwarded_from")


def same_message(admin_view, member_view):
    for k in MESSAGE_FIELDS_FOR_ANYONE:
        assert admin_view[k] == member_view[k], (k, admin_view, member_view)


def test_admin_message_list(client, staff):
    ann, bob, cat = client.register(), client.register(), client.register()
    g = group_chat(client, ann, bob, name="listed")
    h = group_chat(client, ann, cat, name="also-listed")
    tag = uuid.uuid4().hex[:10]
    m1 = rest_send(client, ann, g, f"alpha {tag} one")
    m2 = rest_send(client, cat, h, f"bravo {tag}")
    m3 = rest_send(client, bob, g, f"Alpha {tag} two")
    m4 = rest_send(client, ann, g, "charlie")
    m5 = rest_send(client, ann, h, f"ALPHA {tag} three")

    # Every chat, newest first (nothing else sends meanwhile).
    page = admin_messages(client, staff, limit=4)
    assert set(page) == {"results", "has_more"}
    assert ids_of(page) == [m5["id"], m4["id"], m3["id"], m2["id"]] and page["has_more"] is True
    # One chat, with the same content its members see.
    page = admin_messages(client, staff, chat=g)
    assert ids_of(page) == [m4["id"], m3["id"], m1["id"]] and page["has_more"] is False
    members_view = history(client, bob, g)
    for m in page["results"]:
        same_message(m, members_view[m["id"]])
        assert m["chat"] == g
    # Older pages with `before`.
    p1 = admin_messages(client, staff, chat=g, limit=2)
    assert ids_of(p1) == [m4["id"], m3["id"]] and p1["has_more"] is True
    p2 = admin_messages(client, staff, chat=g, limit=2, before=m3["id"])
    assert ids_of(p2) == [m1["id"]] and p2["has_more"] is False
    p3 = admin_messages(client, staff, limit=2, before=m4["id"])
    assert ids_of(p3) == [m3["id"], m2["id"]] and p3["has_more"] is True
    assert ids_of(admin_messages(client, staff, chat=h, limit=200)) == [m5["id"], m2["id"]]
    # Full-text words and prefixes, any case, in every chat or one.
    assert ids_of(admin_messages(client, staff, q=f"alpha {tag}")) == [m5["id"], m3["id"], m1["id"]]
    assert ids_of(admin_messages(client, staff, q=f"ALP {tag}")) == [m5["id"], m3["id"], m1["id"]]
    assert ids_of(admin_messages(client, staff, q=f"alpha {tag} tw")) == [m3["id"]]
    assert ids_of(admin_messages(client, staff, q=f"alpha {tag}", chat=g)) == [m3["id"], m1["id"]]
    assert ids_of(admin_messages(client, staff, q=f"lpha {tag}")) == []  # not a prefix
    assert ids_of(admin_messages(client, staff, q=f"alpha {tag}", limit=1)) == [m5["id"]]
    assert ids_of(admin_messages(client, staff, q=f"alpha {tag}", before=m5["id"])) == [m3["id"], m1["id"]]

    # A message deleted for everyone is listed as deleted, and no longer found by q.
    r = client.request("DELETE", f"/api/messages/{m3['id']}/", token=bob["access"])
    assert r.status_code == 204, r.text
    page = admin_messages(client, staff, chat=g)
    assert ids_of(page) == [m4["id"], m3["id"], m1["id"]]
    deleted = page["results"][1]
    assert deleted["is_deleted"] is True and deleted["text"] == "", deleted
    same_message(deleted, history(client, ann, g)[m3["id"]])
    assert ids_of(admin_messages(client, staff, q=f"alpha {tag}")) == [m5["id"], m1["id"]]
    assert ids_of(admin_messages(client, staff, q=f"alpha {tag} two")) == []
    # A message one member hid for themself is still there for staff.
    r = client.request("DELETE", f"/api/messages/{m1['id']}/?for=me", token=bob["access"])
    assert r.status_code == 204, r.text
    page = admin_messages(client, staff, chat=g)
    assert ids_of(page) == [m4["id"], m3["id"], m1["id"]]
    assert page["results"][2]["is_deleted"] is False and page["results"][2]["text"] == m1["text"]
    assert m1["id"] in ids_of(admin_messages(client, staff, q=f"alpha {tag}"))

    # Malformed filters.
    for query in ({"chat": "abc"}, {"chat": "1.5"}, {"before": "x"}, {"limit": "0"},
                  {"limit": "201"}, {"limit": "x"}):
        body = call(client, "GET", "/api/admin/messages/", 400, token=staff["access"], query=query)
        assert body, query
    assert len(admin_messages(client, staff, limit=200)["results"]) <= 200


def test_admin_delete_reaches_members_like_a_delete_for_everyone(server, client, staff):
    ann, bob = client.register(), client.register()
    g = group_chat(client, ann, bob, name="moderated")
    start = client.get("/api/events/", token=bob["access"]).json()["seq"]
    m1 = rest_send(client, ann, g, "spam spam spam")
    m2 = rest_send(client, bob, g, "fine")
    m3 = rest_send(client, ann, g, "deleted by its sender")

    async def main():
        ann_user = await user_ws(server, ann)
        bob_user = await user_ws(server, bob)
        bob_chat = await chat_ws(server, bob, g)
        staff_user = await user_ws(server, staff)
        members = [ann_user, bob_user, bob_chat]

        r = await asyncio.to_thread(client.request, "DELETE", f"/api/admin/messages/{m1['id']}/",
                                    token=staff["access"])
        assert r.status_code == 204, r.text
        assert r.content == b"", r.content
        assert_matches("DELETE", "/api/admin/messages/{id}/", 204, None)
        for ws in members:
            f = await ws.until(is_("delete", message_id=m1["id"]))
            assert without_seq(f) == {"type": "delete", "chat_id": g, "message_id": m1["id"]}, (ws.name, f)
            assert ("seq" in f) == (ws is not bob_chat), (ws.name, f)
        # The sender's own delete, for comparison.
        r = await asyncio.to_thread(client.request, "DELETE", f"/api/messages/{m3['id']}/", token=ann["access"])
        assert r.status_code == 204, r.text
        for ws in members:
            f = await ws.until(is_("delete", message_id=m3["id"]))
            assert without_seq(f) == {"type": "delete", "chat_id": g, "message_id": m3["id"]}, (ws.name, f)
        # Deleting again: the same answer as the sender deleting again, and no new event.
        again_own = await asyncio.to_thread(client.request, "DELETE", f"/api/messages/{m3['id']}/",
                                            token=ann["access"])
        again_admin = await asyncio.to_thread(client.request, "DELETE", f"/api/admin/messages/{m1['id']}/",
                                              token=staff["access"])
        assert again_admin.status_code == again_own.status_code, (again_own.text, again_admin.text)
        assert_matches("DELETE", "/api/admin/messages/{id}/", again_admin.status_code,
                       again_admin.json() if again_admin.content else None)
        m4 = await asyncio.to_thread(rest_send, client, bob, g, "after the deletes")
        for ws in members:
            await ws.until(is_("message", message_id=m4["id"]))
            await ws.drain(0.3)
            for mid in (m1["id"], m3["id"]):
                copies = [f for f in ws.seen if f["type"] == "delete" and f["message_id"] == mid]
                assert len(copies) == 1, (ws.name, mid, copies)
        # The staff user is not a member: nothing of this chat reached their socket.
        await staff_user.drain(0.2)
        assert not [f for f in staff_user.seen if f.get("chat_id") == g], staff_user.seen
        for ws in members + [staff_user]:
            await ws.close()

    run(main())
    # Members see it deleted, exactly like the one its sender deleted.
    for who in (ann, bob):
        view = history(client, who, g)
        for mid in (m1["id"], m3["id"]):
            assert view[mid]["is_deleted"] is True and view[mid]["text"] == "", view[mid]
        assert view[m2["id"]]["is_deleted"] is False and view[m2["id"]]["text"] == "fine"
    r = client.patch(f"/api/messages/{m1['id']}/", token=ann["access"], json={"text": "undo"})
    assert r.status_code == 400, r.text
    # It is in the members' event log, as the sender's delete is.
    feed = client.get(f"/api/events/?since={start}", token=bob["access"]).json()["results"]
    deletes = [e for e in feed if e["type"] == "delete"]
    assert [e["message_id"] for e in deletes] == [m1["id"], m3["id"]], deletes
    for e in deletes:
        assert e["chat_id"] == g and "for_me" not in e, e
    # The admin list shows both as deleted.
    page = admin_messages(client, staff, chat=g)
    flags = {m["id"]: m["is_deleted"] for m in page["results"]}
    assert flags[m1["id"]] is True and flags[m3["id"]] is True and flags[m2["id"]] is False
    # Unknown ids.
    for bad in (BOGUS, "abc", 0):
        body = call(client, "DELETE", "/api/admin/messages/{id}/", 404, token=staff["access"], ids={"id": bad})
        assert list(body) == ["detail"], (bad, body)


# ---- stats --------------------------------------------------------------------------------------------

def test_stats_count_exactly_on_a_fresh_server(make_server):
    s = make_server()
    c = Client(s)
    staff = make_staff(s, c)
    assert stats(c, staff) == {"users_total": 1, "users_online": 0, "sockets": 0, "chats_total": 0,
                               "messages_total": 0, "messages_per_minute": 0}
    a, b = c.register(), c.register()
    assert stats(c, staff)["users_total"] == 3
    chat = private_chat(c, a, b)
    assert stats(c, staff)["chats_total"] == 1

    def counts(sockets, online):
        return lambda st: st["sockets"] == sockets and st["users_online"] == online

    async def main():
        fetch = lambda: stats(c, staff)  # noqa: E731
        a_user = await user_ws(s, a)
        await wait_for_async("one socket, one user online", fetch, counts(1, 1))
        a_chat = await chat_ws(s, a, chat)
        await wait_for_async("two sockets of one user", fetch, counts(2, 1))
        b_user = await user_ws(s, b)
        await wait_for_async("three sockets, two users", fetch, counts(3, 2))
        for i in range(3):
            await asyncio.to_thread(rest_send, c, a, chat, f"counted {i}")
        st = await asyncio.to_thread(fetch)
        assert st["messages_total"] == 3, st
        assert st["messages_per_minute"] >= 3, st
        assert (st["users_total"], st["chats_total"]) == (3, 1), st
        await a_chat.close()
        await wait_for_async("a chat socket closed", fetch, counts(2, 2))
        await a_user.close()
        await wait_for_async("a offline (after the presence grace)", fetch, counts(1, 1), timeout=6)
        await b_user.close()
        await wait_for_async("everyone offline", fetch, counts(0, 0), timeout=6)

    run(main())
    c.register()
    final = stats(c, staff)
    assert final["users_total"] == 4 and final["messages_total"] == 3, final


def test_stats_move_on_the_shared_server(server, client, staff):
    before = stats(client, staff)
    a, b = client.register(), client.register()
    after_users = stats(client, staff)
    assert after_users["users_total"] >= before["users_total"] + 2, (before, after_users)
    chat = private_chat(client, a, b)
    after_chat = stats(client, staff)
    assert after_chat["chats_total"] >= before["chats_total"] + 1, (before, after_chat)
    for i in range(3):
        rest_send(client, a, chat, f"counted {i}")
    after = stats(client, staff)
    assert after["messages_total"] >= before["messages_total"] + 3, (before, after)
    assert after["messages_per_minute"] >= 3, after


# ---- several nodes ------------------------------------------------------------------------------------

@pytest.mark.postgres_only
def test_deactivation_closes_sockets_on_every_node(make_cluster):
    cluster = make_cluster(2, PRESENCE_GRACE=1)
    node_a, node_b = cluster[0], cluster[1]
    api_a, api_b = Client(node_a), Client(node_b)
    staff = make_staff(node_a, api_a)
    bob, carol = api_a.register(), api_b.register()
    chat = private_chat(api_b, bob, carol)

    async def main():
        bob_b_user = await user_ws(node_b, bob)
        bob_b_chat = await chat_ws(node_b, bob, chat)
        bob_a_user = await user_ws(node_a, bob)
        carol_b = await user_ws(node_b, carol)
        carol_a_chat = await chat_ws(node_a, carol, chat)

        # A staff delete on node A reaches the members' sockets on node B too.
        m = await asyncio.to_thread(rest_send, api_b, carol, chat, "to be moderated")
        for ws in (bob_b_user, bob_b_chat, carol_b):
            await ws.until(is_("message", message_id=m["id"]), timeout=10)
        r = await asyncio.to_thread(api_a.request, "DELETE", f"/api/admin/messages/{m['id']}/",
                                    token=staff["access"])
        assert r.status_code == 204, r.text
        for ws in (bob_b_user, bob_b_chat, carol_b, carol_a_chat, bob_a_user):
            f = await ws.until(is_("delete", message_id=m["id"]), timeout=10)
            assert without_seq(f) == {"type": "delete", "chat_id": chat, "message_id": m["id"]}, (ws.name, f)

        # Deactivated through node A: bob's sockets on both nodes close with 4003.
        started = time.monotonic()
        off = await asyncio.to_thread(call, api_a, "PATCH", "/api/admin/users/{id}/", 200,
                                      token=staff["access"], ids={"id": uid(bob)}, json={"is_active": False})
        assert off["is_active"] is False
        codes = await asyncio.gather(*(ws.closed(timeout=3) for ws in (bob_b_user, bob_b_chat, bob_a_user)))
        assert codes == [CLOSE_DEACTIVATED] * 3, codes
        assert time.monotonic() - started < 3.5
        # Node B refuses bob's access and refresh tokens at once.
        for api in (api_b, api_a):
            r = api.get("/api/users/me/", token=bob["access"])
            assert r.status_code == 401 and r.json() == INACTIVE, (api.server.port, r.text)
            r = api.post("/api/auth/refresh/", json={"refresh": bob["refresh"]})
            assert r.status_code == 401, (api.server.port, r.text)
        for node in (node_a, node_b):
            assert await refused(node, "/ws/", bob["access"]) == 401
        # Carol, on both nodes, is unaffected.
        await carol_b.ping()
        await carol_a_chat.ping()
        m2 = await asyncio.to_thread(rest_send, api_a, carol, chat, "still here")
        await carol_b.until(is_("message", message_id=m2["id"]), timeout=10)

        # Reactivated through node B: bob logs in on node A and connects again.
        on = await asyncio.to_thread(call, api_b, "PATCH", "/api/admin/users/{id}/", 200,
                                     token=staff["access"], ids={"id": uid(bob)}, json={"is_active": True})
        assert on["is_active"] is True
        fresh = api_a.login(uname(bob), bob["password"])
        back = await user_ws(node_b, {**bob, "access": fresh["access"]})
        await back.ping()
        for ws in (back, carol_b, carol_a_chat):
            await ws.close()

    run(main(), timeout=90)
