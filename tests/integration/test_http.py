"""HTTP behaviour: trailing slashes, keep-alive, size limits, routing errors in DRF's shape,
request parsing (JSON, forms, bad bytes), the Host check, service endpoints, and garbage
on the socket. No input may produce a 5xx."""
import http.client
import json
import signal
import socket
import time

import pytest
import requests

from conftest import Client, unique_name
from test_admin import make_staff
from test_chats_messages import new_group, send
from test_websocket import uid


def ok(r):
    """Every response of these tests must be below 500."""
    status = getattr(r, "status_code", None) or getattr(r, "status", None)
    assert status is not None and status < 500, (status, getattr(r, "text", ""))
    return r


def raw_exchange(server, data: bytes, timeout=5.0):
    """Sends raw bytes and reads until the server closes or stops talking."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                head, sep, rest = b"".join(chunks).partition(b"\r\n\r\n")
                if sep and b"content-length:" in head.lower():
                    length = int([line.split(b":", 1)[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length:")][0])
                    if len(rest) >= length:
                        break
        except (socket.timeout, ConnectionResetError):
            pass
        return b"".join(chunks)


def parse_raw(response: bytes):
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ")[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower().decode()] = v.strip().decode()
    return status, headers, body


def chunked(body: bytes, size=1000):
    out = b""
    for i in range(0, len(body), size):
        piece = body[i:i + size]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    return out + b"0\r\n\r\n"


def register_body(name=None):
    name = name or unique_name()
    return {"username": name, "email": f"{name}@example.com", "password": "pa55word!"}


# --- trailing slashes and keep-alive ---------------------------------------------------

def test_trailing_slash_is_optional(client):
    name = unique_name()
    r = ok(client.post("/api/auth/register", json=register_body(name), allow_redirects=False))
    assert r.status_code == 201, r.text
    r = ok(client.post("/api/auth/login", json={"username": name, "password": "pa55word!"},
                       allow_redirects=False))
    assert r.status_code == 200, r.text
    token = r.json()["access"]
    with_slash = ok(client.get("/api/users/me/", token=token, allow_redirects=False))
    without = ok(client.get("/api/users/me", token=token, allow_redirects=False))
    assert with_slash.status_code == without.status_code == 200
    assert without.json() == with_slash.json()
    user_id = without.json()["id"]
    r = ok(client.get(f"/api/users/{user_id}", token=token, allow_redirects=False))
    assert r.status_code == 200, r.text
    assert r.json()["id"] == user_id
    r = ok(client.get("/api/users", token=token, params={"search": name}, allow_redirects=False))
    assert r.status_code == 200, r.text
    assert [u["id"] for u in r.json()["results"]] == [user_id]


def test_keep_alive_reuses_the_connection(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        r.read()
        assert r.status == 200
        assert (r.getheader("Connection") or "").lower() != "close"
        sock = conn.sock
        assert sock is not None
        body = json.dumps(register_body())
        conn.request("POST", "/api/auth/register/", body=body,
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        data = json.loads(r.read())
        assert r.status == 201, data
        assert (r.getheader("Connection") or "").lower() != "close"
        assert conn.sock is sock
        conn.request("GET", "/api/users/me/", headers={"Authorization": f"Bearer {data['access']}"})
        r = conn.getresponse()
        me = json.loads(r.read())
        assert r.status == 200, me
        assert me["id"] == data["user"]["id"]
        assert conn.sock is sock
        # An error answer keeps the connection too.
        conn.request("GET", "/api/no-such-thing/")
        r = conn.getresponse()
        assert r.status == 404
        r.read()
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        r.read()
        assert r.status == 200
        assert conn.sock is sock
    finally:
        conn.close()


# --- request size ----------------------------------------------------------------------

def test_body_size_limit(make_server):
    s = make_server(MAX_BODY_BYTES=2048)
    c = Client(s)
    # Under the limit works, unknown fields are ignored.
    small = {**register_body(), "padding": "x" * 1000}
    assert len(json.dumps(small)) < 2048
    r = ok(c.post("/api/auth/register/", json=small))
    assert r.status_code == 201, r.text
    big = {**register_body(), "padding": "x" * 10240}
    try:
        r = ok(c.post("/api/auth/register/", json=big))
    except requests.ConnectionError as e:
        pytest.fail(f"connection closed without a 413 answer: {e}")
    assert r.status_code == 413, r.text
    assert list(r.json()) == ["detail"]
    assert isinstance(r.json()["detail"], str) and r.json()["detail"]
    assert s.proc.poll() is None


def test_declared_length_over_limit_is_refused_before_the_body(make_server):
    s = make_server(MAX_BODY_BYTES=2048)
    request = (f"POST /api/auth/register/ HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\n"
               "Content-Type: application/json\r\nContent-Length: 10240\r\n"
               "Expect: 100-continue\r\n\r\n").encode()
    raw = raw_exchange(s, request, timeout=3)
    assert raw, "no answer"
    status, headers, body = parse_raw(raw)
    assert status == 413, raw[:300]
    assert list(json.loads(body)) == ["detail"]


def test_chunked_body_size_limit(make_server):
    s = make_server(MAX_BODY_BYTES=2048)
    big = json.dumps({**register_body(), "padding": "x" * 10240}).encode()
    request = (f"POST /api/auth/register/ HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\n"
               "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
               "Connection: close\r\n\r\n").encode() + chunked(big)
    status, headers, body = parse_raw(raw_exchange(s, request))
    assert status == 413, body
    assert list(json.loads(body)) == ["detail"]
    # A chunked body under the limit is read and answered normally.
    name = unique_name()
    small = json.dumps(register_body(name)).encode()
    request = (f"POST /api/auth/register/ HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\n"
               "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
               "Connection: close\r\n\r\n").encode() + chunked(small, size=7)
    status, headers, body = parse_raw(raw_exchange(s, request))
    assert status == 201, body
    assert json.loads(body)["user"]["username"] == name


# --- routing errors --------------------------------------------------------------------

def test_unknown_route_is_a_json_404(client):
    for path in ("/api/nope/", "/nope", "/api/users/me/extra/", "/api/auth/"):
        r = ok(client.get(path))
        assert r.status_code == 404, (path, r.text)
        assert r.json() == {"detail": "Not found."}, path
        assert r.headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("method,path", [
    ("DELETE", "/api/auth/login/"),
    ("GET", "/api/auth/register/"),
    ("PUT", "/api/auth/refresh/"),
    ("GET", "/api/auth/logout/"),
])
def test_wrong_method_is_405_with_allow(client, method, path):
    r = ok(client.request(method, path))
    assert r.status_code == 405, r.text
    assert r.json() == {"detail": f'Method "{method}" not allowed.'}
    allowed = [m.strip() for m in r.headers["Allow"].split(",")]
    assert "POST" in allowed
    assert method not in allowed


def test_options_answers_with_allow(client):
    r = ok(client.request("OPTIONS", "/api/auth/login/"))
    assert r.status_code == 200, r.text
    allowed = [m.strip() for m in r.headers["Allow"].split(",")]
    assert "POST" in allowed and "OPTIONS" in allowed
    assert "GET" not in allowed


@pytest.mark.parametrize("path,allow", [
    ("/api/users/me/", "GET, PUT, PATCH, HEAD, OPTIONS"),
    ("/api/chats/1/", "GET, PUT, PATCH, DELETE, HEAD, OPTIONS"),
    ("/api/messages/1/", "PUT, PATCH, DELETE, OPTIONS"),
    ("/api/chats/", "GET, POST, HEAD, OPTIONS"),
])
def test_allow_lists_methods_in_djangos_order(client, path, allow):
    """DRF's Allow follows View.http_method_names (get, post, put, patch, delete, head,
    options), whatever order the view defines its handlers in."""
    me = client.register()
    for method in ("OPTIONS", "TRACE"):
        r = ok(client.request(method, path, token=me["access"]))
        assert r.headers["Allow"] == allow, (method, r.status_code, r.headers["Allow"])


@pytest.mark.parametrize("method,path", [
    ("PUT", "/api/messages/"),
    ("DELETE", "/api/users/me/"),
    ("PATCH", "/api/pinned/1/"),
    ("OPTIONS", "/api/chats/"),
])
def test_protected_paths_authenticate_before_the_method(client, method, path):
    """DRF authenticates before it dispatches on the method: without credentials a protected
    path answers 401 whatever the method; with them, 405 (or the OPTIONS answer)."""
    r = ok(client.request(method, path))
    assert (r.status_code, r.json()) == (401, {"detail": "Authentication credentials were not provided."}), r.text
    r = ok(client.request(method, path, headers={"Authorization": "Bearer not-a-token"}))
    assert r.status_code == 401 and r.json()["code"] == "token_not_valid", r.text
    me = client.register()
    r = ok(client.request(method, path, token=me["access"]))
    if method == "OPTIONS":
        assert r.status_code == 200 and "GET" in r.headers["Allow"], r.text
    else:
        assert r.status_code == 405, r.text
        assert r.json() == {"detail": f'Method "{method}" not allowed.'}
        assert method not in [m.strip() for m in r.headers["Allow"].split(",")]


# --- request parsing -------------------------------------------------------------------

def post_raw(client, path, data, content_type="application/json", headers=None):
    return ok(client.post(path, data=data, headers={"Content-Type": content_type, **(headers or {})}))


def test_malformed_json(client):
    for data in (b'{"username": ', b"{'username': 'x'}", b"nonsense", b'{"a": 1,}', b'{"a": 1} x'):
        r = post_raw(client, "/api/auth/login/", data)
        assert r.status_code == 400, (data, r.text)
        assert list(r.json()) == ["detail"]
        assert r.json()["detail"].startswith("JSON parse error"), (data, r.text)


def test_non_object_json(client):
    r = post_raw(client, "/api/auth/login/", b'["username", "password"]')
    assert r.status_code == 400, r.text
    assert r.json() == {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}
    r = post_raw(client, "/api/auth/register/", b'"text"')
    assert r.status_code == 400, r.text
    assert r.json() == {"non_field_errors": ["Invalid data. Expected a dictionary, but got str."]}
    # A null body: DRF's Serializer.errors says so rather than "may not be null".
    for path in ("/api/auth/login/", "/api/auth/register/", "/api/auth/refresh/"):
        r = post_raw(client, path, b"null")
        assert r.status_code == 400, (path, r.text)
        assert r.json() == {"non_field_errors": ["No data provided"]}, (path, r.text)


def test_invalid_utf8_body(client):
    r = post_raw(client, "/api/auth/login/", b'{"username": "\xff\xfe", "password": "x"}')
    assert r.status_code == 400, r.text
    assert r.json()["detail"].startswith("JSON parse error"), r.text


def test_unsupported_content_type(client):
    r = post_raw(client, "/api/auth/login/", b"username=a&password=b", "text/plain")
    assert r.status_code == 415, r.text
    assert r.json() == {"detail": 'Unsupported media type "text/plain" in request.'}
    # DRF names the header as sent, parameters and all (what a browser's fetch() sends).
    r = post_raw(client, "/api/auth/login/", b"username=a", "text/plain;charset=UTF-8")
    assert r.status_code == 415, r.text
    assert r.json() == {"detail": 'Unsupported media type "text/plain;charset=UTF-8" in request.'}


def test_an_empty_body_is_no_data_whatever_its_type(client):
    """DRF chooses no parser for an empty body, so its type cannot be unsupported: the
    request reads as one with no fields."""
    user = client.register()
    for kind in ("text/plain", "text/plain;charset=UTF-8", "application/xml", "multipart/form-data"):
        r = post_raw(client, "/api/auth/login/", b"", kind)
        assert r.status_code == 400, (kind, r.text)
        assert r.json() == {"username": ["This field is required."],
                            "password": ["This field is required."]}, (kind, r.text)
    group = new_group(client, user)
    r = ok(client.patch(f"/api/chats/{group['id']}/", token=user["access"], data=b"",
                        headers={"Content-Type": "text/plain;charset=UTF-8"}))
    assert r.status_code == 200 and r.json()["name"] == group["name"], r.text


def test_an_unreadable_body_answers_after_the_object_checks(client):
    """DRF's detail views look the object up and check permissions before they first read
    request.data: a bad body on a chat or message the caller cannot see is a 404, on one
    they may not change a 403, and only on their own the 400 (or 415) of the body."""
    owner, member, outsider = client.register(), client.register(), client.register()
    g = new_group(client, owner, member)
    m = send(client, owner, g["id"], "mine")
    staff = make_staff(client.server, client)
    targets = [  # (method, path, who may not see it, who may not change it, who may)
        ("PUT", f"/api/chats/{g['id']}/", outsider, member, owner),
        ("PATCH", f"/api/chats/{g['id']}/", outsider, member, owner),
        ("POST", f"/api/chats/{g['id']}/members/", outsider, member, owner),
        ("PATCH", f"/api/chats/{g['id']}/members/{uid(member)}/", outsider, member, owner),
        ("PATCH", f"/api/chats/{g['id']}/members/{uid(outsider)}/", owner, None, None),
        ("POST", f"/api/chats/{g['id']}/read/", outsider, None, member),
        ("PUT", f"/api/messages/{m['id']}/", outsider, member, owner),
        ("PATCH", f"/api/messages/{m['id']}/", outsider, member, owner),
        ("POST", f"/api/messages/{m['id']}/forward/", outsider, None, member),
        ("PATCH", f"/api/admin/users/{uid(outsider)}/", None, member, staff),
        ("PATCH", "/api/admin/users/999999999/", staff, None, None),
    ]
    bodies = [  # (body, content type, status on the caller's own object)
        (b'{"name": ', "application/json", 400),
        (b'["a"]', "application/json", 400),
        (b"name=x", "text/plain", 415),
    ]
    for method, path, hidden_from, denied_to, allowed in targets:
        for body, kind, status in bodies:
            def call(who):
                return ok(client.request(method, path, token=who["access"], data=body,
                                         headers={"Content-Type": kind}))
            if hidden_from:
                r = call(hidden_from)
                assert r.status_code == 404 and list(r.json()) == ["detail"], (method, path, body, r.text)
            if denied_to:
                r = call(denied_to)
                assert r.status_code == 403, (method, path, body, r.text)
            if not allowed:
                continue
            r = call(allowed)
            assert r.status_code == status, (method, path, body, r.text)
            if status == 415:
                assert r.json() == {"detail": 'Unsupported media type "text/plain" in request.'}
            elif body.startswith(b"["):
                assert r.json() == {
                    "non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}
            else:
                assert r.json()["detail"].startswith("JSON parse error"), r.text
    # A valid body with a bad field, too, waits for the object's checks.
    for method, path, who, body in (
            ("POST", f"/api/chats/{g['id']}/read/", outsider, {}),
            ("POST", f"/api/messages/{m['id']}/forward/", outsider, {"target_chat_id": "x"}),
            ("PATCH", f"/api/chats/{g['id']}/members/999999999/", owner, {"role": "boss"})):
        r = ok(client.request(method, path, token=who["access"], json=body))
        assert r.status_code == 404, (method, path, r.text)
    # Nothing was changed on the way.
    r = client.get(f"/api/chats/{g['id']}/", token=owner["access"]).json()
    assert r["name"] == g["name"] and len(r["members"]) == 2
    assert client.get(f"/api/messages/?chat={g['id']}", token=owner["access"]).json()[
        "results"][0]["text"] == "mine"
    assert client.get(f"/api/chats/{g['id']}/", token=member["access"]).json()["unread_count"] == 1


def test_deeply_nested_json(client):
    for data in (b"[" * 10000, b"[" * 10000 + b"]" * 10000, b'{"a":' * 10000 + b"1" + b"}" * 10000):
        r = post_raw(client, "/api/auth/login/", data)
        assert r.status_code == 400, (data[:20], r.text)
        assert list(r.json()) in (["detail"], ["non_field_errors"]), r.text
    assert ok(client.get("/healthz")).status_code == 200


def test_form_encoded_login(client):
    user = client.register()
    r = ok(client.post("/api/auth/login/",
                       data={"username": user["user"]["username"], "password": user["password"]}))
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"access", "refresh"}
    r = ok(client.post("/api/auth/login/",
                       data={"username": user["user"]["username"], "password": "wrong-password"}))
    assert r.status_code == 401, r.text


def test_form_bodies_are_read_as_querydict_reads_them(client):
    """`curl -d` sends a form as typed: spaces, '%' and non-ASCII letters unencoded. Django's
    QueryDict takes them (parse_qsl): '+' and %20 are spaces, a '%' that starts no escape is
    itself, escapes that are not UTF-8 are U+FFFD, and a body that is not UTF-8 is Latin-1."""
    user = client.register()
    group = new_group(client, user)
    token = {"Authorization": f"Bearer {user['access']}"}
    cases = [
        (b"text=hello world", "hello world"),
        ("text=Café [1] {x} | 50% off ^`\\".encode(), "Café [1] {x} | 50% off ^`\\"),
        (b"text=caf\xe9", "café"),
        (b"text=a+b%20c%2B%e2%82%ac", "a b c+€"),
        (b"text=%E9t%zz%", "\ufffdt%zz%"),
        (b"&&text=first&&text=last&", "last"),
        (b"text=x=y", "x=y"),
    ]
    for body, text in cases:
        r = post_raw(client, "/api/messages/", f"chat={group['id']}&".encode() + body,
                     "application/x-www-form-urlencoded", headers=token)
        assert r.status_code == 201, (body, r.text)
        assert r.json()["text"] == text, (body, r.text)
    name = user["user"]["username"]
    r = post_raw(client, "/api/auth/login/", f"username={name}&password=wrong pass".encode(),
                 "application/x-www-form-urlencoded")
    assert r.status_code == 401, r.text
    r = post_raw(client, "/api/auth/login/", f"username={name}&password={user['password']}".encode(),
                 "application/x-www-form-urlencoded")
    assert r.status_code == 200, r.text
    r = ok(client.patch(f"/api/chats/{group['id']}/", token=user["access"], data=b"name=Renamed group",
                        headers={"Content-Type": "application/x-www-form-urlencoded"}))
    assert r.status_code == 200 and r.json()["name"] == "Renamed group", r.text


def test_json_sent_with_curls_default_form_type_is_read_as_json(client):
    user = client.register()
    data = json.dumps({"username": user["user"]["username"], "password": user["password"]})
    r = post_raw(client, "/api/auth/login/", data.encode(), "application/x-www-form-urlencoded")
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"access", "refresh"}


def test_form_bodies_give_list_fields_every_value(client):
    """As DRF reads an HTML form (QueryDict): a list field gets every value of its key, a
    single one included; other fields get the last. Ids may be written as text, as Django
    turns "5" into a pk in JSON too."""
    ann, bob, cat = client.register(), client.register(), client.register()
    form = "application/x-www-form-urlencoded"

    def create(body, content_type=form):
        return ok(client.post("/api/chats/", data=body, token=ann["access"],
                              headers={"Content-Type": content_type}))

    r = create(f"type=group&name=first&name=form+group&member_ids={uid(bob)}&member_ids={uid(cat)}")
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "form group"
    assert sorted(m["id"] for m in r.json()["members"]) == sorted(map(uid, (ann, bob, cat)))
    r = create(f"type=private&member_ids={uid(bob)}")
    assert r.status_code == 201, r.text
    assert sorted(m["id"] for m in r.json()["members"]) == sorted(map(uid, (ann, bob)))
    # Text ids in JSON.
    r = create(json.dumps({"type": "private", "member_ids": [f" {uid(cat)} "]}).encode(), "application/json")
    assert r.status_code == 201, r.text
    assert sorted(m["id"] for m in r.json()["members"]) == sorted(map(uid, (ann, cat)))
    # What is not an id.
    for body, message in ((f"type=group&name=g&member_ids={uid(bob)}&member_ids=abc",
                           "Incorrect type. Expected pk value, received str."),
                          ("type=group&name=g&member_ids=", "Incorrect type. Expected pk value, received str."),
                          ("type=group&name=g&member_ids=0", 'Invalid pk "0" - object does not exist.'),
                          # No key in a form is an empty list (getlist), not a missing field.
                          ("type=private", "A private chat needs exactly one other member.")):
        r = create(body)
        assert r.status_code == 400, (body, r.text)
        assert r.json() == {"member_ids": [message]}, (body, r.text)
    # JSON: null is a pk that does not exist; a number that is not an integer is refused
    # (Django would truncate it to someone else's id), an integral one read as the id.
    for item, message in ((True, "Incorrect type. Expected pk value, received bool."),
                          (None, 'Invalid pk "None" - object does not exist.'),
                          (float(uid(bob)) + 0.5, "Incorrect type. Expected pk value, received float."),
                          (-2, 'Invalid pk "-2" - object does not exist.'),
                          (0.0, 'Invalid pk "0.0" - object does not exist.')):
        r = create(json.dumps({"type": "group", "name": "g", "member_ids": [item]}).encode(), "application/json")
        assert r.status_code == 400 and r.json() == {"member_ids": [message]}, (item, r.text)

    # A new member's user_id is the same field, one id.
    group = create(json.dumps({"type": "group", "name": "g"}).encode(), "application/json").json()["id"]
    for item, message in ((True, "Incorrect type. Expected pk value, received bool."),
                          ("abc", "Incorrect type. Expected pk value, received str."),
                          ([uid(bob)], "Incorrect type. Expected pk value, received list."),
                          (None, "This field may not be null."),
                          ("", "This field may not be null."),
                          (-2, 'Invalid pk "-2" - object does not exist.'),
                          (9_000_000_000_000, 'Invalid pk "9000000000000" - object does not exist.')):
        r = client.post(f"/api/chats/{group}/members/", token=ann["access"], json={"user_id": item})
        assert r.status_code == 400 and r.json() == {"user_id": [message]}, (item, r.text)
    r = client.post(f"/api/chats/{group}/members/", token=ann["access"], json={"user_id": f" {uid(cat)} "})
    assert r.status_code == 201 and r.json()["id"] == uid(cat), r.text


@pytest.mark.parametrize("value,message", [
    (["a", "b"], "Not a valid string."),
    ({"a": 1}, "Not a valid string."),
    (True, "Not a valid string."),
    (None, "This field may not be null."),
])
def test_register_rejects_wrong_json_types(client, value, message):
    r = ok(client.post("/api/auth/register/",
                       json={"username": value, "email": "t@example.com", "password": "pa55word!"}))
    assert r.status_code == 400, r.text
    assert r.json() == {"username": [message]}


def test_register_reports_missing_fields(client):
    r = ok(client.post("/api/auth/register/", json={"username": unique_name()}))
    assert r.status_code == 400, r.text
    assert r.json() == {"email": ["This field is required."], "password": ["This field is required."]}
    r = ok(client.post("/api/auth/register/", json={"password": "pa55word!"}))
    assert r.status_code == 400, r.text
    assert r.json() == {"username": ["This field is required."], "email": ["This field is required."]}


def test_multipart_form_bodies_are_read_as_drf_reads_them(client):
    """multipart/form-data, DRF's third default parser (a browser's FormData): fields as in
    a url-encoded form, every value of a repeated key for a list, a file part refused as a
    value, and a body without a boundary a parse error."""
    ann, bob, cat = client.register(), client.register(), client.register()

    def post(path, fields, files=None, **kw):
        return ok(client.post(path, token=ann["access"], data=fields, files=files or {}, **kw))

    r = post("/api/chats/", [("type", "group"), ("name", "multi part \u2713"),
                             ("member_ids", str(uid(bob))), ("member_ids", str(uid(cat)))],
             files=[("x", (None, "no file name: a field"))])
    assert r.status_code == 201, r.text
    assert r.request.headers["Content-Type"].startswith("multipart/form-data; boundary="), r.request.headers
    assert r.json()["name"] == "multi part \u2713"
    assert sorted(m["id"] for m in r.json()["members"]) == sorted(map(uid, (ann, bob, cat)))
    chat = r.json()["id"]
    # Only fields (a part with no file name) also go as multipart with `files`.
    r = post("/api/messages/", None, files=[("chat", (None, str(chat))), ("text", (None, "line one\r\nline two"))])
    assert r.status_code == 201, r.text
    assert r.json()["text"] == "line one\r\nline two"
    # A file where text is expected.
    r = post("/api/messages/", None, files=[("chat", (None, str(chat))), ("text", ("note.txt", b"hi", "text/plain"))])
    assert r.status_code == 400 and r.json() == {"text": ["Not a valid string."]}, r.text
    # No boundary, and a body that never ends its part.
    for content_type, body in (("multipart/form-data", b"--x\r\n\r\nhello\r\n--x--"),
                               ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nhello")):
        r = post_raw(client, "/api/auth/login/", body, content_type)
        assert r.status_code == 400, (content_type, r.text)
        assert r.json()["detail"].startswith("Multipart form parse error - "), r.text
    r = post_raw(client, "/api/auth/login/", b"--x\r\n\r\nhello\r\n--x--", "multipart/form-data")
    assert r.json() == {"detail": "Multipart form parse error - Invalid boundary in multipart: None"}
    # Login by multipart, as a FormData would send it.
    r = ok(client.post("/api/auth/login/", files=[("username", (None, ann["user"]["username"])),
                                                  ("password", (None, ann["password"]))]))
    assert r.status_code == 200 and set(r.json()) == {"access", "refresh"}, r.text


def test_register_reads_a_float_as_python_writes_it(client):
    for exponent in ("e-20", "e-2", "e+3", "e+20"):
        value = float(f"{int(unique_name('')[:8], 16) % 10**7 + 10**7}{exponent}")
        r = ok(client.post("/api/auth/register/",
                           json={"username": value, "email": "f@example.com", "password": "pa55word!"}))
        assert r.status_code == 201, r.text
        assert r.json()["user"]["username"] == str(value), (value, r.text)


def test_register_accepts_numbers_as_strings(client):
    number = int(unique_name("")[:10], 16) % 10**12 + 10**12
    r = ok(client.post("/api/auth/register/",
                       json={"username": number, "email": "n@example.com", "password": "pa55word!"}))
    assert r.status_code == 201, r.text
    assert r.json()["user"]["username"] == str(number)
    r = ok(client.post("/api/auth/register/",
                       json={"username": unique_name(), "email": "n@example.com", "password": 12345678}))
    assert r.status_code == 400, r.text
    assert r.json() == {"password": ["This password is entirely numeric."]}


# --- Host header -----------------------------------------------------------------------

def test_host_header_is_checked(client, server):
    r = ok(client.get("/api/users/me/", headers={"Host": "evil.example"}))
    assert r.status_code == 400, r.text
    assert list(r.json()) == ["detail"]
    r = ok(client.post("/api/auth/login/", json={"username": "a", "password": "b"},
                       headers={"Host": "evil.example:8000"}))
    assert r.status_code == 400, r.text
    assert list(r.json()) == ["detail"]
    for host in ("localhost:1234", "127.0.0.1", "localhost", f"127.0.0.1:{server.port}"):
        r = ok(client.get("/api/users/me/", headers={"Host": host}))
        assert r.status_code == 401, (host, r.text)
        assert r.json() == {"detail": "Authentication credentials were not provided."}
    r = ok(client.get("/healthz", headers={"Host": "evil.example"}))
    assert r.status_code == 200


def test_an_http_1_0_request_without_host_is_checked_by_the_address_it_reached(make_server):
    """HTTP/1.0 lets a client leave Host out (HAProxy's default check, `OPTIONS /
    HTTP/1.0`, does). Django then checks the address and port the request reached
    (SERVER_NAME) against ALLOWED_HOSTS. An HTTP/1.1 request without Host stays a 400."""
    request = b"GET /api/users/me/ HTTP/1.0\r\n\r\n"
    server = make_server()
    status, _, body = parse_raw(raw_exchange(server, request))
    assert status == 401, body  # the host is allowed: the request goes on to authentication
    status, _, body = parse_raw(raw_exchange(server, b"OPTIONS /api/auth/login/ HTTP/1.0\r\n\r\n"))
    assert status == 200, body
    status, _, body = parse_raw(raw_exchange(server, b"GET /api/users/me/ HTTP/1.1\r\nConnection: close\r\n\r\n"))
    assert status == 400, body
    elsewhere = make_server(ALLOWED_HOSTS="chat.example.com")
    status, _, body = parse_raw(raw_exchange(elsewhere, request))
    assert status == 400, body
    assert json.loads(body) == {"detail": f"Invalid HTTP_HOST header: '127.0.0.1:{elsewhere.port}'. "
                                          "You may need to add it to ALLOWED_HOSTS."}, body


# --- service endpoints -----------------------------------------------------------------

def test_health_and_readiness(client):
    r = ok(client.get("/healthz"))
    assert r.status_code == 200
    r = ok(client.get("/readyz"))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ok"
    r = ok(client.request("HEAD", "/healthz"))
    assert r.status_code == 200
    assert r.content == b""


def test_head_sends_no_body_on_the_wire(server):
    raw = raw_exchange(server, f"HEAD /healthz HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                               "Connection: close\r\n\r\n".encode())
    status, headers, body = parse_raw(raw)
    assert status == 200
    assert body == b""


def test_head_on_a_page_or_asset_gives_the_length_of_its_get(server):
    # The pages and their assets come from the static files, not the router.
    for path in ("/", "/admin/", "/api/docs/", "/api/docs/init.js", "/app.css"):
        get = raw_exchange(server, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                                   "Connection: close\r\n\r\n".encode())
        head = raw_exchange(server, f"HEAD {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                                    "Connection: close\r\n\r\n".encode())
        get_status, get_headers, get_body = parse_raw(get)
        head_status, head_headers, head_body = parse_raw(head)
        assert get_status == head_status == 200, path
        assert int(get_headers["content-length"]) == len(get_body) > 0, path
        assert head_headers["content-length"] == get_headers["content-length"], path
        assert head_body == b"", path


# --- garbage on the socket -------------------------------------------------------------

@pytest.mark.parametrize("garbage", [
    b"HELLO\r\n\r\n",
    b"GET\r\n\r\n",
    b"\x00\x01\x02\xff\r\n\r\n",
    b"POST /api/auth/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -5\r\n\r\n",
    b"POST /api/auth/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n",
    b"POST /api/auth/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
])
def test_garbage_gets_400_or_a_closed_connection(server, garbage):
    raw = raw_exchange(server, garbage)
    if raw:
        assert raw.startswith(b"HTTP/1."), raw[:200]
        status = int(raw.split(b" ")[1])
        assert 400 <= status < 500, raw[:200]
    c = Client(server)
    assert ok(c.get("/healthz")).status_code == 200


@pytest.mark.parametrize("coding", ["gzip", "identity", "xchunked", "chunked, gzip"])
def test_a_body_of_unknown_length_is_refused_and_nothing_after_it_runs(server, client, coding):
    """RFC 9112 6.3: a request whose last transfer coding is not chunked has a body of
    unknown length. Answered 400 and closed: its bytes are never read as a request."""
    me = client.register()
    smuggled = (f"GET /api/users/me/ HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                f"Authorization: Bearer {me['access']}\r\n\r\n")
    raw = raw_exchange(server, (
        f"POST /api/auth/logout/ HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Content-Type: application/json\r\nTransfer-Encoding: {coding}\r\n\r\n{smuggled}").encode())
    assert raw.startswith(b"HTTP/1.1 400"), raw[:200]
    assert raw.count(b"HTTP/1.1 ") == 1 and me["user"]["username"].encode() not in raw, raw


def test_two_host_headers_are_refused(server):
    raw = raw_exchange(server, (f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                                f"Host: evil.example\r\n\r\n").encode())
    assert raw.startswith(b"HTTP/1.1 400"), raw[:200]


def test_a_header_sent_slowly_gets_the_request_timeout_not_the_keepalive_one(make_server):
    """Idle connections wait up to the keep-alive timeout between requests, but a request's
    header, once begun, and a new connection's first bytes get the request timeout."""
    s = make_server(REQUEST_TIMEOUT=2, KEEPALIVE_TIMEOUT=20)

    def closed_after(conn, trickle):
        start = time.monotonic()
        conn.settimeout(0.5)
        while time.monotonic() - start < 15:
            if trickle:
                try:
                    conn.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    return time.monotonic() - start
            try:
                if conn.recv(4096) == b"":
                    return time.monotonic() - start
            except socket.timeout:
                pass
            except OSError:
                return time.monotonic() - start
        return None

    with socket.create_connection(("127.0.0.1", s.port)) as conn:  # sends nothing at all
        took = closed_after(conn, trickle=False)
    assert took is not None and took < 5, took
    with socket.create_connection(("127.0.0.1", s.port)) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        took = closed_after(conn, trickle=True)
    assert took is not None and took < 5, took
    # Between requests of a kept-alive connection, the keep-alive timeout.
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as conn:
        conn.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\n\r\n".encode())
        assert conn.recv(4096).startswith(b"HTTP/1.1 200")
        time.sleep(4)
        conn.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\n\r\n".encode())
        assert conn.recv(4096).startswith(b"HTTP/1.1 200")


def test_oversized_header_is_431(server):
    request = (f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
               f"X-Big: {'a' * (17 * 1024)}\r\n\r\n").encode()
    raw = raw_exchange(server, request)
    status, headers, body = parse_raw(raw)
    assert status == 431, raw[:300]
    # Many small headers adding up past the limit count too.
    many = "".join(f"X-H{i}: {'b' * 100}\r\n" for i in range(200))
    raw = raw_exchange(server, f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n{many}\r\n".encode())
    status, headers, body = parse_raw(raw)
    assert status == 431, raw[:300]
    assert ok(Client(server).get("/healthz")).status_code == 200


def test_invalid_percent_encoding(client):
    user = client.register()
    token = user["access"]
    for path in ("/api/users/%FF/", "/api/users/me/%FF", "/api/%ZZ/"):
        r = ok(client.get(path, token=token))
        assert 400 <= r.status_code < 500, (path, r.status_code, r.text)
    # A query is decoded as Django's QueryDict decodes it: what is not UTF-8 becomes U+FFFD.
    for path in ("/api/users/?search=%FF", "/api/users/?search=%C3%28"):
        r = ok(client.get(path, token=token))
        assert r.status_code == 200 and r.json()["count"] == 0, (path, r.status_code, r.text)
    # A lone "%" is not an escape: Django reads it literally.
    r = ok(client.get("/api/users/?search=%", token=token))
    assert r.status_code == 200, r.text
    assert r.json() == {"count": 0, "next": None, "previous": None, "results": []}
    assert ok(client.get("/healthz")).status_code == 200


def test_a_target_with_characters_rfc_3986_leaves_out_is_read_as_daphne_reads_it(client, server):
    """A browser's URL parser leaves [ ] { } | ^ \\ ` unencoded in a query, and `requests`
    sends a literal URL's [ ] as they are; Daphne takes them, and a '%' that starts no
    escape, and Django reads them literally. Spaces and bytes past ASCII stay refused."""
    user = client.register()
    token = user["access"]
    group = new_group(client, user)
    send(client, user, group["id"], "the [draft] of {plans} | v2 ^ `x` 50%")

    def get(target):
        raw = raw_exchange(server, (f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                    f"Authorization: Bearer {token}\r\nConnection: close\r\n\r\n").encode())
        status, _, body = parse_raw(raw)
        return status, body

    for q in ("[draft]", "{plans}", "draft|plans", "v2^", "`x`", 'draft"', "<draft>", "dr%zz", "50%"):
        status, body = get(f"/api/messages/search/?q={q}")
        assert status == 200, (q, status, body)
        texts = [m["text"] for m in json.loads(body)["results"]]
        expected = [] if q == "dr%zz" else ["the [draft] of {plans} | v2 ^ `x` 50%"]
        assert texts == expected, (q, body)
    status, body = get(f"/api/users/?search={user['user']['username']}[")
    assert (status, json.loads(body)["count"]) == (200, 0), body
    status, body = get(f"/api/messages/?chat={group['id']}&before=[1]")
    assert status == 400 and json.loads(body) == {"before": ["A valid integer is required."]}, body
    status, _ = get("/api/users/me/[x]")
    assert status == 404
    for target in ("/api/users/?search=a b", "/api/users/?search=\u00e9"):
        status, body = get(target)
        assert status == 400, (target, status, body)


def test_a_target_in_absolute_form_is_read_as_its_path_and_query(client, server):
    """RFC 9112 3.2.2: a server accepts "GET http://host/path?query" as it does "/path?query"
    (what a client configured for a forward proxy sends). Other schemes are refused."""
    user = client.register()
    token = user["access"]
    search = user["user"]["username"]
    for target in (f"http://127.0.0.1:{server.port}/api/users/?search={search}",
                   f"HTTPS://127.0.0.1/api/users?search={search}"):
        raw = raw_exchange(server, (f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                    f"Authorization: Bearer {token}\r\nConnection: close\r\n\r\n").encode())
        status, _, body = parse_raw(raw)
        assert status == 200, raw[:300]
        assert [u["id"] for u in json.loads(body)["results"]] == [user["user"]["id"]], body
    raw = raw_exchange(server, f"GET http://127.0.0.1:{server.port} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               f"Connection: close\r\n\r\n".encode())
    assert parse_raw(raw)[0] == parse_raw(raw_exchange(
        server, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"))[0], raw[:300]
    # Other schemes, and user information (RFC 9110 4.2.4: an error), are refused.
    for target in (b"ftp://127.0.0.1/healthz", b"http://user:secret@127.0.0.1/healthz"):
        raw = raw_exchange(server, b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                   b"Connection: close\r\n\r\n")
        assert parse_raw(raw)[0] == 400, (target, raw[:300])


def test_nul_characters_are_refused_everywhere(client, server):
    """NUL cannot be stored as text (PostgreSQL refuses it, C strings cut at it): every door
    answers 400 / an error event instead of storing a cut-short value. A search term is
    refused too, as DRF's SearchFilter (3.15) reads it through a CharField."""
    import asyncio
    from test_websocket import is_, private_chat, run, user_ws
    a, b = client.register(), client.register()
    chat = private_chat(client, a, b)
    r = client.post("/api/messages/", token=a["access"],
                    json={"chat": chat, "text": "before\u0000after"})
    assert r.status_code == 400 and r.json() == {"text": ["Null characters are not allowed."]}, r.text
    r = client.post("/api/messages/", token=a["access"],
                    json={"chat": chat, "text": "ok", "client_id": "\u0000x"})
    assert r.status_code == 400 and "client_id" in r.json(), r.text
    send(client, a, chat, "findable words")
    r = client.get(f"/api/users/?search={a['user']['username'][:-1]}%00", token=a["access"])
    assert (r.status_code, r.json()) == (400, {"search": ["Null characters are not allowed."]}), r.text
    r = client.get("/api/messages/search/?q=finda%00ble", token=a["access"])
    assert (r.status_code, r.json()) == (400, {"q": ["Null characters are not allowed."]}), r.text
    r = client.get(f"/api/messages/?chat={chat}%00", token=a["access"])
    assert r.status_code == 400 and r.json() == {"chat": ["A valid integer is required."]}, r.text

    async def ws():
        s = await user_ws(server, a)
        await s.send({"type": "message", "chat_id": chat, "text": "cut\u0000here"})
        f = await s.until(is_("error", request_type="message"), timeout=10)
        assert "Null characters" in f["detail"], f
        await s.send({"type": "ping"})
        await s.until(is_("pong"), timeout=10)  # the socket stays open
        await s.close()

    run(ws())
    history = client.get(f"/api/messages/?chat={chat}", token=a["access"]).json()["results"]
    assert [m["text"] for m in history] == ["findable words"], history  # nothing cut short


def read_by_server(server_port, client_port, timeout=10):
    """Waits until the server has read everything the client sent on one connection: its
    end's receive queue in /proc/net/tcp is empty."""
    local = f"0100007F:{server_port:04X}"
    remote = f"0100007F:{client_port:04X}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[1] == local and fields[2] == remote and int(fields[4].split(":")[1], 16) == 0:
                    return True
        time.sleep(0.02)
    return False


def test_sigterm_lets_a_request_in_progress_finish(make_server):
    """A request whose header has arrived is answered (and logged) before chatd stops, even
    when its body is still on the way at SIGTERM; idle keep-alive connections do not hold
    the shutdown up."""
    s = make_server()
    idle = socket.create_connection(("127.0.0.1", s.port))  # never sends anything
    kept = socket.create_connection(("127.0.0.1", s.port), timeout=10)  # kept alive
    kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert kept.recv(4096).startswith(b"HTTP/1.1 200")
    body = json.dumps({"username": "nobody-here", "password": "wrong-password-1"}).encode()
    head = (f"POST /api/auth/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as conn:
        conn.sendall(head + body[:5])
        # The header is read: the request is in progress.
        assert read_by_server(s.port, conn.getsockname()[1])
        time.sleep(0.05)
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert s.proc.poll() is None, "chatd stopped with a request in progress"
        # A new request on a kept-alive connection is not taken on once stopping: 503,
        # nothing done, and the connection closed (it is sent again to another node).
        kept.sendall(json_post_bytes("/api/auth/login/", body))
        refused = kept.recv(4096)
        assert refused.startswith(b"HTTP/1.1 503"), refused
        assert b"\r\nConnection: close\r\n" in refused, refused
        assert kept.recv(4096) == b""
        conn.sendall(body[5:])
        answer = conn.recv(4096)
    assert answer.startswith(b"HTTP/1.1 401"), answer
    assert b"\r\nConnection: close\r\n" in answer, answer  # closed after it
    assert s.proc.wait(timeout=10) == 0
    idle.close()
    kept.close()
    assert "POST /api/auth/login/ 401" in s.read_log()


def json_post_bytes(path, body):
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def test_query_parameters_are_read_as_djangos_querydict(client):
    """A repeated parameter is read by its last value (QueryDict.get), and bytes that are not
    UTF-8 are replaced, not refused (QueryDict decodes with errors="replace")."""
    a, b = client.register(), client.register()
    g = new_group(client, a, b)
    other = new_group(client, b)
    send(client, a, g["id"], "zebra crossing")
    token = a["access"]

    def texts(r):
        assert r.status_code == 200, r.text
        return [m["text"] for m in r.json()["results"]]

    assert texts(client.get("/api/messages/search/?q=nomatch&q=zebra", token=token)) == ["zebra crossing"]
    assert texts(client.get("/api/messages/search/?q=zebra&q=nomatch", token=token)) == []
    # The last chat named is the one read: a member's chat last, then a chat they are not in.
    assert texts(client.get(f"/api/messages/?chat={other['id']}&chat={g['id']}", token=token)) == \
        ["zebra crossing"]
    r = client.get(f"/api/messages/?chat={g['id']}&chat={other['id']}", token=token)
    assert r.status_code == 404, r.text
    r = client.get(f"/api/messages/?chat={g['id']}&limit=1&limit=300", token=token)
    assert r.status_code == 400 and "limit" in r.json(), r.text
    r = client.get(f"/api/users/?search=nomatch&search={b['user']['username']}", token=token)
    assert [u["id"] for u in r.json()["results"]] == [uid(b)], r.text
    # Not UTF-8: U+FFFD in place of each invalid part, which is not part of a word.
    assert texts(client.get("/api/messages/search/?q=zebra%e2%82", token=token)) == ["zebra crossing"]
    for raw in ("%ff", "%C3%28"):
        r = client.get(f"/api/messages/search/?q={raw}", token=token)
        assert (r.status_code, r.json()) == (400, {"q": ["Enter at least one word to search for."]}), raw
    r = client.get("/api/users/?search=%ff", token=token)
    assert r.status_code == 200 and r.json()["count"] == 0, r.text
    # A link keeps the parameters as read: the repeated limit by its last value.
    prefix = unique_name("p")
    for suffix in "abc":
        client.register(username=prefix + suffix)
    r = client.get(f"/api/users/?search={prefix}&limit=1&limit=2", token=token)
    assert r.status_code == 200 and [u["username"] for u in r.json()["results"]] == \
        [prefix + "a", prefix + "b"], r.text
    assert "limit=2" in r.json()["next"] and "offset=2" in r.json()["next"], r.json()


def test_form_blanks_of_optional_fields_are_left_out(client):
    """DRF's Field.get_value for HTML input: an empty value of a field that may be null or
    left out reads as null or left out, as a browser's FormData sends an empty input."""
    ann, bob = client.register(), client.register()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    g = new_group(client, ann)
    r = ok(client.post("/api/messages/", token=ann["access"], headers=form,
                       data=f"chat={g['id']}&text=hi&client_id="))
    assert r.status_code == 201 and r.json()["client_id"] is None, r.text
    r = ok(client.post(f"/api/chats/{g['id']}/members/", token=ann["access"], headers=form,
                       data=f"user_id={uid(bob)}&role="))
    assert r.status_code == 201 and r.json()["role"] == "member", r.text
    r = ok(client.request("PATCH", "/api/users/me/", token=ann["access"], headers=form,
                          data=f"email=&password=&current_password={ann['password']}"))
    assert r.status_code == 200 and r.json()["email"] == ann["user"]["email"], r.text
    assert client.login(ann["user"]["username"], ann["password"])  # the password is unchanged
    # A required field's blank is still an error, and JSON's "" is a value, not a blank form.
    r = ok(client.post("/api/messages/", token=ann["access"], headers=form, data="chat=&text=hi"))
    assert (r.status_code, r.json()) == (400, {"chat": ["A valid integer is required."]}), r.text
    r = ok(client.post("/api/messages/", token=ann["access"],
                       json={"chat": g["id"], "text": "hi", "client_id": ""}))
    assert (r.status_code, r.json()) == (400, {"client_id": ["This field may not be blank."]}), r.text
    r = ok(client.request("PATCH", "/api/users/me/", token=ann["access"],
                          json={"email": "", "current_password": ann["password"]}))
    assert (r.status_code, r.json()) == (400, {"email": ["This field may not be blank."]}), r.text


def test_member_ids_null_is_not_a_list(client):
    """Null is refused before the list is looked at (Field.validate_empty_values)."""
    ann = client.register()
    r = ok(client.post("/api/chats/", token=ann["access"],
                       json={"type": "group", "name": "g", "member_ids": None}))
    assert (r.status_code, r.json()) == (400, {"member_ids": ["This field may not be null."]}), r.text


def test_empty_query_integers_filter_nothing(client):
    """An empty `before=`, `after=`, `limit=` or `since=` reads as left out (django-filter's
    EMPTY_VALUES, a view's `if before:`); an empty required `chat=` is a missing one."""
    a = client.register()
    g = new_group(client, a)
    ids = [send(client, a, g["id"], f"m{i}")["id"] for i in range(3)]
    r = client.get(f"/api/messages/?chat={g['id']}&before=&after=&limit=", token=a["access"])
    assert r.status_code == 200 and [m["id"] for m in r.json()["results"]] == ids[::-1], r.text
    r = client.get(f"/api/messages/search/?q=m1&chat={g['id']}&limit=", token=a["access"])
    assert r.status_code == 200 and [m["id"] for m in r.json()["results"]] == [ids[1]], r.text
    r = client.get("/api/events/?since=&limit=", token=a["access"])
    assert r.status_code == 200 and r.json()["results"], r.text
    r = client.get("/api/messages/?chat=&limit=5", token=a["access"])
    assert (r.status_code, r.json()) == (400, {"chat": ["This field is required."]}), r.text
    r = client.get(f"/api/messages/?chat={g['id']}&before=x", token=a["access"])
    assert (r.status_code, r.json()) == (400, {"before": ["A valid integer is required."]}), r.text

