"""api/openapi.json against the real server: the document is valid OpenAPI 3.1, it names
exactly the routes the router registers, and every response the server gives while the
endpoints are exercised (successes and the usual errors) matches the schema the document
gives for that operation and status.

Validation uses Debian's python3-jsonschema; the document itself is linted against the
OpenAPI 3.1 specification by Redocly CLI (tests/lint_openapi.sh, run by make test)."""
import glob
import json
import os
import re
import subprocess
import tempfile

import jsonschema
import pytest

from conftest import CHATD, ROOT, SECRET_KEY, Client, unique_name

OPENAPI_PATH = os.path.join(ROOT, "api", "openapi.json")
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
PROBES = {"/healthz", "/readyz", "/metrics"}
# Documented in the schema, served by other parts of the server than the REST router.
NOT_ROUTER_TAGS = {"admin", "service"}

with open(OPENAPI_PATH, encoding="utf-8") as _f:
    SPEC = json.load(_f)


def operations(spec=SPEC):
    for path, item in spec["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield path, method, item[method]


# ---- resolving and validating ------------------------------------------------------------

def pointer(doc, ref):
    assert ref.startswith("#/"), f"only local references are used: {ref}"
    node = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def inline_refs(node, doc=SPEC, stack=()):
    """`node` with every local $ref replaced by what it points at (recursively), so a plain
    Draft 2020-12 validator needs no registry. A cycle would be a schema bug here."""
    if isinstance(node, list):
        return [inline_refs(x, doc, stack) for x in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        ref = node["$ref"]
        assert ref not in stack, f"reference cycle through {ref}"
        target = inline_refs(pointer(doc, ref), doc, stack + (ref,))
        rest = {k: inline_refs(v, doc, stack) for k, v in node.items() if k != "$ref"}
        if not rest:
            return target
        # OpenAPI 3.1 allows siblings of $ref (a description, say): keep both.
        return {"allOf": [target], **rest}
    # `discriminator` is an OpenAPI annotation; oneOf alone decides.
    return {k: inline_refs(v, doc, stack) for k, v in node.items() if k != "discriminator"}


def response_definition(method, path_template, status):
    item = SPEC["paths"].get(path_template)
    assert item is not None, f"{path_template} is not in api/openapi.json"
    op = item.get(method.lower())
    assert op is not None, f"{method} {path_template} is not in api/openapi.json"
    responses = op["responses"]
    assert str(status) in responses, (
        f"{method} {path_template} answered {status}, which api/openapi.json does not document "
        f"(documented: {sorted(responses)})")
    r = responses[str(status)]
    return pointer(SPEC, r["$ref"]) if "$ref" in r else r


def assert_matches(method, path_template, status, body):
    """Validates a response body (parsed JSON, or None for an empty body) against what the
    document says `method path_template` answers with `status`."""
    definition = response_definition(method, path_template, status)
    content = definition.get("content")
    if not content:
        assert body is None, f"{method} {path_template} {status} documents no body, got {body!r}"
        return
    assert "application/json" in content, f"{method} {path_template} {status}: not JSON"
    schema = inline_refs(content["application/json"]["schema"])
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"- at {list(e.absolute_path)}: {e.message[:300]}" for e in errors[:10]]
        pytest.fail(f"{method} {path_template} {status}: the body does not match the schema\n"
                    + "\n".join(lines) + f"\nbody: {json.dumps(body)[:2000]}")


def assert_request_fits(method, path_template, kw):
    """A request the server took (2xx) fits what the document says it takes: a JSON body
    validates against the request schema, and no body at all is allowed only where the
    body is not required."""
    op = SPEC["paths"][path_template][method.lower()]
    body = op.get("requestBody")
    if body is None:
        return
    where = f"{method} {path_template}"
    if "json" not in kw and "data" not in kw:
        assert not body.get("required"), f"{where} took no body, but the document requires one"
        return
    if "json" not in kw:
        return
    schema = inline_refs(body["content"]["application/json"]["schema"])
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(kw["json"]))
    assert not errors, f"{where} took {kw['json']!r}, which the request schema refuses: " + \
        "; ".join(e.message[:200] for e in errors[:5])


# Every (METHOD, path template, status) seen, for the coverage check at the end.
SEEN = set()
FINISHED = set()
TOUR = ("test_generic_errors", "test_auth", "test_throttling_and_rotation", "test_users", "test_chats_and_members",
        "test_messages_pins_and_events", "test_probes")


class Api:
    """A client whose every call is checked against api/openapi.json."""

    def __init__(self, client):
        self.client = client

    def call(self, method, template, expect, token=None, params=None, query="", **kw):
        """`params` fills the template's {id}s; `query` ("?a=1&b=2") is appended as is."""
        path = template.format(**(params or {})) + query
        r = self.client.request(method, path, token=token, **kw)
        assert r.status_code == expect, f"{method} {path}: {r.status_code} {r.text[:1000]}"
        body = None
        if r.content:
            assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
            body = r.json()
        assert_matches(method, template, r.status_code, body)
        if r.status_code < 300:
            assert_request_fits(method, template, kw)
        definition = response_definition(method, template, r.status_code)
        for name, header in definition.get("headers", {}).items():
            if "$ref" in header:
                header = pointer(SPEC, header["$ref"])
            if header.get("required"):
                assert name in r.headers, f"{method} {path} {r.status_code}: no {name} header"
            if name in r.headers and header.get("schema", {}).get("type") == "integer":
                assert r.headers[name].isdigit(), (name, r.headers[name])
        SEEN.add((method.upper(), template, r.status_code))
        return body

    def get(self, template, expect, **kw):
        return self.call("GET", template, expect, **kw)

    def post(self, template, expect, **kw):
        return self.call("POST", template, expect, **kw)

    def put(self, template, expect, **kw):
        return self.call("PUT", template, expect, **kw)

    def patch(self, template, expect, **kw):
        return self.call("PATCH", template, expect, **kw)

    def delete(self, template, expect, **kw):
        return self.call("DELETE", template, expect, **kw)

    def register(self, prefix="oa"):
        name = unique_name(prefix)
        body = self.post("/api/auth/register/", 201,
                         json={"username": name, "email": f"{name}@example.com",
                               "password": "correct-horse-1"})
        body["password"] = "correct-horse-1"
        return body


@pytest.fixture
def api(client):
    return Api(client)


def finished(name):
    FINISHED.add(name)


NO_SUCH_ID = 9_000_000_000_000


# ---- the document itself ----------------------------------------------------------------------

def test_the_document_is_valid_openapi_3_1():
    assert SPEC["openapi"].startswith("3.1.")
    # Every schema in it is a valid Draft 2020-12 schema, and every $ref resolves.
    for name, schema in SPEC["components"]["schemas"].items():
        jsonschema.Draft202012Validator.check_schema(inline_refs(schema))
    for path, method, op in operations():
        for status in op["responses"]:
            definition = response_definition(method, path, status)
            for media in definition.get("content", {}).values():
                jsonschema.Draft202012Validator.check_schema(inline_refs(media["schema"]))


def test_the_documents_own_rules():
    ids = [op["operationId"] for _, _, op in operations()]
    assert len(ids) == len(set(ids)), "operationIds must be unique"
    public = {"/api/auth/register/", "/api/auth/login/", "/api/auth/refresh/", "/api/auth/logout/",
              "/healthz", "/readyz", "/metrics", "/api/schema/", "/api/asyncapi/", "/api/docs/", "/admin/", "/"}
    assert SPEC["security"] == [{"bearerAuth": []}]
    scheme = SPEC["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    for path, method, op in operations():
        where = f"{method.upper()} {path}"
        assert path in PROBES or path.endswith("/"), f"{where}: paths end with a slash"
        assert (op.get("security") == []) == (path in public), f"{where}: security"
        statuses = set(op["responses"])
        if path not in PROBES:
            assert any(s.startswith("4") for s in statuses), f"{where}: no 4xx documented"
        if path not in public:
            assert {"401", "503"} <= statuses, f"{where}: 401/503 not documented"
        if op.get("tags") == ["admin"]:
            assert "403" in statuses, f"{where}: admin endpoints answer 403 to non-staff"
        if "requestBody" in op:
            assert {"400", "415"} <= statuses, f"{where}: a body can be malformed"
        for name in re.findall(r"{(\w+)}", path):
            declared = [pointer(SPEC, p["$ref"]) if "$ref" in p else p
                        for p in SPEC["paths"][path].get("parameters", []) + op.get("parameters", [])]
            assert any(p["in"] == "path" and p["name"] == name for p in declared), \
                f"{where}: path parameter {name} not declared"
    login_429 = response_definition("POST", "/api/auth/login/", 429)
    assert login_429["headers"]["Retry-After"]["required"] is True


def router_routes():
    """(METHOD, path) of every r.add(Method::x, "path", ...) in the REST handlers."""
    routes = set()
    for source in glob.glob(os.path.join(ROOT, "src", "http", "handlers", "*_handlers.cpp")):
        with open(source, encoding="utf-8") as f:
            text = f.read()
        for method, path in re.findall(r'r\.add\(\s*Method::(\w+)\s*,\s*"([^"]+)"', text):
            routes.add(({"del": "DELETE"}.get(method, method.upper()), path))
    return routes


def test_the_paths_are_the_routers():
    routes = router_routes()
    if not routes:
        pytest.skip("the server's sources (src/http/handlers) are not here")
    documented = {(m.upper(), p) for p, m, _ in operations()}
    missing = routes - documented
    assert not missing, f"routes the document lacks: {sorted(missing)}"
    extra = {(m.upper(), p) for p, m, op in operations()
             if not set(op.get("tags", [])) & NOT_ROUTER_TAGS} - routes
    assert not extra, f"documented REST operations the router does not register: {sorted(extra)}"


def test_the_asyncapi_document_matches_the_websocket_protocol():
    """api/asyncapi.json: both sockets, every event of API.md with the REST replay's fields,
    the handshake refusals and the close codes. (Redocly lints its structure.)"""
    with open(os.path.join(ROOT, "api", "asyncapi.json"), encoding="utf-8") as f:
        doc = json.load(f)
    assert doc["asyncapi"].startswith("3.0")

    def types_of(channel, prefix):
        out = set()
        for name, ref in channel["messages"].items():
            if name.startswith(prefix):
                payload = pointer(doc, pointer(doc, ref["$ref"])["payload"]["$ref"])
                out.add(payload["properties"]["type"]["const"])
        return out

    channels = {c["address"]: c for c in doc["channels"].values()}
    assert set(channels) == {"/ws/chat/{chat_id}/", "/ws/"}
    logged = {"message", "edit", "delete", "read", "delivered", "pin", "unpin", "chat_created",
              "chat_updated", "chat_deleted", "member_added", "member_removed", "member_updated"}
    client = {"message", "typing", "read", "forward", "edit", "delete", "pin", "unpin", "ping"}
    user_socket = channels["/ws/"]
    assert types_of(user_socket, "server_") == logged | {
        "typing", "user_status", "unread", "pong", "error", "synced", "resync_required"}
    assert types_of(channels["/ws/chat/{chat_id}/"], "server_") == (logged - {"chat_created"}) | {
        "typing", "user_status", "pong", "error"}
    for channel in channels.values():
        assert types_of(channel, "client_") == client
        assert {"1001", "1008", "1009", "1013", "4003"} <= set(channel["x-close-codes"])
        assert {"401", "403", "404"} <= set(channel["x-handshake-responses"])
    assert "since" in user_socket["bindings"]["ws"]["query"]["properties"]
    schemes = doc["components"]["securitySchemes"]
    assert {(s["type"], s.get("in")) for s in schemes.values()} == {
        ("httpApiKey", "query"), ("http", None), ("httpApiKey", "header")}

    # The logged events have the fields of GET /api/events/ (where `seq` is always present).
    async_schemas = doc["components"]["schemas"]
    for name in pointer(SPEC, "#/components/schemas/Event")["discriminator"]["mapping"].values():
        rest = pointer(SPEC, name)
        ws = async_schemas[name.rsplit("/", 1)[1]]
        assert set(ws["properties"]) == set(rest["properties"]), name
        assert set(ws["required"]) == set(rest["required"]) - {"seq"}, name
    # Every example in it is valid against its own schema.
    for name, schema in async_schemas.items():
        inlined = inline_refs(schema, doc)
        for example in schema.get("examples", []):
            jsonschema.Draft202012Validator(inlined).validate(example)


# ---- exercising the server ----------------------------------------------------------------------

def test_generic_errors(api):
    """On every REST operation: a Host outside ALLOWED_HOSTS is a 400, no token a 401 (where
    one is needed) and a body that is neither JSON nor a form a 415 (where a body is read).
    On an object the caller cannot see (ids of 1, a newcomer) the 404 comes first, or on the
    admin's the 403 of a non-staff caller: DRF's detail views look the object up, and check
    permissions, before they read the body."""
    token = api.register()["access"]
    for path, method, op in operations():
        if set(op.get("tags", [])) & NOT_ROUTER_TAGS or path in PROBES:
            continue
        ids = {name: 1 for name in re.findall(r"{(\w+)}", path)}
        api.call(method.upper(), path, 400, params=ids, headers={"Host": "evil.example"})
        if op.get("security") != []:
            api.call(method.upper(), path, 401, params=ids)
        if "requestBody" in op:
            expect = 415 if not ids else 403 if path.startswith("/api/admin/") else 404
            api.call(method.upper(), path, expect,
                     token=token if op.get("security") != [] else None,
                     params=ids, data="x", headers={"Content-Type": "text/plain"})
    finished("test_generic_errors")


def test_auth(api):
    ann = api.register()
    assert set(ann) == {"user", "access", "refresh", "password"}
    name = ann["user"]["username"]
    # Duplicate (case-insensitive), invalid fields, malformed and unsupported bodies.
    dup = api.post("/api/auth/register/", 400,
                   json={"username": name.upper(), "email": "x@example.com", "password": "another-pass-1"})
    assert "username" in dup
    bad = api.post("/api/auth/register/", 400,
                   json={"username": "bad name!", "email": "nope", "password": "1234"})
    assert set(bad) == {"username", "email", "password"}
    api.post("/api/auth/register/", 400, data="{not json",
             headers={"Content-Type": "application/json"})
    api.post("/api/auth/register/", 400, json=[1, 2])
    api.post("/api/auth/register/", 415, data="hello", headers={"Content-Type": "text/plain"})
    # Fields DRF's serializers do not know are ignored, as the request schemas allow.
    other = unique_name("oax")
    api.post("/api/auth/register/", 201, json={"username": other, "email": f"{other}@example.com",
                                               "password": "correct-horse-1", "is_staff": True})

    tokens = api.post("/api/auth/login/", 200, json={"username": name, "password": ann["password"]})
    assert set(tokens) == {"access", "refresh"}
    api.post("/api/auth/login/", 401, json={"username": name, "password": "wrong-password"})
    api.post("/api/auth/login/", 400, json={"username": name})
    api.post("/api/auth/login/", 415, data="x", headers={"Content-Type": "text/csv"})

    assert set(api.post("/api/auth/refresh/", 200, json={"refresh": tokens["refresh"]})) == {"access"}
    api.post("/api/auth/refresh/", 401, json={"refresh": "not.a.token"})
    api.post("/api/auth/refresh/", 401, json={"refresh": tokens["access"]})  # wrong type
    api.post("/api/auth/refresh/", 400, json={})
    api.post("/api/auth/refresh/", 415, data="x", headers={"Content-Type": "text/plain"})

    assert api.post("/api/auth/logout/", 205, json={"refresh": tokens["refresh"]}) is None
    api.post("/api/auth/logout/", 401, json={"refresh": tokens["refresh"]})  # already revoked
    api.post("/api/auth/refresh/", 401, json={"refresh": tokens["refresh"]})
    api.post("/api/auth/logout/", 400, json={"refresh": None})
    api.post("/api/auth/logout/", 415, data="x", headers={"Content-Type": "text/plain"})
    finished("test_auth")


def test_throttling_and_rotation(make_server):
    s = make_server(LOGIN_FAILURES_PER_USER=2, ROTATE_REFRESH_TOKENS=1,
                    REGISTER_THROTTLE_RATE="2/hour")
    api = Api(Client(s))
    ann = api.register()
    name = ann["user"]["username"]
    for _ in range(2):
        api.post("/api/auth/login/", 401, json={"username": name, "password": "wrong-password"})
    throttled = api.post("/api/auth/login/", 429, json={"username": name, "password": "wrong-password"})
    assert "throttled" in throttled["detail"]
    # A wrong current password counts as a failed login too.
    api.patch("/api/users/me/", 429, token=ann["access"],
              json={"email": "new@example.com", "current_password": "wrong-password"})
    # Registration: 2 an hour from one address with this setting.
    api.register()
    api.post("/api/auth/register/", 429, json={"username": unique_name("oa"), "email": "t@example.com",
                                               "password": "correct-horse-1"})
    # With rotation, refreshing answers a new refresh token and revokes the old one.
    rotated = api.post("/api/auth/refresh/", 200, json={"refresh": ann["refresh"]})
    assert set(rotated) == {"access", "refresh"}
    api.post("/api/auth/refresh/", 401, json={"refresh": ann["refresh"]})
    finished("test_throttling_and_rotation")


def test_users(api):
    prefix = unique_name("oau")
    ann = api.register(prefix + "a")
    bob = api.register(prefix + "b")
    token = ann["access"]
    me = api.get("/api/users/me/", 200, token=token)
    assert me["username"] == ann["user"]["username"]
    api.get("/api/users/me/", 401)
    bad = api.get("/api/users/me/", 401, token="not-a-jwt")
    assert bad["code"] == "token_not_valid" and bad["messages"]
    api.get("/api/users/me/", 401, headers={"Authorization": "Bearer two parts"})
    api.get("/api/users/me/", 400, token=token, headers={"Host": "evil.example"})

    api.patch("/api/users/me/", 200, token=token, json={})
    api.patch("/api/users/me/", 200, token=token)
    unchanged = api.patch("/api/users/me/", 200, token=token, json={"username": "someone-else"})
    assert unchanged["username"] == ann["user"]["username"]
    changed = api.patch("/api/users/me/", 200, token=token,
                        json={"email": "changed@example.com", "current_password": ann["password"]})
    assert changed["email"] == "changed@example.com"
    api.put("/api/users/me/", 200, token=token,
            json={"email": "ann2@example.com", "current_password": ann["password"]})
    missing = api.patch("/api/users/me/", 400, token=token, json={"email": "x@example.com"})
    assert "current_password" in missing
    api.patch("/api/users/me/", 400, token=token,
              json={"email": "x@example.com", "current_password": "wrong-password"})
    api.patch("/api/users/me/", 400, token=token,
              json={"password": "123456789", "current_password": ann["password"]})
    api.put("/api/users/me/", 400, token=token, json={"password": "short"})

    page = api.get("/api/users/", 200, token=token, query=f"?search={prefix.upper()}&limit=1")
    assert page["count"] == 2 and page["next"] and page["previous"] is None
    page = api.get("/api/users/", 200, token=token, query=f"?search={prefix}&limit=1&offset=1")
    assert page["previous"] is not None and page["next"] is None
    api.get("/api/users/", 200, token=token)
    api.get("/api/users/", 401)
    api.get("/api/users/", 400, token=token, headers={"Host": "evil.example"})
    assert "search" in api.get("/api/users/", 400, token=token, query="?search=%00")

    other = api.get("/api/users/{id}/", 200, token=token, params={"id": bob["user"]["id"]})
    assert "email" not in other
    api.get("/api/users/{id}/", 404, token=token, params={"id": NO_SUCH_ID})
    api.get("/api/users/{id}/", 401, params={"id": bob["user"]["id"]})
    finished("test_users")


def test_chats_and_members(api):
    ann, bob, cat, dan = (api.register() for _ in range(4))
    A, B, C = ann["access"], bob["access"], cat["access"]
    bid, cid, did = bob["user"]["id"], cat["user"]["id"], dan["user"]["id"]

    private = api.post("/api/chats/", 201, token=A, json={"type": "private", "member_ids": [bid]})
    again = api.post("/api/chats/", 200, token=B,
                     json={"type": "private", "member_ids": [ann["user"]["id"]]})
    assert again["id"] == private["id"]
    group = api.post("/api/chats/", 201, token=A,
                     json={"type": "group", "name": "Team", "member_ids": [bid]})
    api.post("/api/chats/", 400, token=A, json={"type": "channel"})
    api.post("/api/chats/", 400, token=A, json={"type": "group", "member_ids": [bid]})
    api.post("/api/chats/", 400, token=A, json={"type": "private", "member_ids": [NO_SUCH_ID]})
    api.post("/api/chats/", 415, token=A, data="x", headers={"Content-Type": "text/plain"})
    api.post("/api/chats/", 401, json={"type": "private", "member_ids": [bid]})

    chats = api.get("/api/chats/", 200, token=A)
    assert {c["id"] for c in chats} >= {private["id"], group["id"]}
    api.get("/api/chats/", 401)
    api.get("/api/chats/", 400, token=A, headers={"Host": "evil.example"})
    gid, pid = {"id": group["id"]}, {"id": private["id"]}
    api.get("/api/chats/{id}/", 200, token=B, params=gid)
    api.get("/api/chats/{id}/", 404, token=C, params=gid)  # not a member: as missing
    api.get("/api/chats/{id}/", 404, token=A, params={"id": NO_SUCH_ID})
    api.get("/api/chats/{id}/", 401, params=gid)

    assert api.patch("/api/chats/{id}/", 200, token=A, params=gid, json={"name": "Renamed"})["name"] == "Renamed"
    api.put("/api/chats/{id}/", 200, token=A, params=gid, json={"name": "Team"})
    api.patch("/api/chats/{id}/", 403, token=B, params=gid, json={"name": "Mine"})
    api.patch("/api/chats/{id}/", 403, token=A, params=pid, json={"name": "Private"})
    api.patch("/api/chats/{id}/", 400, token=A, params=gid, json={"name": ""})
    api.put("/api/chats/{id}/", 400, token=A, params=gid, json={})
    api.patch("/api/chats/{id}/", 404, token=C, params=gid, json={"name": "x"})
    api.put("/api/chats/{id}/", 403, token=B, params=gid, json={"name": "Mine"})
    api.put("/api/chats/{id}/", 404, token=C, params=gid, json={"name": "x"})
    api.put("/api/chats/{id}/", 415, token=A, params=gid, data="x", headers={"Content-Type": "text/plain"})
    api.patch("/api/chats/{id}/", 401, params=gid, json={"name": "x"})

    members = "/api/chats/{id}/members/"
    added = api.post(members, 201, token=A, params=gid, json={"user_id": cid})
    assert added == {"id": cid, "username": cat["user"]["username"], "role": "member"}
    api.post(members, 201, token=A, params=gid, json={"user_id": did, "role": "admin"})
    api.post(members, 403, token=B, params=gid, json={"user_id": did})
    api.post(members, 400, token=A, params=gid, json={"user_id": cid})  # already a member
    api.post(members, 400, token=A, params=gid, json={"user_id": NO_SUCH_ID})
    api.post(members, 400, token=A, params=gid, json={"role": "owner", "user_id": cid})
    api.post(members, 403, token=A, params=pid, json={"user_id": cid})  # private chat
    api.post(members, 404, token=C, params=pid, json={"user_id": cid})
    api.post(members, 415, token=A, params=gid, data="x", headers={"Content-Type": "text/plain"})
    api.post(members, 401, params=gid, json={"user_id": cid})

    member = "/api/chats/{id}/members/{user_id}/"
    gm = lambda uid: {"id": group["id"], "user_id": uid}  # noqa: E731
    assert api.patch(member, 200, token=A, params=gm(cid), json={"role": "admin"})["role"] == "admin"
    api.patch(member, 200, token=A, params=gm(cid), json={"role": "member"})
    api.patch(member, 403, token=B, params=gm(cid), json={"role": "admin"})
    api.patch(member, 400, token=A, params=gm(ann["user"]["id"]), json={"role": "member"})  # owner
    api.patch(member, 400, token=A, params=gm(cid), json={"role": "boss"})
    assert api.patch(member, 200, token=A, params=gm(cid), json={})["role"] == "member"  # partial
    api.patch(member, 404, token=A, params=gm(NO_SUCH_ID), json={"role": "admin"})
    api.patch(member, 404, token=C, params={"id": private["id"], "user_id": bid}, json={"role": "admin"})
    api.patch(member, 415, token=A, params=gm(cid), data="x", headers={"Content-Type": "text/plain"})
    api.patch(member, 401, params=gm(cid), json={"role": "admin"})

    api.delete(member, 403, token=B, params=gm(cid))  # a member removes another
    api.delete(member, 403, token=A, params={"id": private["id"], "user_id": bid})
    api.delete(member, 404, token=A, params=gm(NO_SUCH_ID))
    api.delete(member, 404, token=C, params={"id": private["id"], "user_id": bid})
    api.delete(member, 401, params=gm(cid))
    assert api.delete(member, 204, token=A, params=gm(cid)) is None
    api.delete(member, 204, token=B, params=gm(bid))  # leave

    read = "/api/chats/{id}/read/"
    assert api.post(read, 200, token=A, params=gid, json={"last_read_message_id": 0}) == {"unread_count": 0}
    api.post(read, 400, token=A, params=gid, json={"last_read_message_id": -1})
    api.post(read, 400, token=A, params=gid, json={})
    api.post(read, 404, token=C, params=gid, json={"last_read_message_id": 0})
    api.post(read, 415, token=A, params=gid, data="x", headers={"Content-Type": "text/plain"})
    api.post(read, 401, params=gid, json={"last_read_message_id": 0})

    api.delete("/api/chats/{id}/", 403, token=dan["access"], params=gid)  # an admin, not the owner
    api.delete("/api/chats/{id}/", 404, token=C, params=gid)
    api.delete("/api/chats/{id}/", 401, params=gid)
    api.delete("/api/chats/{id}/", 400, token=A, params=gid, headers={"Host": "evil.example"})
    api.delete("/api/chats/{id}/", 204, token=A, params=gid)
    api.get("/api/chats/{id}/", 404, token=A, params=gid)
    api.delete("/api/chats/{id}/", 204, token=B, params=pid)  # either member of a private chat
    finished("test_chats_and_members")


def test_messages_pins_and_events(api):
    ann, bob, cat = (api.register() for _ in range(3))
    A, B, C = ann["access"], bob["access"], cat["access"]
    bid, cid = bob["user"]["id"], cat["user"]["id"]
    start = api.get("/api/events/", 200, token=B, params=None)["seq"]
    private = api.post("/api/chats/", 201, token=A, json={"type": "private", "member_ids": [bid]})
    group = api.post("/api/chats/", 201, token=A,
                     json={"type": "group", "name": "Team", "member_ids": [bid, cid]})
    api.patch("/api/chats/{id}/members/{user_id}/", 200, token=A,
              params={"id": group["id"], "user_id": cid}, json={"role": "admin"})
    # A group that stays: a deleted chat's earlier events leave its former members' log.
    lasting = api.post("/api/chats/", 201, token=A, json={"type": "group", "name": "Stays",
                                                          "member_ids": [bid]})
    L = {"id": lasting["id"]}
    api.patch("/api/chats/{id}/", 200, token=A, params=L, json={"name": "Still here"})
    api.post("/api/chats/{id}/members/", 201, token=A, params=L, json={"user_id": cid})
    api.patch("/api/chats/{id}/members/{user_id}/", 200, token=A,
              params={**L, "user_id": cid}, json={"role": "admin"})
    api.delete("/api/chats/{id}/members/{user_id}/", 204, token=A, params={**L, "user_id": cid})
    P, G = private["id"], group["id"]

    # Sending.
    hello = api.post("/api/messages/", 201, token=A, json={"chat": P, "text": " Hello ", "client_id": "c-1"})
    assert hello["text"] == "Hello" and hello["client_id"] == "c-1" and hello["status"] == "sent"
    assert api.post("/api/messages/", 200, token=A, json={"chat": P, "text": "Hello", "client_id": "c-1"})["id"] == hello["id"]
    reply = api.post("/api/messages/", 201, token=B, json={"chat": P, "text": "Hi Ann, world news"})
    in_group = api.post("/api/messages/", 201, token=B, json={"chat": G, "text": "Group hello"})
    api.post("/api/messages/", 400, token=A, json={"chat": P, "text": "   "})
    api.post("/api/messages/", 400, token=A, json={"chat": P, "text": "x" * 4097})
    api.post("/api/messages/", 400, token=A, json={"chat": P, "text": "x", "client_id": "c" * 65})
    api.post("/api/messages/", 400, token=A, json={"text": "no chat"})
    api.post("/api/messages/", 404, token=C, json={"chat": P, "text": "not a member"})
    api.post("/api/messages/", 415, token=A, data="x", headers={"Content-Type": "text/plain"})
    api.post("/api/messages/", 401, json={"chat": P, "text": "x"})

    # History.
    newest = api.get("/api/messages/", 200, token=A, query=f"?chat={P}&limit=1")
    assert newest["has_more"] is True and newest["results"][0]["id"] == reply["id"]
    for query in (f"?chat={P}", f"?chat={P}&before={reply['id']}", f"?chat={P}&after=0&limit=200"):
        api.get("/api/messages/", 200, token=A, query=query)
    api.get("/api/messages/", 200, token=C, query=f"?chat={G}")
    for query in ("", f"?chat={P}&limit=0", f"?chat={P}&limit=201", f"?chat={P}&before=x"):
        api.get("/api/messages/", 400, token=C, query=query)
    api.get("/api/messages/", 404, token=C, query=f"?chat={P}")
    api.get("/api/messages/", 401, query=f"?chat={P}")

    # Search.
    search = "/api/messages/search/"
    hits = api.get(search, 200, token=A, query="?q=wor")
    assert [m["id"] for m in hits["results"]] == [reply["id"]]
    api.get(search, 200, token=A, query=f"?q=ANN+news&chat={P}&limit=5")
    for query in ("", "?q=!!!", "?q=x&limit=0"):
        api.get(search, 400, token=A, query=query)
    api.get(search, 404, token=C, query=f"?q=x&chat={P}")
    api.get(search, 401, query="?q=x")

    # Editing.
    one = "/api/messages/{id}/"
    mid = {"id": hello["id"]}
    edited = api.patch(one, 200, token=A, params=mid, json={"text": "Hello there"})
    assert edited["is_edited"] and edited["edited_at"]
    api.put(one, 200, token=A, params=mid, json={"text": "Hello again"})
    api.patch(one, 403, token=B, params=mid, json={"text": "not mine"})
    api.patch(one, 400, token=A, params=mid, json={"text": ""})
    api.put(one, 400, token=A, params=mid, json={})
    api.patch(one, 404, token=C, params=mid, json={"text": "x"})
    api.patch(one, 404, token=A, params={"id": NO_SUCH_ID}, json={"text": "x"})
    api.put(one, 403, token=B, params=mid, json={"text": "not mine"})
    api.put(one, 404, token=C, params=mid, json={"text": "x"})
    api.patch(one, 415, token=A, params=mid, data="x", headers={"Content-Type": "text/plain"})
    api.put(one, 401, params=mid, json={"text": "x"})

    # Forwarding.
    fwd = "/api/messages/{id}/forward/"
    forwarded = api.post(fwd, 201, token=A, params=mid, json={"target_chat_id": G})
    assert forwarded["forwarded_from"] == hello["id"] and forwarded["chat"] == G
    again = api.post(fwd, 201, token=B, params={"id": forwarded["id"]}, json={"target_chat_id": P})
    assert again["forwarded_from"] == hello["id"]
    api.post(fwd, 404, token=C, params={"id": in_group["id"]}, json={"target_chat_id": P})
    api.post(fwd, 404, token=C, params=mid, json={"target_chat_id": G})
    api.post(fwd, 400, token=A, params=mid, json={})
    api.post(fwd, 415, token=A, params=mid, data="x", headers={"Content-Type": "text/plain"})
    api.post(fwd, 401, params=mid, json={"target_chat_id": G})

    # Pins.
    pins = "/api/pinned/"
    pin = api.post(pins, 201, token=B, json={"message_id": hello["id"]})  # any member of a private chat
    assert api.post(pins, 200, token=A, json={"message_id": hello["id"]})["id"] == pin["id"]
    group_pin = api.post(pins, 201, token=A, json={"message_id": in_group["id"]})
    api.post(pins, 403, token=B, json={"message_id": in_group["id"]})  # a group member
    api.post(pins, 404, token=C, json={"message_id": hello["id"]})
    api.post(pins, 400, token=A, json={"message_id": "x"})
    api.post(pins, 415, token=A, data="x", headers={"Content-Type": "text/plain"})
    api.post(pins, 401, json={"message_id": hello["id"]})
    assert [p["id"] for p in api.get(pins, 200, token=A, query=f"?chat={P}")] == [pin["id"]]
    api.get(pins, 200, token=C, query=f"?chat={G}")
    api.get(pins, 400, token=A)
    api.get(pins, 400, token=A, query="?chat=x")
    api.get(pins, 404, token=C, query=f"?chat={P}")
    api.get(pins, 401, query=f"?chat={P}")
    api.delete("/api/pinned/{id}/", 403, token=B, params={"id": group_pin["id"]})
    api.delete("/api/pinned/{id}/", 404, token=C, params={"id": pin["id"]})
    api.delete("/api/pinned/{id}/", 401, params={"id": pin["id"]})
    api.delete("/api/pinned/{id}/", 204, token=A, params={"id": pin["id"]})
    api.delete("/api/pinned/{id}/", 404, token=A, params={"id": pin["id"]})

    # Reading, then deleting.
    api.post("/api/chats/{id}/read/", 200, token=A, params={"id": P},
             json={"last_read_message_id": reply["id"]})
    api.delete(one, 400, token=A, params=mid, query="?for=someone")
    api.delete(one, 403, token=A, params={"id": reply["id"]})  # not the sender, private chat
    api.delete(one, 204, token=A, params={"id": reply["id"]}, query="?for=me")
    api.delete(one, 404, token=A, params={"id": reply["id"]})  # hidden for the caller now
    api.delete(one, 204, token=A, params={"id": in_group["id"]})  # group owner: for everyone
    api.delete(one, 204, token=A, params=mid)
    api.delete(one, 401, params=mid)
    api.patch(one, 400, token=A, params=mid, json={"text": "edit a deleted message"})
    api.post(fwd, 400, token=A, params=mid, json={"target_chat_id": G})
    api.post(pins, 400, token=A, json={"message_id": hello["id"]})
    deleted = api.get("/api/messages/", 200, token=B, query=f"?chat={P}")["results"]
    assert any(m["id"] == hello["id"] and m["is_deleted"] and m["text"] == "" for m in deleted)

    # Membership changes and a chat deletion, for the log.
    api.delete("/api/chats/{id}/members/{user_id}/", 204, token=A, params={"id": G, "user_id": bid})
    api.post("/api/chats/{id}/members/", 201, token=A, params={"id": G}, json={"user_id": bid})
    api.delete("/api/chats/{id}/", 204, token=A, params={"id": G})

    # An edit that stays in the log: `hello`'s edits go when it is deleted above (the delete
    # supersedes them).
    kept = api.post("/api/messages/", 201, token=A, json={"chat": P, "text": "to be edited"})
    assert api.patch(one, 200, token=A, params={"id": kept["id"]}, json={"text": "edited, kept"})["is_edited"]

    # The event log, paged.
    events, since, pages = [], start, 0
    while True:
        body = api.get("/api/events/", 200, token=B, query=f"?since={since}&limit=3")
        assert body["resync_required"] is False
        events += body["results"]
        since, pages = body["seq"], pages + 1
        if not body["has_more"]:
            break
    assert pages > 1
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs))
    types = {e["type"] for e in events}
    expected = {"chat_created", "chat_updated", "chat_deleted", "member_added", "member_removed",
                "member_updated", "message", "edit", "delete", "read", "pin", "unpin"}
    assert expected <= types, f"event types not seen: {expected - types}"
    # `delivered` follows a history fetch of someone else's message; `for_me` deletes are
    # the caller's own.
    own = api.get("/api/events/", 200, token=A)
    assert any(e["type"] == "delete" and e.get("for_me") for e in own["results"])
    everything = api.get("/api/events/", 200, token=A, query=f"?since={start}&limit=1000")
    assert "delivered" in {e["type"] for e in everything["results"]}
    for query in ("?since=-1", "?limit=0", "?limit=1001", "?since=x"):
        api.get("/api/events/", 400, token=B, query=query)
    api.get("/api/events/", 401)
    finished("test_messages_pins_and_events")


def test_probes(api):
    assert api.get("/healthz", 200) == {"status": "ok"}
    assert api.get("/readyz", 200)["status"] == "ok"
    finished("test_probes")


def test_every_rest_operation_was_exercised():
    missing = [name for name in TOUR if name not in FINISHED]
    if missing:
        pytest.skip(f"needs the whole module run ({', '.join(missing)} did not finish)")
    not_seen = []
    for path, method, op in operations():
        if set(op.get("tags", [])) & NOT_ROUTER_TAGS:
            continue
        documented = {int(s) for s in op["responses"]}
        success = {s for s in documented if s < 300}
        seen = {s for (m, p, s) in SEEN if (m, p) == (method.upper(), path)}
        if not seen & success:
            not_seen.append(f"{method.upper()} {path} (no success seen)")
        for must in (400, 401, 403, 404):
            if must in documented and must not in seen:
                not_seen.append(f"{method.upper()} {path} {must}")
    assert not not_seen, "documented but never exercised:\n" + "\n".join(not_seen)


# ---- admin endpoints ----------------------------------------------------------------------

def create_superuser(server, username, password):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **server.db.env, "SECRET_KEY": SECRET_KEY}
    r = subprocess.run([CHATD, "createsuperuser", "--noinput", "--username", username,
                        "--email", f"{username}@example.com", "--password", password],
                       env=env, cwd=tempfile.mkdtemp(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_admin_endpoints(server, api, client):
    probe = client.get("/api/admin/stats/")
    if probe.status_code == 404:
        pytest.skip("the admin API is not implemented in this binary (GET /api/admin/stats/ is 404)")
    staff_name = unique_name("staff")
    create_superuser(server, staff_name, "staff-pass-12")
    S = api.post("/api/auth/login/", 200, json={"username": staff_name, "password": "staff-pass-12"})["access"]
    ann, bob = api.register(), api.register()
    A = ann["access"]
    forbidden = {"detail": "You do not have permission to perform this action."}

    every = [("GET", "/api/admin/stats/", {}), ("GET", "/api/admin/users/", {}),
             ("GET", "/api/admin/users/{id}/", {"id": bob["user"]["id"]}),
             ("GET", "/api/admin/chats/", {}), ("GET", "/api/admin/messages/", {})]
    for method, template, params in every:
        api.call(method, template, 401, params=params)
        assert api.call(method, template, 403, token=A, params=params) == forbidden

    stats = api.get("/api/admin/stats/", 200, token=S)
    assert stats["users_total"] >= 3

    # Users: search by prefix (case-insensitive), inactive ones included.
    found = api.get("/api/admin/users/", 200, token=S,
                    query=f"?search={bob['user']['username'].upper()}&limit=5")
    assert [u["username"] for u in found["results"]] == [bob["user"]["username"]]
    page = api.get("/api/admin/users/", 200, token=S)
    assert page["count"] >= 3
    bob_id = {"id": bob["user"]["id"]}
    assert api.get("/api/admin/users/{id}/", 200, token=S, params=bob_id)["is_active"] is True
    api.get("/api/admin/users/{id}/", 404, token=S, params={"id": NO_SUCH_ID})
    api.patch("/api/admin/users/{id}/", 400, token=S, params=bob_id, json={"is_active": "maybe"})
    api.patch("/api/admin/users/{id}/", 415, token=S, params=bob_id, data="x",
              headers={"Content-Type": "text/plain"})
    api.patch("/api/admin/users/{id}/", 404, token=S, params={"id": NO_SUCH_ID}, json={"is_active": False})
    api.patch("/api/admin/users/{id}/", 403, token=A, params=bob_id, json={"is_active": False})
    api.patch("/api/admin/users/{id}/", 401, params=bob_id, json={"is_active": False})
    off = api.patch("/api/admin/users/{id}/", 200, token=S, params=bob_id, json={"is_active": False})
    assert off["is_active"] is False
    api.get("/api/users/me/", 401, token=bob["access"])
    api.post("/api/auth/refresh/", 401, json={"refresh": bob["refresh"]})
    found = api.get("/api/admin/users/", 200, token=S, query=f"?search={bob['user']['username']}")
    assert [u["is_active"] for u in found["results"]] == [False]
    on = api.patch("/api/admin/users/{id}/", 200, token=S, params=bob_id,
                   json={"is_active": True, "is_staff": True})
    assert on["is_active"] and on["is_staff"]
    api.get("/api/admin/stats/", 200, token=S)
    api.patch("/api/admin/users/{id}/", 200, token=S, params=bob_id, json={"is_staff": False})
    assert api.patch("/api/admin/users/{id}/", 200, token=S, params=bob_id)["is_staff"] is False

    # Chats and messages.
    bob_token = api.post("/api/auth/login/", 200,
                         json={"username": bob["user"]["username"], "password": bob["password"]})["access"]
    chat = api.post("/api/chats/", 201, token=A, json={"type": "group", "name": unique_name("room"),
                                                       "member_ids": [bob["user"]["id"]]})
    words = unique_name("word")
    first = api.post("/api/messages/", 201, token=A, json={"chat": chat["id"], "text": f"{words} one"})
    second = api.post("/api/messages/", 201, token=bob_token, json={"chat": chat["id"], "text": "two"})
    found = api.get("/api/admin/chats/", 200, token=S, query=f"?search={chat['name']}")
    listed = [c for c in found["results"] if c["id"] == chat["id"]]
    assert listed and listed[0]["member_count"] == 2 and listed[0]["message_count"] == 2
    api.get("/api/admin/chats/", 200, token=S)
    detail = api.get("/api/admin/chats/{id}/", 200, token=S, params={"id": chat["id"]})
    assert {m["id"] for m in detail["members"]} == {ann["user"]["id"], bob["user"]["id"]}
    assert detail["last_message_id"] == second["id"]
    api.get("/api/admin/chats/{id}/", 404, token=S, params={"id": NO_SUCH_ID})
    api.get("/api/admin/chats/{id}/", 403, token=A, params={"id": chat["id"]})

    api.delete("/api/admin/messages/{id}/", 403, token=A, params={"id": first["id"]})
    api.delete("/api/admin/messages/{id}/", 401, params={"id": first["id"]})
    api.delete("/api/admin/messages/{id}/", 404, token=S, params={"id": NO_SUCH_ID})
    api.delete("/api/admin/messages/{id}/", 204, token=S, params={"id": first["id"]})
    for query in (f"?chat={chat['id']}", f"?chat={chat['id']}&before={second['id']}&limit=1",
                  f"?q={words[:8]}", "?limit=2"):
        api.get("/api/admin/messages/", 200, token=S, query=query)
    found = api.get("/api/admin/messages/", 200, token=S, query=f"?chat={chat['id']}")
    by_id = {m["id"]: m for m in found["results"]}
    assert list(by_id) == [second["id"], first["id"]]  # newest first
    assert by_id[first["id"]]["is_deleted"] is True and by_id[first["id"]]["text"] == ""
    api.get("/api/admin/messages/", 400, token=S, query="?limit=0")


# ---- the served documents ----------------------------------------------------------------------

def served_document(client, path, local):
    r = client.get(path)
    if r.status_code == 404:
        pytest.skip(f"{path} is not served by this binary yet (404)")
    assert r.status_code == 200, r.text[:500]
    assert r.headers["Content-Type"].startswith("application/json")
    with open(os.path.join(ROOT, "api", local), encoding="utf-8") as f:
        assert r.json() == json.load(f), f"{path} differs from api/{local}"


def test_the_server_serves_this_schema(client):
    served_document(client, "/api/schema/", "openapi.json")


def test_the_server_serves_the_asyncapi_document(client):
    served_document(client, "/api/asyncapi/", "asyncapi.json")
