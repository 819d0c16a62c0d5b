"""The bad input table: every REST operation the server's own OpenAPI document (/api/schema/)
lists, every WebSocket client event on both socket kinds, and the WebSocket handshake, each
fed a generated set of malformed inputs. API.md: "No 5xx for any bad input"; a bad event
gets an `error` event and the socket stays open.

Mutations (generated from the schema's field types, required lists, maxLength, enum,
pattern and minimum, so a new field or endpoint is covered without editing this file):
each required field missing; extra unknown fields (mass assignment included); each field
as a string, int, float, bool, list, object and null; huge numbers (2**63, -2**63-1,
10**40, 1e999); huge strings (past maxLength, 1 MB inside MAX_BODY_BYTES, a body past it);
NUL, lone surrogates and invalid UTF-8 bytes; JSON nested 10,000 levels deep; SQL and HTML
metacharacters; path ids that are not numbers, negative, zero or huge; and the ids of
other users' chats, messages and pins.

Expectations per case:
  reject   400..499 (REST) / an `error` event (WS);
  either   2xx or 4xx / nothing or an `error` event: values a lenient parser may coerce
           (DRF turns 7 into "7" for a CharField), unknown fields, odd but valid text;
  hidden   404 exactly / `not_found`: an object of a chat the caller is not in;
  ok       2xx / no error: the unmutated request, proving each mutation changes a valid
           request into a bad one.
Always: never 5xx, never a dropped connection; a 4xx body has DRF's shape ({"detail": str}
or {field: [str, ...]}); an answer never contains another user's chat text; an accepted
string is stored verbatim; an error event has exactly type/code/detail/request_type and the
socket still answers a ping after it.

WebSocket frames that are not valid WebSocket messages are a different matter: a text frame
whose payload is not UTF-8 must be failed with close 1007 (RFC 6455 sections 5.6 and 8.1);
API.md's "the socket stays open" is about events, i.e. well-formed messages with bad
content, so invalid UTF-8 inside a binary frame gets an error event instead. A frame over
the size limit closes with 1009 (API.md, "Limits"). Both are checked on sockets of their
own; the table's sockets live through every other case.

One server (settings below) and two sockets serve the whole table; the run prints the
number of cases per endpoint and event, and records the totals with figures.record."""
import asyncio
import collections
import json
import os
import re
import struct
import time
import uuid
from urllib.parse import quote

import pytest
import requests
import websockets

import figures
from conftest import Client, Server, client_frame, assert_no_server_errors, unique_name
from test_openapi import create_superuser
from test_websocket import (ERROR_KEYS, connect, group_chat, private_chat, read_raw_frames, rest_send, run,
                            uid, uname)

STAFF_PASSWORD = "staff-pass-12"
BOGUS = 987_654_321_987  # an id that never exists
HUGE_INTS = [2 ** 63, -2 ** 63 - 1, 10 ** 40]
ONE_MB = 1_000_000  # a string this long fits the default MAX_BODY_BYTES (1 MiB) with its JSON
DEFAULT_MAX_BODY = 1024 * 1024
WS_MAX_FRAME = 64 * 1024  # API.md's default frame limit
DEPTH = 10_000
ERROR_CODES = {"validation", "bad_request", "forbidden", "not_found"}

SQL = ["' OR '1'='1", "1; DROP TABLE users; --", "\" OR \"\"=\"", "') OR 1=1 --",
       "x' UNION SELECT username, password FROM users --", "%' AND 1=1 --", "\\'; SELECT 1; --"]
HTML = ["<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>", "{{7*7}}${7*7}#{7*7}",
        "&lt;b&gt;&amp;&#0;", "javascript:alert(document.cookie)"]
ODD_TEXT = ["\u202eevil\u202c", "\U0001F600" * 8, "Ёжик", "\u200b", "a\r\nb", "\t "]
NUL = "a\u0000b"

# Server settings: the table sends hundreds of failed logins and thousands of events from
# one address and one socket, which the default limits would (rightly) throttle; cheap
# password hashing keeps the login and register cases fast.
SETTINGS = dict(LOGIN_FAILURES_PER_USER=1_000_000, LOGIN_FAILURES_PER_ADDRESS=1_000_000,
                WS_EVENTS_PER_SECOND=100_000, WS_EVENT_BURST=1_000_000,
                PASSWORD_HASH_MEMORY_KIB=1024, PASSWORD_HASH_OPS=1, ACCESS_TOKEN_LIFETIME="1h")


# ---- values that are spliced into a body as they are ------------------------------------

class RawJSON:
    """A JSON text (bytes) put into a body verbatim: NaN, 1e999, a lone surrogate escape,
    invalid UTF-8, 10,000 levels of nesting."""

    def __init__(self, raw, label):
        self.raw = raw
        self.label = label

    def __repr__(self):
        return f"<{self.label}>"


class Raw(str):
    """A query or path value already percent-encoded (sent as is)."""


def encode(value):
    """JSON bytes of `value` (UTF-8, not ASCII-escaped), with RawJSON parts spliced in."""
    if isinstance(value, RawJSON):
        return value.raw
    if isinstance(value, dict):
        return b"{" + b",".join(encode(str(k)) + b":" + encode(v) for k, v in value.items()) + b"}"
    if isinstance(value, list):
        return b"[" + b",".join(encode(v) for v in value) + b"]"
    return json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")


DEEP_ARRAY = RawJSON(b"[" * DEPTH + b"]" * DEPTH, "array nested 10000 deep")
DEEP_OBJECT = RawJSON(b'{"a":' * DEPTH + b"1" + b"}" * DEPTH, "object nested 10000 deep")
NAN = RawJSON(b"NaN", "NaN")
INFINITE = RawJSON(b"1e999", "1e999")
LONE_SURROGATE = RawJSON(b'"x\\ud800y"', "lone surrogate escape")
BAD_UTF8 = RawJSON(b'"\xff\xfe\xc3\x28 \xed\xa0\x80"', "invalid UTF-8 bytes")


def short(v, n=80):
    s = repr(v)
    return s if len(s) <= n else s[:n] + f"...({len(s)} chars)"


# ---- the answers ----------------------------------------------------------------------------

def drf_messages(v):
    if isinstance(v, list):
        return bool(v) and all((isinstance(m, str) and m.strip()) or (isinstance(m, dict) and drf_messages(m))
                               for m in v)
    if isinstance(v, dict):
        return bool(v) and all(drf_messages(x) for x in v.values())
    return False


def drf_error_problem(body):
    """None when `body` has DRF's error shape, else what is wrong with it."""
    if not isinstance(body, dict) or not body:
        return f"not a non-empty JSON object: {short(body)}"
    if "detail" in body:
        if not isinstance(body["detail"], str) or not body["detail"].strip():
            return f"detail is not a message: {short(body)}"
        return None
    bad = [k for k, v in body.items() if not drf_messages(v)]
    return f"fields without messages {bad}: {short(body, 300)}" if bad else None


class Tally:
    """Cases tried, per endpoint or event, and every failed expectation."""

    def __init__(self):
        self.count = collections.Counter()
        self.failures = []
        self.server_errors = 0

    def fail(self, where, what):
        self.failures.append(f"{where}: {what}")


# ---- the world the cases act in -------------------------------------------------------------

class World:
    """Users, chats, messages and pins. ann is the caller; carol and dave have a chat, a
    message and a pin that ann must not reach; `secret` is in that chat's text and name and
    must never appear in anything ann is answered."""

    def __init__(self, server):
        self.server = server
        c = self.c = Client(server)
        self.ann, self.bob, self.carol, self.dave = (c.register() for _ in range(4))
        self.me = c.register()        # PATCH /api/users/me/ changes this account
        self.victim = c.register()    # the admin PATCH target
        self.me_password = self.me["password"]
        staff_name = unique_name("staff")
        create_superuser(server, staff_name, STAFF_PASSWORD)
        self.staff = c.login(staff_name, STAFF_PASSWORD)
        self.pc = private_chat(c, self.ann, self.bob)
        self.grp = group_chat(c, self.ann, self.bob, name="bad-input")
        self.m_own = rest_send(c, self.ann, self.pc, "own message")["id"]
        self.m_bob = rest_send(c, self.bob, self.pc, "bob's message")["id"]
        self.secret = "zq" + uuid.uuid4().hex[:16]
        self.fc = private_chat(c, self.carol, self.dave)
        self.fg = group_chat(c, self.carol, self.dave, name=f"group {self.secret}")
        self.fm = rest_send(c, self.carol, self.fc, f"secret {self.secret}")["id"]
        r = c.post("/api/pinned/", token=self.carol["access"], json={"message_id": self.fm})
        assert r.status_code == 201, r.text
        self.fp = r.json()["id"]
        self.foreign = {"chat": self.fc, "message": self.fm, "pin": self.fp}

    def token(self, who):
        return None if who is None else getattr(self, who)["access"]

    # Fresh objects for destructive operations (each case gets its own).
    def new_group(self):
        return group_chat(self.c, self.ann, self.bob, name=unique_name("g"))

    def new_message(self):
        return rest_send(self.c, self.ann, self.pc, "to be deleted " + uuid.uuid4().hex[:6])["id"]

    def new_pin(self, message=None):
        r = self.c.post("/api/pinned/", token=self.ann["access"], json={"message_id": message or self.new_message()})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def new_refresh(self):
        return self.c.login(uname(self.ann), self.ann["password"])["refresh"]


class Op:
    """How to make a valid request to one operation: path parameters, query and body are
    functions of the world (called per case, so destructive operations get fresh objects);
    `refs` names the parameters and fields that point at a chat, message or pin, which get
    the other users' ids as a mutation ("message_loose": a message id that need not be
    hidden, only refused; "any": a filter value, answered either way)."""

    def __init__(self, who="ann", path=None, query=None, body=None, refs=None):
        self.who = who
        self.path = path or (lambda w: {})
        self.query = query or (lambda w: {})
        self.body = body
        self.refs = refs or {}


ME_BODY = lambda w: {"email": "me@example.com", "current_password": w.me_password}  # noqa: E731
OPS = {
    ("POST", "/api/auth/register/"): Op(None, body=lambda w: {
        "username": unique_name("r"), "email": "r@example.com", "password": "pa55word!x"}),
    ("POST", "/api/auth/login/"): Op(None, body=lambda w: {"username": uname(w.ann), "password": w.ann["password"]}),
    ("POST", "/api/auth/refresh/"): Op(None, body=lambda w: {"refresh": w.ann["refresh"]}),
    ("POST", "/api/auth/logout/"): Op(None, body=lambda w: {"refresh": w.new_refresh()}),
    ("GET", "/api/users/me/"): Op("me"),
    ("PUT", "/api/users/me/"): Op("me", body=ME_BODY),
    ("PATCH", "/api/users/me/"): Op("me", body=ME_BODY),
    ("GET", "/api/users/"): Op(query=lambda w: {"search": "u", "limit": 5, "offset": 0}),
    ("GET", "/api/users/{id}/"): Op(path=lambda w: {"id": uid(w.bob)}),
    ("GET", "/api/chats/"): Op(),
    ("POST", "/api/chats/"): Op(body=lambda w: {"type": "group", "name": unique_name("g"),
                                                "member_ids": [uid(w.bob)]}),
    ("GET", "/api/chats/{id}/"): Op(path=lambda w: {"id": w.grp}, refs={"id": "chat"}),
    ("PUT", "/api/chats/{id}/"): Op(path=lambda w: {"id": w.grp}, body=lambda w: {"name": unique_name("n")},
                                    refs={"id": "chat"}),
    ("PATCH", "/api/chats/{id}/"): Op(path=lambda w: {"id": w.grp}, body=lambda w: {"name": unique_name("n")},
                                      refs={"id": "chat"}),
    ("DELETE", "/api/chats/{id}/"): Op(path=lambda w: {"id": w.new_group()}, refs={"id": "chat"}),
    ("POST", "/api/chats/{id}/members/"): Op(path=lambda w: {"id": w.new_group()},
                                             body=lambda w: {"user_id": uid(w.dave), "role": "member"},
                                             refs={"id": "chat"}),
    ("PATCH", "/api/chats/{id}/members/{user_id}/"): Op(path=lambda w: {"id": w.grp, "user_id": uid(w.bob)},
                                                        body=lambda w: {"role": "member"},
                                                        refs={"id": "chat", "user_id": "nonmember"}),
    ("DELETE", "/api/chats/{id}/members/{user_id}/"): Op(path=lambda w: {"id": w.new_group(), "user_id": uid(w.bob)},
                                                         refs={"id": "chat", "user_id": "nonmember"}),
    ("POST", "/api/chats/{id}/read/"): Op(path=lambda w: {"id": w.pc},
                                          body=lambda w: {"last_read_message_id": w.m_bob},
                                          refs={"id": "chat", "last_read_message_id": "message_loose"}),
    ("GET", "/api/messages/"): Op(query=lambda w: {"chat": w.pc, "limit": 50},
                                  refs={"chat": "chat", "before": "any", "after": "any"}),
    ("POST", "/api/messages/"): Op(body=lambda w: {"chat": w.pc, "text": "hello"}, refs={"chat": "chat"}),
    ("GET", "/api/messages/search/"): Op(query=lambda w: {"q": "own", "chat": w.pc}, refs={"chat": "chat"}),
    ("PUT", "/api/messages/{id}/"): Op(path=lambda w: {"id": w.m_own}, body=lambda w: {"text": "edited"},
                                       refs={"id": "message"}),
    ("PATCH", "/api/messages/{id}/"): Op(path=lambda w: {"id": w.m_own}, body=lambda w: {"text": "edited"},
                                         refs={"id": "message"}),
    ("DELETE", "/api/messages/{id}/"): Op(path=lambda w: {"id": w.new_message()}, query=lambda w: {"for": "me"},
                                          refs={"id": "message"}),
    ("POST", "/api/messages/{id}/forward/"): Op(path=lambda w: {"id": w.m_bob},
                                                body=lambda w: {"target_chat_id": w.grp},
                                                refs={"id": "message", "target_chat_id": "chat"}),
    ("GET", "/api/pinned/"): Op(query=lambda w: {"chat": w.pc}, refs={"chat": "chat"}),
    ("POST", "/api/pinned/"): Op(body=lambda w: {"message_id": w.m_own}, refs={"message_id": "message"}),
    ("DELETE", "/api/pinned/{id}/"): Op(path=lambda w: {"id": w.new_pin()}, refs={"id": "pin"}),
    ("GET", "/api/events/"): Op(query=lambda w: {"since": 0, "limit": 10}),
    ("GET", "/api/admin/users/"): Op("staff", query=lambda w: {"search": "u", "limit": 5, "offset": 0}),
    ("GET", "/api/admin/users/{id}/"): Op("staff", path=lambda w: {"id": uid(w.victim)}),
    ("PATCH", "/api/admin/users/{id}/"): Op("staff", path=lambda w: {"id": uid(w.victim)},
                                            body=lambda w: {"is_active": True, "is_staff": False}),
    ("GET", "/api/admin/chats/"): Op("staff", query=lambda w: {"search": "bad", "limit": 5, "offset": 0}),
    ("GET", "/api/admin/chats/{id}/"): Op("staff", path=lambda w: {"id": w.pc}),
    ("GET", "/api/admin/messages/"): Op("staff", query=lambda w: {"chat": w.pc, "q": "own", "limit": 5}),
    ("DELETE", "/api/admin/messages/{id}/"): Op("staff", path=lambda w: {"id": w.new_message()}),
    ("GET", "/api/admin/stats/"): Op("staff"),
    ("GET", "/healthz"): Op(None),
    ("GET", "/readyz"): Op(None),
    ("GET", "/api/schema/"): Op(None),
    ("GET", "/api/asyncapi/"): Op(None),
    ("GET", "/api/docs/"): Op(None),
    ("GET", "/admin/"): Op(None),
}


# ---- the schema -----------------------------------------------------------------------------

class Schema:
    def __init__(self, doc):
        self.doc = doc

    def deref(self, node):
        while isinstance(node, dict) and "$ref" in node:
            target = self.doc
            for part in node["$ref"][2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    def operations(self):
        for path, item in self.doc["paths"].items():
            for method in ("get", "post", "put", "patch", "delete"):
                if method in item:
                    op = item[method]
                    params = [self.deref(p) for p in item.get("parameters", []) + op.get("parameters", [])]
                    yield method.upper(), path, op, params

    def body_fields(self, op, base):
        """{name: (schema, required)} of the request body, for the variant `base` is."""
        rb = self.deref(op.get("requestBody"))
        if not rb:
            return None
        content = rb.get("content", {})
        sch = self.deref((content.get("application/json") or next(iter(content.values()), {})).get("schema", {}))
        variants = [self.deref(v) for v in sch.get("oneOf", sch.get("anyOf", []))] or [sch]
        chosen = variants[0]
        for v in variants:
            consts = {k: self.deref(p).get("const") for k, p in v.get("properties", {}).items()
                      if "const" in self.deref(p)}
            if all(base.get(k) == c for k, c in consts.items()):
                chosen = v
                break
        if len(variants) > 1:  # the discriminator: any variant's constant is valid
            chosen = json.loads(json.dumps(chosen))
            for k, p in chosen.get("properties", {}).items():
                if "const" in p:
                    p["enum"] = sorted({self.deref(v).get("properties", {}).get(k, {}).get("const")
                                        for v in variants} - {None})
        required = set(chosen.get("required", []))
        return {k: (self.deref(p), k in required) for k, p in chosen.get("properties", {}).items()}

    def example_body(self, op):
        rb = self.deref(op.get("requestBody"))
        if not rb:
            return None
        content = rb.get("content", {})
        sch = self.deref((content.get("application/json") or next(iter(content.values()), {})).get("schema", {}))
        examples = sch.get("examples") or [{}]
        return dict(examples[0])


def kind_of(sch):
    t = sch.get("type", "string")
    types = t if isinstance(t, list) else [t]
    main = next((x for x in types if x != "null"), "string")
    return main, "null" in types


def string_expect(sch, v):
    """The expectation for string `v` in a field of schema `sch`."""
    if "\u0000" in v:
        return "reject"
    if sch.get("enum") and v not in sch["enum"]:
        return "reject"
    if "maxLength" in sch and len(v) > sch["maxLength"]:
        return "reject"
    if len(v) < sch.get("minLength", 0):
        return "reject"
    if sch.get("pattern"):
        try:
            pattern_ok = re.fullmatch(sch["pattern"].strip("^$"), v.strip()) is not None
        except re.error:
            pattern_ok = True
        if not pattern_ok:
            return "reject"
    if sch.get("format") == "email" and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", v.strip()):
        return "reject"
    return "either"


def value_mutations(sch, required, ref, foreign, socket=False):
    """[(label, value, expectation)] for one field. Both doors read a field as DRF's field
    classes do (7.0 and "7" are 7, 7 is "7", "yes" is true); `socket`: the WebSocket door,
    whose frames are limited in size and are text that the JSON parser checks."""
    kind, nullable = kind_of(sch)
    out = [("null", None, "either" if (nullable or not required) else "reject")]
    if kind == "integer":
        minimum = sch.get("minimum", 1)
        out += [("string", "abc", "reject"), ("numeric string", "7", "either"), ("float", 1.5, "reject"),
                ("integral float", 7.0, "either"), ("bool", True, "reject"), ("list", [1], "reject"),
                ("object", {"id": 1}, "reject"), ("zero", 0, "either" if minimum <= 0 else "reject"),
                ("negative", -1, "reject"),
                ("nonexistent id", BOGUS, "reject" if ref and ref != "message_loose" else "either"),
                ("1e999", INFINITE, "reject"), ("NaN", NAN, "reject")]
        out += [(f"huge int {short(n, 12)}", n, "reject") for n in HUGE_INTS]
        out += [("SQL string", s, "reject") for s in SQL[:3]]
        if ref in ("chat", "message", "pin"):
            out.append((f"other users' {ref}", foreign[ref], "hidden"))
        elif ref == "message_loose":
            # A read watermark past the chat's messages is taken as "read everything"
            # (README: watermarks always name a message of the chat): accepted or not,
            # but answered exactly like a missing id (checked separately).
            out.append(("other users' message", foreign["message"], "either"))
        elif ref == "any":
            out.append(("other users' message", foreign["message"], "either"))
    elif kind == "boolean":
        # DRF's spellings of true and false: taken (REST's boolean fields may then meet
        # another rule, such as an admin's own is_active, so there any answer will do).
        spelling = "ok" if socket else "either"
        out += [("string maybe", "maybe", "reject"), ("string yes", "yes", spelling),
                ("string true", "true", spelling), ("int 1", 1, spelling),
                ("int 0", 0, spelling), ("int 2", 2, "reject"), ("float", 1.5, "reject"),
                ("list", [True], "reject"), ("object", {"v": True}, "reject"), ("huge int", 10 ** 40, "reject")]
    elif kind == "array":
        item_kind = kind_of(sch.get("items", {}))[0]
        out += [("string", "abc", "reject"), ("int", 5, "reject"), ("object", {"a": 1}, "reject"),
                ("list of null", [None], "reject"), ("list of list", [[1]], "reject"),
                ("deep array", DEEP_ARRAY, "reject")]
        if item_kind == "integer":
            out += [("list of strings", ["abc"], "reject"), ("list of floats", [1.5], "reject"),
                    ("list of negatives", [-1], "reject"), ("list of zero", [0], "reject")]
            out += [(f"list of huge int {short(n, 12)}", [n], "reject") for n in HUGE_INTS]
            out += [("list of SQL", [SQL[0]], "reject"), ("list of nonexistent ids", [BOGUS], "reject")]
            if "maxItems" in sch:
                out.append((f"{sch['maxItems'] + 1} items", list(range(1, sch["maxItems"] + 2)), "reject"))
            out.append(("100,000 items", list(range(1, 100_001)),
                        "reject" if sch.get("maxItems", 10 ** 9) < 100_000 else "either"))
    else:  # string
        values = [("int", 7, "either"), ("float", 1.5, "either"), ("huge int", 10 ** 40, "either"),
                  ("bool", True, "reject"), ("list", ["x"], "reject"), ("object", {"x": 1}, "reject"),
                  ("NaN", NAN, "reject")]
        out += values
        strings = ([("empty", "")] + [(f"SQL {i}", s) for i, s in enumerate(SQL)]
                   + [(f"HTML {i}", s) for i, s in enumerate(HTML)]
                   + [(f"odd text {i}", s) for i, s in enumerate(ODD_TEXT)] + [("NUL", NUL)])
        if "maxLength" in sch:
            strings.append((f"maxLength+1 ({sch['maxLength'] + 1})", "x" * (sch["maxLength"] + 1)))
        for label, s in strings:
            out.append((label, s, string_expect(sch, s)))
        big = (WS_MAX_FRAME - 2048) if socket else ONE_MB
        out.append((f"huge string ({big} chars)", "x" * big, string_expect(sch, "x" * big)))
        out += [("lone surrogate", LONE_SURROGATE, "either"), ("deep array", DEEP_ARRAY, "reject"),
                ("deep object", DEEP_OBJECT, "reject")]
    if not socket:
        out.append(("invalid UTF-8", BAD_UTF8, "reject"))
    return out


EXTRA_FIELDS = [
    {"zz_unknown_field": 1},
    {"is_staff": True, "is_superuser": True, "is_active": False, "id": BOGUS, "user_id": BOGUS,
     "sender_id": BOGUS, "sender": "someone-else", "created_at": "2000-01-01T00:00:00Z", "role": "owner",
     "chat": BOGUS, "is_deleted": True, "forwarded_from": BOGUS},
    {"__proto__": {"admin": True}, "constructor": {"prototype": {"admin": True}}},
    {"<script>alert(1)</script>": "'; DROP TABLE users; --"},
]

RAW_BODIES = [
    ("empty body", b"", "reject"), ("null", b"null", "reject"), ("array", b"[]", "reject"),
    ("number", b"123", "reject"), ("string", b'"s"', "reject"), ("truncated", b'{"a": ', "reject"),
    ("trailing comma", b'{"a": 1,}', "reject"), ("trailing garbage", b'{"a": 1} x', "reject"),
    ("single quotes", b"{'a': 1}", "reject"), ("deep array", DEEP_ARRAY.raw, "reject"),
    ("deep object", DEEP_OBJECT.raw, "reject"), ("invalid UTF-8 key", b'{"\xff": 1}', "reject"),
    ("invalid UTF-8 only", b"\xff\xfe\xfd", "reject"),
]

PATH_IDS = [("letters", "abc"), ("negative", "-1"), ("zero", "0"), ("float", "1.5"), ("exponent", "1e3"),
            ("hex", "0x1F"), ("2**63", str(2 ** 63)), ("-2**63-1", str(-2 ** 63 - 1)), ("10**40", str(10 ** 40)),
            ("SQL", "1 OR 1=1"), ("SQL quote", "1'; DROP TABLE chats; --"), ("HTML", "<script>alert(1)</script>"),
            ("space", " 1"), ("plus", "+1"), ("invalid UTF-8", Raw("%FF")), ("NUL", Raw("1%00")),
            ("dot dot", Raw("..%2F..%2Fetc")), ("bogus", str(BOGUS))]


# ---- REST -------------------------------------------------------------------------------------

def rest_cases(schema, world):
    """Yields (op key, label, op, mutate, expect, field) for every operation in the document.
    `mutate(path, query, body)` returns the mutated (path, query, body or raw bytes,
    content type)."""
    for method, template, op_doc, params in schema.operations():
        key = (method, template)
        op = OPS.get(key)
        generic = op is None
        if generic:  # not in the table: values from the document's examples
            op = Op("ann", path=lambda w, ps=params: {p["name"]: 1 for p in ps if p["in"] == "path"},
                    body=(lambda w, op_doc=op_doc: schema.example_body(op_doc)) if op_doc.get("requestBody") else None)
        yield key, "baseline", op, (lambda p, q, b: (p, q, b, None)), ("either" if generic else "ok"), None

        for p in params:
            name, where = p["name"], p["in"]
            psch = schema.deref(p.get("schema", {}))
            ref = op.refs.get(name)
            if where == "path":
                for label, v in PATH_IDS:
                    yield key, f"path {name} {label}", op, (lambda pp, q, b, n=name, v=v: ({**pp, n: v}, q, b, None)), \
                        "reject", None
                if ref in ("chat", "message", "pin"):
                    yield key, f"path {name} other users' {ref}", op, \
                        (lambda pp, q, b, n=name, r=ref: ({**pp, n: world.foreign[r]}, q, b, None)), "hidden", None
                elif ref == "nonmember":
                    yield key, f"path {name} not a member", op, \
                        (lambda pp, q, b, n=name: ({**pp, n: uid(world.carol)}, q, b, None)), "reject", None
            elif where == "query":
                kind = kind_of(psch)[0]
                required = p.get("required", False)
                if required:
                    yield key, f"query {name} missing", op, \
                        (lambda pp, q, b, n=name: (pp, {k: v for k, v in q.items() if k != n}, b, None)), \
                        "reject", name
                loose = "reject" if required else "either"
                values = []
                if kind == "integer":
                    values += [("letters", "abc", loose), ("float", "1.5", loose), ("negative", "-1", loose),
                               ("zero", "0", loose), ("empty", "", loose), ("exponent", "1e3", loose)]
                    values += [(f"huge {short(n, 12)}", str(n), loose) for n in HUGE_INTS]
                    values += [(f"SQL {i}", s, loose) for i, s in enumerate(SQL[:4])]
                    values += [("HTML", HTML[0], loose), ("invalid UTF-8", Raw("%FF"), loose),
                               ("NUL", Raw("1%00"), loose)]
                    if ref in ("chat", "message", "pin"):
                        values.append((f"other users' {ref}", world.foreign[ref], "hidden"))
                    elif ref == "any":
                        values.append(("other users' message", world.foreign["message"], "either"))
                else:
                    enum = psch.get("enum")
                    values += [(f"SQL {i}", s, "reject" if enum else "either") for i, s in enumerate(SQL)]
                    values += [(f"HTML {i}", s, "reject" if enum else "either") for i, s in enumerate(HTML)]
                    values += [(f"odd text {i}", s, "reject" if enum else "either") for i, s in enumerate(ODD_TEXT)]
                    values += [("empty", "", "reject" if (enum or required) else "either"),
                               ("8 KB", "x" * 8192, "reject" if enum else "either"),
                               ("20 KB (past the header limit)", "x" * 20480, "reject"),
                               # Decoded as Django's QueryDict decodes (U+FFFD): only a choice
                               # refuses them. NUL is refused, as DRF's CharField refuses it.
                               ("invalid UTF-8", Raw("%FF%FE"), "reject" if enum else "either"),
                               ("bad escape", Raw("%C3%28"), "reject" if enum else "either"),
                               ("NUL", Raw("a%00b"), "reject"),
                               ("stray percent", Raw("%"), "either" if not enum else "reject")]
                for label, v, expect in values:
                    yield key, f"query {name} {label}", op, \
                        (lambda pp, q, b, n=name, v=v: (pp, {**q, n: v}, b, None)), expect, None
                if ref in ("chat",):  # parameter pollution: one's own id and another user's
                    yield key, f"query {name} repeated with other users' chat", op, \
                        (lambda pp, q, b, n=name: (pp, list(q.items()) + [(n, world.foreign["chat"])], b, None)), \
                        "either", None
        # Unknown query parameters, on every operation.
        for label, extra in (("unknown", {"zz": "1"}), ("SQL", {"zz": SQL[1]}), ("HTML", {"<b>": HTML[0]}),
                             ("invalid UTF-8", {"zz": Raw("%FF")}), ("array style", {"chat[]": "1"})):
            yield key, f"query extra {label}", op, (lambda pp, q, b, e=extra: (pp, {**q, **e}, b, None)), \
                "either", None

        if op.body is None:
            continue
        base = op.body(world)
        fields = schema.body_fields(op_doc, base) or {}
        for name, (fsch, required) in fields.items():
            if required:
                yield key, f"body {name} missing", op, \
                    (lambda pp, q, b, n=name: (pp, q, {k: v for k, v in b.items() if k != n}, None)), "reject", name
            for label, v, expect in value_mutations(fsch, required, op.refs.get(name), world.foreign):
                yield key, f"body {name} {label}", op, \
                    (lambda pp, q, b, n=name, v=v: (pp, q, {**b, n: v}, None)), expect, name
        for i, extra in enumerate(EXTRA_FIELDS):
            extra = {k: v for k, v in extra.items() if k not in fields}
            yield key, f"body extra fields {i}", op, (lambda pp, q, b, e=extra: (pp, q, {**b, **e}, None)), \
                "either", None
        yield key, "body duplicate keys", op, \
            (lambda pp, q, b: (pp, q, encode(b)[:-1] + b"," + encode(b)[1:], None)), "either", None
        any_required = any(required for _, required in fields.values())
        for label, raw, expect in RAW_BODIES:
            if raw == b"" and not any_required:
                expect = "either"  # DRF reads an empty body as {}: nothing to change
            yield key, f"raw body {label}", op, (lambda pp, q, b, raw=raw: (pp, q, raw, None)), expect, None
        yield key, "text/plain body", op, (lambda pp, q, b: (pp, q, encode(b), "text/plain")), "reject", None
        yield key, "body past MAX_BODY_BYTES", op, \
            (lambda pp, q, b: (pp, q, encode({**b, "zz_padding": "x" * (DEFAULT_MAX_BODY + 4096)}), None)), \
            "reject", None


def quote_value(v):
    return str(v) if isinstance(v, Raw) else quote(str(v), safe="")


def build_path(template, path_params, query):
    path = template
    for k, v in path_params.items():
        path = path.replace("{" + k + "}", quote_value(v))
    items = query.items() if isinstance(query, dict) else query
    if items:
        path += "?" + "&".join(f"{quote(str(k), safe='[]')}={quote_value(v)}" for k, v in items)
    return path


READ_ONLY = ("id", "user_id", "sender_id", "sender", "created_at", "chat", "is_deleted",
             "forwarded_from", "is_staff", "is_superuser")


def check_rest(tally, world, where, r, expect, field, sent_body, who, fields=()):
    status = r.status_code
    if status >= 500:
        tally.server_errors += 1
        tally.fail(where, f"{status} {r.text[:300]}")
        return
    try:
        body = r.json() if r.content else None
    except ValueError:
        body = "<not JSON>"
    if expect == "ok" and not 200 <= status < 300:
        tally.fail(where, f"the unmutated request got {status} {r.text[:300]}")
    if expect in ("reject", "hidden") and not 400 <= status < 500:
        tally.fail(where, f"expected 4xx, got {status} {r.text[:300]}")
    if expect == "hidden" and status != 404:
        tally.fail(where, f"another user's object: expected 404, got {status} {r.text[:300]}")
    if not 200 <= status < 500:
        tally.fail(where, f"status {status}")
    if 400 <= status < 500:
        problem = drf_error_problem(body)
        if problem:
            tally.fail(where, f"{status} body is not DRF-shaped: {problem}")
        elif status == 400 and field and isinstance(body, dict) and not (
                field in body or "detail" in body or "non_field_errors" in body):
            tally.fail(where, f"400 does not name the field {field!r}: {short(body, 300)}")
    if who != "staff" and world.secret in r.text:
        tally.fail(where, f"the answer shows another user's chat: {r.text[:300]}")
    if 200 <= status < 300 and isinstance(body, dict) and isinstance(sent_body, dict):
        # An accepted string is stored as sent (trimmed at most): no escaping, no truncation.
        for k, v in sent_body.items():
            if k in fields and isinstance(v, str) and isinstance(body.get(k), str) \
                    and k not in ("password", "current_password"):
                if body[k] not in (v, v.strip()):
                    tally.fail(where, f"{k!r} sent {short(v)} came back {short(body[k])}")
            elif k not in fields and k in READ_ONLY and k in body and body[k] == v and v not in (None, False):
                tally.fail(where, f"the read-only {k!r} was taken from the body: {short(body, 300)}")
        if "sender_id" in body and who == "ann" and body["sender_id"] != uid(world.ann):
            tally.fail(where, f"sender_id taken from the body: {short(body, 300)}")


def run_rest_table(server, world, schema, tally):
    http = requests.Session()
    documented = {(m, p) for m, p, _, _ in schema.operations()}
    stale = sorted(set(OPS) - documented)
    assert not stale, f"operations in the table but not in /api/schema/: {stale}"
    generic = sorted({f"{m} {p}" for m, p in documented if (m, p) not in OPS})
    fields = {}
    for m, p, op_doc, _ in schema.operations():
        if (m, p) in OPS and OPS[(m, p)].body:
            fields[(m, p)] = set(schema.body_fields(op_doc, OPS[(m, p)].body(world)) or ())
    for key, label, op, mutate, expect, field in rest_cases(schema, world):
        method, template = key
        where = f"{method} {template} [{label}]"
        path, query, body = op.path(world), op.query(world), (op.body(world) if op.body else None)
        path, query, payload, ctype = mutate(path, query, body)
        url = server.url + build_path(template, path, query)
        headers = {}
        token = world.token(op.who)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None
        if payload is not None:
            data = payload if isinstance(payload, bytes) else encode(payload)
            headers["Content-Type"] = ctype or "application/json"
        tally.count[f"{method} {template}"] += 1
        try:
            r = http.request(method, url, data=data, headers=headers, timeout=30)
        except requests.RequestException as e:
            tally.fail(where, f"no answer: {type(e).__name__}: {e}")
            if server.proc.poll() is not None:
                raise AssertionError(f"chatd died at {where}: {server.read_log()[-3000:]}")
            http = requests.Session()
            continue
        check_rest(tally, world, where, r, expect, field, payload if isinstance(payload, dict) else None, op.who,
                   fields.get(key, ()))
        if key in (("PUT", "/api/users/me/"), ("PATCH", "/api/users/me/")) and r.status_code == 200 \
                and isinstance(payload, dict) and isinstance(payload.get("password"), str):
            world.me_password = payload["password"]  # the next case confirms with the new one
    return generic


def check_mass_assignment(server, world, tally):
    """Extra fields named like privileged columns changed nothing."""
    c = world.c
    staff = world.staff["access"]
    for who in ("me", "victim"):
        tally.count["mass assignment"] += 1
        r = c.get(f"/api/admin/users/{uid(getattr(world, who))}/", token=staff)
        u = r.json()
        if r.status_code != 200 or (u["is_staff"], u["is_superuser"], u["is_active"]) != (False, False, True) \
                or u["username"] != uname(getattr(world, who)):
            tally.fail(f"mass assignment ({who})", f"{r.status_code} {short(u, 300)}")
    tally.count["mass assignment"] += 1
    r = c.post("/api/auth/register/", json={"username": unique_name("m"), "email": "m@example.com",
                                            "password": "pa55word!x", "is_staff": True, "is_superuser": True})
    if r.status_code != 201:
        tally.fail("mass assignment (register)", f"{r.status_code} {r.text[:300]}")
    else:
        u = c.get(f"/api/admin/users/{r.json()['user']['id']}/", token=staff).json()
        if u["is_staff"] or u["is_superuser"]:
            tally.fail("mass assignment (register)", short(u, 300))


def check_watermark_reveals_nothing(world, tally):
    """A read watermark naming another user's message is answered exactly like one naming
    a message that does not exist (both are accepted as "read everything")."""
    answers = []
    for message in (world.fm, BOGUS):
        tally.count["read watermark: other users' message vs missing"] += 1
        r = world.c.post(f"/api/chats/{world.pc}/read/", token=world.ann["access"],
                         json={"last_read_message_id": message})
        answers.append((r.status_code, r.text))
    if answers[0] != answers[1]:
        tally.fail("read watermark", f"other users' message {answers[0]} vs missing id {answers[1]}")


# ---- WebSocket --------------------------------------------------------------------------------

def ws_events(world):
    """{type: (base fields function, {field: (schema, required, ref)})}; the schemas use the
    REST ones' limits (text 1..4096, client_id ..64)."""
    text = {"type": "string", "minLength": 1, "maxLength": 4096}
    cid = {"type": ["string", "null"], "minLength": 1, "maxLength": 64}
    msg_id = {"type": "integer", "minimum": 1}
    flag = {"type": "boolean"}
    return {
        "message": (lambda: {"text": "hello " + uuid.uuid4().hex[:6]},
                    {"text": (text, True, None), "client_id": (cid, False, None)}),
        "typing": (lambda: {"is_typing": True}, {"is_typing": (flag, True, None)}),
        # A watermark, 0 included (nothing read), read as over REST.
        "read": (lambda: {"last_read_message_id": world.m_bob},
                 {"last_read_message_id": ({"type": "integer", "minimum": 0}, True,
                                           "message_loose")}),
        "forward": (lambda: {"message_id": world.m_bob, "target_chat_id": world.grp},
                    {"message_id": (msg_id, True, "message"), "target_chat_id": (msg_id, True, "chat")}),
        "edit": (lambda: {"message_id": world.m_own, "text": "edited " + uuid.uuid4().hex[:6]},
                 {"message_id": (msg_id, True, "message"), "text": (text, True, None)}),
        "delete": (lambda: {"message_id": world.new_message()},
                   {"message_id": (msg_id, True, "message"), "for_me": (flag, False, None)}),
        "pin": (lambda: {"message_id": world.new_message()}, {"message_id": (msg_id, True, "message")}),
        "unpin": (lambda: {"message_id": (lambda m: (world.new_pin(m), m)[1])(world.new_message())},
                  {"message_id": (msg_id, True, "message")}),
        "ping": (lambda: {}, {}),
    }


def ws_cases(world, kind):
    """Yields (event, label, frame function, expect, field, request_type). The frame
    function returns a dict (sent as JSON text), str (text) or bytes (binary)."""
    chat = {"chat_id": world.pc} if kind == "user" else {}
    for event, (base, fields) in ws_events(world).items():
        def frame(extra=None, drop=None, base=base, event=event):
            f = {"type": event, **chat, **base(), **(extra or {})}
            if drop:
                f.pop(drop)
            return f

        yield event, "baseline", frame, "ok", None, (event,)
        all_fields = dict(fields)
        if event != "ping":
            all_fields["chat_id"] = ({"type": "integer", "minimum": 1}, kind == "user", "chat")
        for name, (sch, required, ref) in all_fields.items():
            if required:
                yield event, f"{name} missing", (lambda n=name, fr=frame: fr(drop=n)), "reject", name, (event,)
            for label, v, expect in value_mutations(sch, required, ref, world.foreign, socket=True):
                if name == "chat_id" and kind == "chat":
                    # Optional on a chat socket: anything but another chat's id may be ignored.
                    expect = "reject" if label.startswith("other users") else "either"
                # A value that breaks the JSON of the whole frame (NaN, nesting past the
                # parser's depth, ...) cannot be attributed to the event type.
                types = (event, None) if isinstance(v, RawJSON) else (event,)
                yield event, f"{name} {label}", (lambda n=name, v=v, fr=frame: fr(extra={n: v})), expect, \
                    (name if expect == "reject" and label in ("null", "string", "list", "object") else None), types
        for i, extra in enumerate(EXTRA_FIELDS):
            extra = {k: v for k, v in extra.items() if k not in all_fields and k != "type"}
            yield event, f"extra fields {i}", (lambda e=extra, fr=frame: fr(extra=e)), "ok", None, (event,)
    # Whole frames, whatever the event.
    yield "frame", "not JSON", (lambda: "not json"), "reject", None, (None,)
    yield "frame", "empty text", (lambda: ""), "reject", None, (None,)
    for label, raw in (("array", "[1, 2]"), ("number", "123"), ("null", "null"), ("string", '"ping"'),
                       ("truncated", '{"type": "ping"'), ("trailing garbage", '{"type": "ping"} x'),
                       ("single quotes", "{'type': 'ping'}"), ("deep array", DEEP_ARRAY.raw.decode()),
                       ("deep object", DEEP_OBJECT.raw.decode()), ("NaN", '{"type": "message", "text": NaN}')):
        yield "frame", label, (lambda raw=raw: raw), "reject", None, (None,)
    yield "frame", "lone surrogate", (lambda: '{"type": "ping", "x": "\\ud800"}'), "either", None, (None,)
    for label, t in (("type int", 5), ("type null", None), ("type list", ["message"]), ("type object", {"t": 1}),
                     ("type bool", True)):
        yield "frame", label, (lambda t=t: {"type": t, **chat}), "reject", "type", (None,)
    # Past 64 bits a number is read as its digits (as Python's json keeps them exactly): an
    # unknown type, named as such.
    yield "frame", "type huge int", (lambda: {"type": 10 ** 40, **chat}), "reject", None, (str(10 ** 40),)
    yield "frame", "type missing", (lambda: {**chat, "text": "no type"}), "reject", "type", (None,)
    for label, t in ([("type upper case", "MESSAGE"), ("type empty", ""), ("type 60 KB", "x" * 60_000)]
                     + [(f"type SQL {i}", s) for i, s in enumerate(SQL)] + [(f"type HTML {i}", s) for i, s in enumerate(HTML)]
                     + [("type NUL", "ping\u0000"), ("type unicode", "пинг")]):
        yield "frame", label, (lambda t=t: {"type": t, **chat}), "reject", None, (t,) if t else (t, None)
    yield "frame", "binary JSON", (lambda: json.dumps({"type": "ping"}).encode()), "reject", None, (None,)
    yield "frame", "binary invalid UTF-8", (lambda: b'{"type": "ping", "x": "\xff\xfe"}'), "reject", None, (None,)


async def ws_case(ws, n, sent, expect, field, request_type):
    """Sends the case, a ping and a marker; returns the failures."""
    marker = f"zz-sync-{n}"
    if isinstance(sent, dict):
        sent = encode(sent).decode("utf-8")
    await ws.conn.send(sent)
    await ws.conn.send('{"type": "ping"}')
    await ws.conn.send(json.dumps({"type": marker}))
    errors, pongs = [], 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        left = deadline - loop.time()
        if left <= 0:
            return [f"no answer to the marker within 10 s; errors {errors}"]
        try:
            raw = await asyncio.wait_for(ws.conn.recv(), left)
        except asyncio.TimeoutError:
            return [f"no answer to the marker within 10 s; errors {errors}"]
        except websockets.ConnectionClosed as e:
            return [f"socket closed: {e.code} {e.reason!r}"]
        if not isinstance(raw, str):
            return [f"binary frame from the server: {raw[:100]!r}"]
        frame = json.loads(raw)
        ws.seen.append(frame)
        if frame.get("type") == "error" and frame.get("request_type") == marker:
            break
        if frame.get("type") == "error":
            errors.append(frame)
        elif frame.get("type") == "pong":
            pongs += 1
    problems = []
    if pongs < 1:
        problems.append("no pong after the case")
    if len(errors) > 1:
        problems.append(f"{len(errors)} error events for one frame: {errors}")
    if expect in ("reject", "hidden") and not errors:
        problems.append("no error event")
    if expect == "ok" and errors:
        problems.append(f"error event for a valid event: {errors[0]}")
    for e in errors:
        if set(e) != ERROR_KEYS:
            problems.append(f"error event keys {sorted(e)}: {short(e, 300)}")
            continue
        if e["code"] not in ERROR_CODES:
            problems.append(f"error code {e['code']!r}: {short(e, 300)}")
        if not isinstance(e["detail"], str) or not e["detail"].strip():
            problems.append(f"error without a detail: {short(e, 300)}")
        if e["request_type"] not in request_type:
            problems.append(f"request_type {short(e['request_type'])}, expected one of {short(request_type)}")
        if expect == "hidden" and e["code"] not in ("not_found", "bad_request"):
            problems.append(f"another user's object answered {e['code']}: {short(e, 300)}")
        if field and e["code"] == "validation" and field not in e["detail"]:
            problems.append(f"the detail does not name {field!r}: {short(e, 300)}")
    return problems


async def raw_ws(server, path, token):
    """A WebSocket over a bare socket, for frames a client library refuses to send."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", server.port), 10)
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    writer.write((f"GET {path}?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def read_until_close(reader, timeout=5):
    """(text frames, close code or None, eof) read within `timeout`."""
    data = b""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (left := deadline - loop.time()) > 0:
        try:
            chunk = await asyncio.wait_for(reader.read(65536), left)
        except (asyncio.TimeoutError, ConnectionError):
            break
        if not chunk:
            frames = read_raw_frames(data)
            return frames, next((struct.unpack(">H", p[:2])[0] for op, p in frames if op == 8 and len(p) >= 2), None), True
        data += chunk
        frames = read_raw_frames(data)
        if any(op == 8 for op, _ in frames):
            return frames, next(struct.unpack(">H", p[:2])[0] for op, p in frames if op == 8 and len(p) >= 2), False
    return read_raw_frames(data), None, False


async def raw_frame_cases(server, world, tally):
    """Frames that are not valid WebSocket messages, each on a socket of its own."""
    for kind, path in (("user", "/ws/"), ("chat", f"/ws/chat/{world.pc}/")):
        ping = b'{"type":"ping"}'
        cases = [
            ("invalid UTF-8 text frame", [client_frame(1, b'{"type":"ping","x":"\xff\xfe"}')], 1007),
            ("overlong UTF-8 text frame", [client_frame(1, b'{"type":"ping","x":"\xc0\xaf"}')], 1007),
            ("surrogate in UTF-8 text frame", [client_frame(1, b'{"type":"ping","x":"\xed\xa0\x80"}')], 1007),
            ("invalid UTF-8 across fragments", [client_frame(1, b'{"type":"ping","x":"\xe2\x82', fin=False),
                                                client_frame(0, b'\x28"}')], 1007),
            # A character split over two fragments is valid: the message is checked whole.
            ("valid UTF-8 split over fragments", [client_frame(1, b'{"type":"ping","x":"\xe2', fin=False),
                                                  client_frame(0, b'\x82\xac"}')], None),
            (f"frame past the {WS_MAX_FRAME}-byte limit",
             [client_frame(1, json.dumps({"type": "ping", "pad": "x" * WS_MAX_FRAME}).encode())], 1009),
        ]
        for label, frames, close in cases:
            where = f"raw frame on the {kind} socket [{label}]"
            tally.count[f"ws raw frames ({kind})"] += 1
            reader, writer = await raw_ws(server, path, world.ann["access"])
            try:
                for f in frames:
                    writer.write(f)
                writer.write(client_frame(1, ping))
                await writer.drain()
                got, code, eof = await read_until_close(reader, timeout=5 if close else 2)
                texts = [json.loads(p) for op, p in got if op == 1]
                if close is None:
                    if code is not None or eof:
                        tally.fail(where, f"closed ({code}) instead of answering")
                    elif not any(t.get("type") == "pong" for t in texts):
                        tally.fail(where, f"no pong: {texts}")
                elif code != close:
                    tally.fail(where, f"expected close {close}, got {code} (eof {eof}); frames {texts[:5]}")
                elif any(t.get("type") == "pong" for t in texts):
                    tally.fail(where, "the ping after the bad frame was answered")
            finally:
                writer.close()


async def handshake_cases(server, world, tally):
    token = world.ann["access"]
    any4xx = tuple(range(400, 500))
    cases = [(f"/ws/chat/{quote_value(v)}/", {"token": token}, any4xx) for _, v in PATH_IDS]
    cases += [(f"/ws/chat/{world.fc}/", {"token": token}, (403,)),  # API.md: not a member -> 403
              ("/ws/", {"token": quote(SQL[0], safe="")}, (401,)), ("/ws/", {"token": "%FF%FE"}, any4xx),
              ("/ws/", {"token": "a%00b"}, any4xx), ("/ws/", {"token": "x" * 8000}, (401,)),
              ("/ws/", {"token": ""}, (401,))]
    # An empty since= is left out, as GET /api/events/ reads it (test_websocket).
    for v in ["abc", "-1", "1.5", str(2 ** 63), str(10 ** 40), quote(SQL[0], safe=""), "%FF", "1%00"]:
        cases.append(("/ws/", {"token": token, "since": v}, (400,)))
    cases.append((f"/ws/chat/{world.pc}/", {"token": token, "since": "0"}, (400,)))
    for path, query, statuses in cases:
        tally.count["ws handshake"] += 1
        where = f"handshake {path}?{'&'.join(f'{k}={v[:40]}' for k, v in query.items())}"
        url = f"ws://127.0.0.1:{server.port}{path}?" + "&".join(f"{k}={v}" for k, v in query.items())
        try:
            ws = await websockets.connect(url, open_timeout=10, close_timeout=3, ping_interval=None)
        except websockets.InvalidStatusCode as e:
            if e.status_code not in statuses:
                tally.fail(where, f"refused with {e.status_code}, expected {statuses}")
            continue
        except (websockets.InvalidHandshake, OSError, asyncio.TimeoutError) as e:
            tally.fail(where, f"no HTTP answer: {type(e).__name__}: {e}")
            continue
        tally.fail(where, "accepted")
        await ws.close()


async def run_ws_table(server, world, tally):
    await handshake_cases(server, world, tally)
    for kind in ("user", "chat"):
        path = "/ws/" if kind == "user" else f"/ws/chat/{world.pc}/"
        ws = await connect(server, world.ann["access"], path, name=f"ann{path}")
        n = 0
        for event, label, frame, expect, field, request_type in ws_cases(world, kind):
            n += 1
            tally.count[f"ws {event} ({kind})"] += 1
            sent = await asyncio.to_thread(frame)  # fresh objects come from REST calls
            problems = await ws_case(ws, n, sent, expect, field, request_type)
            for p in problems:
                tally.fail(f"{kind} socket {event} [{label}]", p)
            if problems and ws.conn.closed:
                if server.proc.poll() is not None:
                    raise AssertionError(f"chatd died at {kind} {event} [{label}]: {server.read_log()[-3000:]}")
                ws = await connect(server, world.ann["access"], path, name=f"ann{path}")
        await ws.ping()
        leaked = [f for f in ws.seen if world.secret in json.dumps(f)]
        if leaked:
            tally.fail(f"{kind} socket", f"frames show another user's chat: {leaked[:3]}")
        await ws.close()
    await raw_frame_cases(server, world, tally)


# ---- the test ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bad_server():
    s = Server(**SETTINGS).start()
    yield s
    s.stop()


def test_bad_input_table(bad_server):
    server = bad_server
    started = time.monotonic()
    world = World(server)
    r = requests.get(server.url + "/api/schema/", timeout=10)
    assert r.status_code == 200, r.text[:300]
    schema = Schema(r.json())
    operations = list(schema.operations())
    assert len(operations) >= 40, [f"{m} {p}" for m, p, _, _ in operations]

    rest, ws = Tally(), Tally()
    generic = run_rest_table(server, world, schema, rest)
    check_mass_assignment(server, world, rest)
    check_watermark_reveals_nothing(world, rest)
    rest_seconds = time.monotonic() - started
    run(run_ws_table(server, world, ws), timeout=240)

    # The server lives on and serves a normal exchange.
    assert server.proc.poll() is None, server.read_log()[-3000:]
    assert requests.get(server.url + "/healthz", timeout=5).status_code == 200
    m = rest_send(world.c, world.ann, world.pc, "still here")
    assert m["text"] == "still here"
    log = server.read_log()

    rest_cases_n, ws_cases_n = sum(rest.count.values()), sum(ws.count.values())
    print(f"\nREST operations: {len(operations)} ({len(operations) - len(generic)} with a hand-made context)")
    if generic:
        print("  generated from the document's examples only: " + ", ".join(generic))
    print(f"REST cases: {rest_cases_n} ({rest_seconds:.1f} s)")
    for k, v in sorted(rest.count.items()):
        print(f"  {v:5d}  {k}")
    print(f"WebSocket cases: {ws_cases_n}")
    for k, v in sorted(ws.count.items()):
        print(f"  {v:5d}  {k}")
    print(f"total: {rest_cases_n + ws_cases_n} cases in {time.monotonic() - started:.1f} s")
    figures.record("Bad input table", cases=rest_cases_n + ws_cases_n, rest_cases=rest_cases_n,
                   ws_cases=ws_cases_n, server_errors=rest.server_errors + log.count(" 500 "))

    failures = rest.failures + ws.failures
    assert not failures, f"{len(failures)} of {rest_cases_n + ws_cases_n} cases failed:\n" + \
        "\n".join(failures[:60]) + ("\n..." if len(failures) > 60 else "")
    assert rest.server_errors == 0
    assert_no_server_errors(server)
