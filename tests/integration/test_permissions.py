"""Permission matrix for every chat, message and pin endpoint of API.md.

One group (owner, two admins, plain members, and a plain member "sender" who wrote the
message under test) and one private chat (member + sender), tried as each actor:
outsider (not a member), plain member, admin, owner, sender. Every case builds its own
small "world" (chats are cheap; users are registered once per module), so destructive
actions (delete chat, remove member, pin, delete message) never leak into other cases.

Design rules under test (see API.md and src/chat/permissions.cpp):
- a chat you are not in is 404 everywhere, never 403, and its 404 is byte-for-byte the
  404 of an id that does not exist;
- private: both are "member"; any member pins/unpins and deletes the chat; nobody
  renames, adds, changes roles or removes (403);
- group: rename owner/admin; delete chat owner only; add owner/admin, add an admin owner
  only; change role owner only; remove: owner anyone, admin plain members only, a member
  only themself; pin/unpin owner/admin;
- messages: edit sender only; delete for everyone sender or group owner/admin;
  delete ?for=me any member;
- owner leaving: the oldest admin, else the oldest member, becomes owner; the last member
  leaving deletes the group -- also when the leaves happen at the same moment.
"""
import threading
import uuid

import pytest

from conftest import Client, unique_name

BOGUS = 987_654_321_987  # an id that never exists

GROUP_ACTORS = ("outsider", "member", "admin", "owner", "sender")
PRIVATE_ACTORS = ("outsider", "member", "sender")


# ---- users (registered once) ----------------------------------------------------------------

class Env:
    ROLES = ("owner", "admin", "admin2", "member", "sender", "plain", "outsider", "spare")

    def __init__(self, client):
        self.c = client
        self.u = {}
        for role in self.ROLES:  # registration order = id order
            reg = client.register(unique_name(role[:4]))
            self.u[role] = {"id": reg["user"]["id"], "token": reg["access"],
                            "username": reg["user"]["username"]}
        # The outsider's own chat: a legitimate target for the outsider's forwards, and a
        # chat nobody else is in.
        r = self.req("outsider", "POST", "/api/chats/",
                     {"type": "group", "name": "outsider-solo", "member_ids": []})
        assert r.status_code == 201, r.text
        self.outsider_chat = r.json()["id"]

    def tok(self, who):
        return self.u[who]["token"]

    def id(self, who):
        return self.u[who]["id"]

    def req(self, who, method, path, body=None):
        kw = {"token": self.tok(who)}
        if body is not None:
            kw["json"] = body
        return self.c.request(method, path, **kw)


@pytest.fixture(scope="module")
def env(server):
    return Env(Client(server))


class World:
    def __init__(self, kind, chat, msg, word, pin=None):
        self.kind, self.chat, self.msg, self.word, self.pin = kind, chat, msg, word, pin

    def bogus(self):
        """The same world with every object id replaced by one that does not exist."""
        return World(self.kind, BOGUS, BOGUS, self.word, BOGUS)


def new_word():
    return "w" + uuid.uuid4().hex[:10]


def make_group(env, pin=False):
    members = [env.id(n) for n in ("admin", "admin2", "member", "sender", "plain")]
    r = env.req("owner", "POST", "/api/chats/",
                {"type": "group", "name": unique_name("g"), "member_ids": members})
    assert r.status_code == 201, r.text
    chat = r.json()["id"]
    for n in ("admin", "admin2"):
        r = env.req("owner", "PATCH", f"/api/chats/{chat}/members/{env.id(n)}/", {"role": "admin"})
        assert r.status_code == 200, r.text
    word = new_word()
    r = env.req("sender", "POST", "/api/messages/", {"chat": chat, "text": f"hello {word}"})
    assert r.status_code == 201, r.text
    world = World("group", chat, r.json()["id"], word)
    if pin:
        r = env.req("owner", "POST", "/api/pinned/", {"message_id": world.msg})
        assert r.status_code == 201, r.text
        world.pin = r.json()["id"]
    return world


def make_private(env, pin=False):
    # Unique per pair: 201 the first time (or after a delete), 200 afterwards.
    r = env.req("member", "POST", "/api/chats/", {"type": "private", "member_ids": [env.id("sender")]})
    assert r.status_code in (200, 201), r.text
    chat = r.json()["id"]
    word = new_word()
    r = env.req("sender", "POST", "/api/messages/", {"chat": chat, "text": f"hello {word}"})
    assert r.status_code == 201, r.text
    world = World("private", chat, r.json()["id"], word)
    if pin:
        r = env.req("member", "POST", "/api/pinned/", {"message_id": world.msg})
        assert r.status_code == 201, r.text
        world.pin = r.json()["id"]
    return world


# ---- requests -------------------------------------------------------------------------------
# Each builder: (env, world, actor) -> (method, path, json body or None)

def other_member(env, actor):
    """In the private chat: the other one (the outsider 'targets' the member)."""
    return env.id("sender") if actor == "member" else env.id("member")


def fwd_target(env, world, actor):
    return env.outsider_chat if actor == "outsider" else world.chat


B = {
    "get_chat": lambda e, w, a: ("GET", f"/api/chats/{w.chat}/", None),
    "rename_patch": lambda e, w, a: ("PATCH", f"/api/chats/{w.chat}/", {"name": unique_name("n")}),
    "rename_put": lambda e, w, a: ("PUT", f"/api/chats/{w.chat}/", {"name": unique_name("n")}),
    "delete_chat": lambda e, w, a: ("DELETE", f"/api/chats/{w.chat}/", None),
    "add_member": lambda e, w, a: ("POST", f"/api/chats/{w.chat}/members/", {"user_id": e.id("spare")}),
    "add_admin": lambda e, w, a: ("POST", f"/api/chats/{w.chat}/members/",
                                  {"user_id": e.id("spare"), "role": "admin"}),
    "promote_plain": lambda e, w, a: ("PATCH", f"/api/chats/{w.chat}/members/{e.id('plain')}/", {"role": "admin"}),
    "demote_admin2": lambda e, w, a: ("PATCH", f"/api/chats/{w.chat}/members/{e.id('admin2')}/", {"role": "member"}),
    "remove_plain": lambda e, w, a: ("DELETE", f"/api/chats/{w.chat}/members/{e.id('plain')}/", None),
    "remove_admin2": lambda e, w, a: ("DELETE", f"/api/chats/{w.chat}/members/{e.id('admin2')}/", None),
    "remove_owner": lambda e, w, a: ("DELETE", f"/api/chats/{w.chat}/members/{e.id('owner')}/", None),
    "leave": lambda e, w, a: ("DELETE", f"/api/chats/{w.chat}/members/{e.id(a)}/", None),
    "promote_other": lambda e, w, a: ("PATCH", f"/api/chats/{w.chat}/members/{other_member(e, a)}/",
                                      {"role": "admin"}),
    "remove_other": lambda e, w, a: ("DELETE", f"/api/chats/{w.chat}/members/{other_member(e, a)}/", None),
    "mark_read": lambda e, w, a: ("POST", f"/api/chats/{w.chat}/read/", {"last_read_message_id": w.msg}),
    "history": lambda e, w, a: ("GET", f"/api/messages/?chat={w.chat}", None),
    "history_after": lambda e, w, a: ("GET", f"/api/messages/?chat={w.chat}&after=0", None),
    "send": lambda e, w, a: ("POST", "/api/messages/", {"chat": w.chat, "text": f"reply {w.word}"}),
    "send_client_id": lambda e, w, a: ("POST", "/api/messages/",
                                       {"chat": w.chat, "text": "with id", "client_id": uuid.uuid4().hex}),
    "search_in_chat": lambda e, w, a: ("GET", f"/api/messages/search/?q={w.word}&chat={w.chat}", None),
    "list_pins": lambda e, w, a: ("GET", f"/api/pinned/?chat={w.chat}", None),
    "edit_patch": lambda e, w, a: ("PATCH", f"/api/messages/{w.msg}/", {"text": f"edited {w.word}"}),
    "edit_put": lambda e, w, a: ("PUT", f"/api/messages/{w.msg}/", {"text": f"edited {w.word}"}),
    "delete_msg": lambda e, w, a: ("DELETE", f"/api/messages/{w.msg}/", None),
    "delete_msg_everyone": lambda e, w, a: ("DELETE", f"/api/messages/{w.msg}/?for=everyone", None),
    "delete_msg_for_me": lambda e, w, a: ("DELETE", f"/api/messages/{w.msg}/?for=me", None),
    "forward": lambda e, w, a: ("POST", f"/api/messages/{w.msg}/forward/",
                                {"target_chat_id": fwd_target(e, w, a)}),
    "forward_to_foreign_chat": lambda e, w, a: ("POST", f"/api/messages/{w.msg}/forward/",
                                                {"target_chat_id": e.outsider_chat}),
    "pin": lambda e, w, a: ("POST", "/api/pinned/", {"message_id": w.msg}),
    "unpin": lambda e, w, a: ("DELETE", f"/api/pinned/{w.pin}/", None),
}

# row -> expected status per actor (outsider, member, admin, owner, sender)
GROUP = {
    "get_chat": (404, 200, 200, 200, 200),
    "rename_patch": (404, 403, 200, 200, 403),
    "rename_put": (404, 403, 200, 200, 403),
    "delete_chat": (404, 403, 403, 204, 403),
    "add_member": (404, 403, 201, 201, 403),
    "add_admin": (404, 403, 403, 201, 403),
    "promote_plain": (404, 403, 403, 200, 403),
    "demote_admin2": (404, 403, 403, 200, 403),
    "remove_plain": (404, 403, 204, 204, 403),
    "remove_admin2": (404, 403, 403, 204, 403),
    "remove_owner": (404, 403, 403, 204, 403),
    "leave": (404, 204, 204, 204, 204),
    "mark_read": (404, 200, 200, 200, 200),
    "history": (404, 200, 200, 200, 200),
    "history_after": (404, 200, 200, 200, 200),
    "send": (404, 201, 201, 201, 201),
    "send_client_id": (404, 201, 201, 201, 201),
    "search_in_chat": (404, 200, 200, 200, 200),
    "list_pins": (404, 200, 200, 200, 200),
    "edit_patch": (404, 403, 403, 403, 200),
    "edit_put": (404, 403, 403, 403, 200),
    "delete_msg": (404, 403, 204, 204, 204),
    "delete_msg_everyone": (404, 403, 204, 204, 204),
    "delete_msg_for_me": (404, 204, 204, 204, 204),
    "forward": (404, 201, 201, 201, 201),
    "forward_to_foreign_chat": (404, 404, 404, 404, 404),
    "pin": (404, 403, 201, 201, 403),
    "unpin": (404, 403, 204, 204, 403),
}

# row -> expected status per actor (outsider, member, sender)
PRIVATE = {
    "get_chat": (404, 200, 200),
    "rename_patch": (404, 403, 403),
    "rename_put": (404, 403, 403),
    "delete_chat": (404, 204, 204),
    "add_member": (404, 403, 403),
    "add_admin": (404, 403, 403),
    "promote_other": (404, 403, 403),
    "remove_other": (404, 403, 403),
    "leave": (404, 403, 403),
    "mark_read": (404, 200, 200),
    "history": (404, 200, 200),
    "history_after": (404, 200, 200),
    "send": (404, 201, 201),
    "send_client_id": (404, 201, 201),
    "search_in_chat": (404, 200, 200),
    "list_pins": (404, 200, 200),
    "edit_patch": (404, 403, 200),
    "edit_put": (404, 403, 200),
    "delete_msg": (404, 403, 204),
    "delete_msg_everyone": (404, 403, 204),
    "delete_msg_for_me": (404, 204, 204),
    "forward": (404, 201, 201),
    "forward_to_foreign_chat": (404, 404, 404),
    "pin": (404, 201, 201),
    "unpin": (404, 204, 204),
}

CASES = ([("group", row, actor, exp) for row, exps in GROUP.items() for actor, exp in zip(GROUP_ACTORS, exps)]
         + [("private", row, actor, exp) for row, exps in PRIVATE.items()
            for actor, exp in zip(PRIVATE_ACTORS, exps)])


def build_world(env, kind, row):
    return (make_group if kind == "group" else make_private)(env, pin=(row == "unpin"))


def describe(who, method, path, body, r):
    return f"{who} {method} {path} {body!r} -> {r.status_code} {r.text[:300]!r}"


def members_of(env, who, chat):
    r = env.req(who, "GET", f"/api/chats/{chat}/")
    assert r.status_code == 200, r.text
    return {m["id"]: m["role"] for m in r.json()["members"]}


def verify_effect(env, world, row, actor, r):
    """For successful actions: the action did what it says (and only then)."""
    body = r.json() if r.content else None
    if row == "get_chat":
        assert body["id"] == world.chat and body["type"] == world.kind
    elif row.startswith("rename"):
        assert body["name"] and body["id"] == world.chat
    elif row == "delete_chat":
        witness = "member" if actor != "member" else "sender"
        assert env.req(witness, "GET", f"/api/chats/{world.chat}/").status_code == 404
    elif row in ("add_member", "add_admin"):
        assert body == {"id": env.id("spare"), "username": env.u["spare"]["username"],
                        "role": "admin" if row == "add_admin" else "member"}
        assert members_of(env, "owner", world.chat)[env.id("spare")] == body["role"]
    elif row == "promote_plain":
        assert body["role"] == "admin" and members_of(env, "owner", world.chat)[env.id("plain")] == "admin"
    elif row == "demote_admin2":
        assert body["role"] == "member" and members_of(env, "owner", world.chat)[env.id("admin2")] == "member"
    elif row in ("remove_plain", "remove_admin2"):
        gone = "plain" if row == "remove_plain" else "admin2"
        assert env.req(gone, "GET", f"/api/chats/{world.chat}/").status_code == 404
        assert env.id(gone) not in members_of(env, actor, world.chat)
    elif row in ("leave", "remove_owner"):
        assert env.req(actor, "GET", f"/api/chats/{world.chat}/").status_code == 404
        witness = "sender" if actor != "sender" else "member"
        roles = members_of(env, witness, world.chat)
        assert env.id(actor) not in roles
        assert list(roles.values()).count("owner") == 1, roles
        if actor == "owner":  # the oldest admin takes over
            owner = [uid for uid, role in roles.items() if role == "owner"][0]
            assert owner in (env.id("admin"), env.id("admin2")), roles
    elif row == "mark_read":
        assert set(body) == {"unread_count"} and body["unread_count"] >= 0
    elif row.startswith("history"):
        assert world.msg in [m["id"] for m in body["results"]]
    elif row.startswith("send"):
        assert body["chat"] == world.chat and body["sender_id"] == env.id(actor)
    elif row == "search_in_chat":
        assert [m["id"] for m in body["results"]] == [world.msg]
    elif row == "list_pins":
        assert isinstance(body, list)
    elif row.startswith("edit"):
        assert body["id"] == world.msg and body["is_edited"] is True and body["text"] == f"edited {world.word}"
    elif row in ("delete_msg", "delete_msg_everyone"):
        witness = "member" if actor != "member" else "sender"
        r2 = env.req(witness, "GET", f"/api/messages/?chat={world.chat}")
        m = [m for m in r2.json()["results"] if m["id"] == world.msg][0]
        assert m["is_deleted"] is True and m["text"] == ""
    elif row == "delete_msg_for_me":
        r2 = env.req(actor, "GET", f"/api/messages/?chat={world.chat}")
        assert world.msg not in [m["id"] for m in r2.json()["results"]]
        witness = "member" if actor != "member" else "sender"
        r2 = env.req(witness, "GET", f"/api/messages/?chat={world.chat}")
        m = [m for m in r2.json()["results"] if m["id"] == world.msg][0]
        assert m["is_deleted"] is False
    elif row == "forward":
        assert body["forwarded_from"] == world.msg and body["chat"] == world.chat
    elif row == "pin":
        assert body["message"]["id"] == world.msg and body["pinned_by"] == env.id(actor)
        pins = env.req("sender", "GET", f"/api/pinned/?chat={world.chat}").json()
        assert [p["id"] for p in pins if p["message"]["id"] == world.msg] == [body["id"]], pins
        chat = env.req("sender", "GET", f"/api/chats/{world.chat}/").json()
        assert world.msg in chat["pinned_message_ids"]
    elif row == "unpin":
        pins = env.req("sender", "GET", f"/api/pinned/?chat={world.chat}").json()
        assert world.pin not in [p["id"] for p in pins] and world.msg not in [p["message"]["id"] for p in pins]


@pytest.mark.parametrize("kind,row,actor,expected", CASES,
                         ids=[f"{k}:{r}:{a}" for k, r, a, _ in CASES])
def test_matrix(env, kind, row, actor, expected):
    world = build_world(env, kind, row)
    method, path, body = B[row](env, world, actor)
    r = env.req(actor, method, path, body)
    assert r.status_code == expected, f"[{kind}:{row}:{actor}] expected {expected}: " + describe(
        actor, method, path, body, r)
    if r.status_code in (403, 404):
        assert set(r.json()) == {"detail"}, describe(actor, method, path, body, r)
    if 200 <= r.status_code < 300:
        verify_effect(env, world, row, actor, r)
    else:  # a refused action changed nothing
        if row.startswith("edit"):
            m = [m for m in env.req("sender", "GET", f"/api/messages/?chat={world.chat}").json()["results"]
                 if m["id"] == world.msg][0]
            assert m["text"] == f"hello {world.word}" and m["is_edited"] is False
        elif row in ("delete_msg", "delete_msg_everyone"):
            m = [m for m in env.req("sender", "GET", f"/api/messages/?chat={world.chat}").json()["results"]
                 if m["id"] == world.msg][0]
            assert m["is_deleted"] is False
        elif row in ("delete_chat", "leave", "remove_other", "remove_owner", "remove_plain", "remove_admin2",
                     "add_member", "add_admin", "promote_plain", "demote_admin2", "promote_other"):
            before = {env.id(n) for n in (("owner", "admin", "admin2", "member", "sender", "plain")
                                          if kind == "group" else ("member", "sender"))}
            roles = members_of(env, "sender", world.chat)
            assert set(roles) == before, roles
            if kind == "group":
                assert roles[env.id("owner")] == "owner" and roles[env.id("plain")] == "member"
                assert roles[env.id("admin2")] == "admin"
            else:
                assert set(roles.values()) == {"member"}
        elif row == "pin":
            pins = env.req("sender", "GET", f"/api/pinned/?chat={world.chat}").json()
            assert world.msg not in [p["message"]["id"] for p in pins]
        elif row == "unpin":
            pins = env.req("sender", "GET", f"/api/pinned/?chat={world.chat}").json()
            assert world.pin in [p["id"] for p in pins]


# ---- 404 for outsiders reveals nothing ------------------------------------------------------

OUTSIDER_ROWS = ([("group", row) for row, exps in GROUP.items() if exps[0] == 404]
                 + [("private", row) for row, exps in PRIVATE.items() if exps[0] == 404])


def fingerprint(r):
    return r.status_code, r.headers.get("Content-Type"), r.content


@pytest.mark.parametrize("kind,row", OUTSIDER_ROWS, ids=[f"{k}:{r}" for k, r in OUTSIDER_ROWS])
def test_outsider_404_is_the_404_of_a_missing_id(env, kind, row):
    world = build_world(env, kind, row)
    real = B[row](env, world, "outsider")
    fake = B[row](env, world.bogus(), "outsider")
    r_real = env.req("outsider", *real)
    r_fake = env.req("outsider", *fake)
    assert fingerprint(r_real) == fingerprint(r_fake), (
        "outsider on an existing object: " + describe("outsider", *real, r_real)
        + " | missing object: " + describe("outsider", *fake, r_fake))
    assert r_real.status_code == 404
    # A member asking for a missing id gets the same answer too.
    r_member = env.req("member", *B[row](env, world.bogus(), "member"))
    if row not in ("leave",):  # the member's own id appears in that path, not the outsider's
        assert fingerprint(r_member) == fingerprint(r_fake), describe("member", *B[row](env, world.bogus(), "member"),
                                                                      r_member)


@pytest.mark.parametrize("kind", ["group", "private"])
def test_forward_into_foreign_chat_looks_like_missing_chat(env, kind):
    world = build_world(env, kind, "forward")
    foreign = env.req("sender", "POST", f"/api/messages/{world.msg}/forward/", {"target_chat_id": env.outsider_chat})
    missing = env.req("sender", "POST", f"/api/messages/{world.msg}/forward/", {"target_chat_id": BOGUS})
    assert fingerprint(foreign) == fingerprint(missing), (foreign.text, missing.text)
    assert foreign.status_code == 404
    # nothing was stored in the outsider's chat
    r = env.req("outsider", "GET", f"/api/messages/?chat={env.outsider_chat}")
    assert world.msg not in [m.get("forwarded_from") for m in r.json()["results"]]


def test_outsider_sees_nothing_in_lists_and_global_search(env):
    group, private = make_group(env), make_private(env)
    r = env.req("outsider", "GET", "/api/chats/")
    assert r.status_code == 200
    ids = {c["id"] for c in r.json()}
    assert group.chat not in ids and private.chat not in ids and env.outsider_chat in ids
    for world in (group, private):
        r = env.req("outsider", "GET", f"/api/messages/search/?q={world.word}")
        assert r.status_code == 200 and r.json()["results"] == [], r.text
        r = env.req("member", "GET", f"/api/messages/search/?q={world.word}")
        assert [m["id"] for m in r.json()["results"]] == [world.msg], r.text


def test_private_chat_members_are_both_member(env):
    world = make_private(env)
    roles = members_of(env, "member", world.chat)
    assert roles == {env.id("member"): "member", env.id("sender"): "member"}


def test_group_roles_of_the_world(env):
    world = make_group(env)
    assert members_of(env, "plain", world.chat) == {
        env.id("owner"): "owner", env.id("admin"): "admin", env.id("admin2"): "admin",
        env.id("member"): "member", env.id("sender"): "member", env.id("plain"): "member"}


def test_admin_may_not_promote_through_add_or_change_role(env):
    """An admin adding a user as admin is 403 and the user is not added at all (as member)."""
    world = make_group(env)
    r = env.req("admin", "POST", f"/api/chats/{world.chat}/members/", {"user_id": env.id("spare"), "role": "admin"})
    assert r.status_code == 403, r.text
    assert env.id("spare") not in members_of(env, "owner", world.chat)
    r = env.req("admin", "PATCH", f"/api/chats/{world.chat}/members/{env.id('admin')}/", {"role": "member"})
    assert r.status_code == 403, r.text
    assert members_of(env, "owner", world.chat)[env.id("admin")] == "admin"


def test_deleted_for_me_message_is_gone_for_that_member_only(env):
    world = make_group(env)
    assert env.req("member", "DELETE", f"/api/messages/{world.msg}/?for=me").status_code == 204
    # For the member the message no longer exists: acting on it is 404, like a missing id.
    r = env.req("member", "POST", f"/api/messages/{world.msg}/forward/", {"target_chat_id": world.chat})
    assert r.status_code == 404, r.text
    r = env.req("member", "GET", f"/api/messages/search/?q={world.word}&chat={world.chat}")
    assert r.status_code == 200 and r.json()["results"] == []
    # Others still see and act on it.
    r = env.req("owner", "GET", f"/api/messages/search/?q={world.word}&chat={world.chat}")
    assert [m["id"] for m in r.json()["results"]] == [world.msg]
    assert env.req("sender", "PATCH", f"/api/messages/{world.msg}/", {"text": "still here"}).status_code == 200


def test_the_pin_of_a_message_hidden_for_me_is_gone_for_me_too(env):
    world = make_group(env, pin=True)
    assert env.req("admin", "DELETE", f"/api/messages/{world.msg}/?for=me").status_code == 204
    # The admin may unpin, but not a pin of a message gone for them: 404, and it stays.
    r = env.req("admin", "DELETE", f"/api/pinned/{world.pin}/")
    assert r.status_code == 404, r.text
    r = env.req("owner", "GET", f"/api/pinned/?chat={world.chat}")
    assert [p["id"] for p in r.json()] == [world.pin], r.text
    assert env.req("admin2", "DELETE", f"/api/pinned/{world.pin}/").status_code == 204


# ---- owner succession and the last member -------------------------------------------------

@pytest.fixture(scope="module")
def heirs(env):
    """Four fresh users (ids increasing in this order) for the succession tests."""
    out = []
    for i in range(4):
        reg = env.c.register(unique_name(f"h{i}"))
        out.append({"id": reg["user"]["id"], "token": reg["access"]})
    assert [u["id"] for u in out] == sorted(u["id"] for u in out)
    return out


def call(c, user, method, path, body=None):
    kw = {"token": user["token"]}
    if body is not None:
        kw["json"] = body
    return c.request(method, path, **kw)


def roles_seen_by(c, user, chat):
    r = call(c, user, "GET", f"/api/chats/{chat}/")
    assert r.status_code == 200, r.text
    return {m["id"]: m["role"] for m in r.json()["members"]}


def all_events(c, user, since=0):
    out = []
    while True:
        r = call(c, user, "GET", f"/api/events/?since={since}&limit=1000")
        assert r.status_code == 200, r.text
        body = r.json()
        out += body["results"]
        since = body["seq"]
        if not body["has_more"]:
            return out


def test_owner_leaving_hands_the_group_to_the_oldest_admin(env, heirs):
    c = env.c
    owner, lo, mid, hi = heirs
    r = call(c, owner, "POST", "/api/chats/", {"type": "group", "name": "succession", "member_ids": []})
    assert r.status_code == 201
    chat = r.json()["id"]
    # Join order: hi (member), mid (admin), lo (admin). By id, lo is the smallest; by
    # joining, hi is the oldest member, mid the oldest admin.
    for user, role in ((hi, "member"), (mid, "admin"), (lo, "admin")):
        r = call(c, owner, "POST", f"/api/chats/{chat}/members/", {"user_id": user["id"], "role": role})
        assert r.status_code == 201, r.text
    r = call(c, owner, "DELETE", f"/api/chats/{chat}/members/{owner['id']}/")
    assert r.status_code == 204, r.text
    assert call(c, owner, "GET", f"/api/chats/{chat}/").status_code == 404
    assert roles_seen_by(c, hi, chat) == {hi["id"]: "member", mid["id"]: "owner", lo["id"]: "admin"}
    # The new owner has the owner's powers; the old owner has none.
    r = call(c, mid, "PATCH", f"/api/chats/{chat}/members/{hi['id']}/", {"role": "admin"})
    assert r.status_code == 200, r.text
    r = call(c, mid, "PATCH", f"/api/chats/{chat}/members/{hi['id']}/", {"role": "member"})
    assert r.status_code == 200, r.text
    assert call(c, owner, "PATCH", f"/api/chats/{chat}/", {"name": "x"}).status_code == 404
    # The hand-over is an event for the members.
    events = [e for e in all_events(c, hi) if e.get("chat_id") == chat]
    assert {"type": "member_updated", "chat_id": chat, "user_id": mid["id"], "role": "owner"} in [
        {k: e[k] for k in ("type", "chat_id", "user_id", "role") if k in e} for e in events], events
    # The next owner leaving: lo is the only admin left.
    assert call(c, mid, "DELETE", f"/api/chats/{chat}/members/{mid['id']}/").status_code == 204
    assert roles_seen_by(c, hi, chat) == {hi["id"]: "member", lo["id"]: "owner"}
    # Owner lo leaves: no admin remains, the oldest (only) member takes over.
    assert call(c, lo, "DELETE", f"/api/chats/{chat}/members/{lo['id']}/").status_code == 204
    assert roles_seen_by(c, hi, chat) == {hi["id"]: "owner"}
    # The last member leaves: the group is deleted.
    assert call(c, hi, "DELETE", f"/api/chats/{chat}/members/{hi['id']}/").status_code == 204
    assert call(c, hi, "GET", f"/api/chats/{chat}/").status_code == 404
    assert chat not in [x["id"] for x in call(c, hi, "GET", "/api/chats/").json()]
    deleted = [e for e in all_events(c, hi) if e.get("chat_id") == chat and e["type"] == "chat_deleted"]
    assert len(deleted) == 1, deleted


def test_owner_leaving_without_admins_hands_over_to_the_oldest_member(env, heirs):
    c = env.c
    owner, lo, mid, hi = heirs
    r = call(c, owner, "POST", "/api/chats/", {"type": "group", "name": "succession2", "member_ids": []})
    chat = r.json()["id"]
    for user in (hi, lo, mid):  # joining order differs from id order
        assert call(c, owner, "POST", f"/api/chats/{chat}/members/", {"user_id": user["id"]}).status_code == 201
    assert call(c, owner, "DELETE", f"/api/chats/{chat}/members/{owner['id']}/").status_code == 204
    assert roles_seen_by(c, lo, chat) == {hi["id"]: "owner", lo["id"]: "member", mid["id"]: "member"}


def test_admin_or_member_leaving_keeps_the_owner(env, heirs):
    c = env.c
    owner, lo, mid, hi = heirs
    r = call(c, owner, "POST", "/api/chats/", {"type": "group", "name": "keep", "member_ids": []})
    chat = r.json()["id"]
    assert call(c, owner, "POST", f"/api/chats/{chat}/members/", {"user_id": lo["id"], "role": "admin"}).status_code == 201
    assert call(c, owner, "POST", f"/api/chats/{chat}/members/", {"user_id": mid["id"]}).status_code == 201
    assert call(c, lo, "DELETE", f"/api/chats/{chat}/members/{lo['id']}/").status_code == 204
    assert call(c, mid, "DELETE", f"/api/chats/{chat}/members/{mid['id']}/").status_code == 204
    assert roles_seen_by(c, owner, chat) == {owner["id"]: "owner"}
    # A former member is an outsider now: 404, not 403.
    assert call(c, mid, "GET", f"/api/messages/?chat={chat}").status_code == 404
    assert call(c, lo, "POST", f"/api/chats/{chat}/members/", {"user_id": hi["id"]}).status_code == 404


def test_sole_owner_leaving_deletes_the_group(env, heirs):
    c = env.c
    owner = heirs[0]
    r = call(c, owner, "POST", "/api/chats/", {"type": "group", "name": "solo", "member_ids": []})
    chat = r.json()["id"]
    r = call(c, owner, "POST", "/api/messages/", {"chat": chat, "text": "alone"})
    assert r.status_code == 201
    msg = r.json()["id"]
    assert call(c, owner, "DELETE", f"/api/chats/{chat}/members/{owner['id']}/").status_code == 204
    assert call(c, owner, "GET", f"/api/chats/{chat}/").status_code == 404
    assert call(c, owner, "POST", f"/api/messages/{msg}/forward/", {"target_chat_id": chat}).status_code == 404
    deleted = [e for e in all_events(c, owner) if e.get("chat_id") == chat and e["type"] == "chat_deleted"]
    assert len(deleted) == 1, deleted


# ---- succession under concurrent leaves ---------------------------------------------------

def together(server, calls):
    """Makes every (user, method, path, body) call at the same moment, each on its own
    connection; their statuses, in order."""
    barrier = threading.Barrier(len(calls))
    statuses = [None] * len(calls)

    def go(k):
        c = Client(server)
        barrier.wait()
        statuses[k] = call(c, *calls[k]).status_code

    threads = [threading.Thread(target=go, args=(k,)) for k in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


def leave_together(server, chat, users):
    """All `users` leave `chat` at the same moment, each on its own connection."""
    return together(server, [(u, "DELETE", f"/api/chats/{chat}/members/{u['id']}/") for u in users])


ROUNDS = 15


def test_owner_and_heir_leaving_at_once_leave_exactly_one_owner(server, env, heirs):
    """The owner and the oldest admin leave at the same moment: whoever stays must end up
    with exactly one owner (never a group without an owner)."""
    c = env.c
    owner, admin, member, _ = heirs
    bad = []
    for _ in range(ROUNDS):
        chat = call(c, owner, "POST", "/api/chats/", {"type": "group", "name": "race", "member_ids": []}).json()["id"]
        assert call(c, owner, "POST", f"/api/chats/{chat}/members/", {"user_id": admin["id"], "role": "admin"}).status_code == 201
        assert call(c, owner, "POST", f"/api/chats/{chat}/members/", {"user_id": member["id"]}).status_code == 201
        statuses = leave_together(server, chat, [owner, admin])
        assert statuses == [204, 204], statuses
        roles = roles_seen_by(c, member, chat)
        # The remaining (last) member can always leave, which deletes the group.
        left = call(c, member, "DELETE", f"/api/chats/{chat}/members/{member['id']}/")
        if roles != {member["id"]: "owner"} or left.status_code != 204:
            bad.append((chat, roles, f"last member leaving -> {left.status_code} {left.text}"))
    assert not bad, ("groups left without exactly one owner (chat, roles seen by the remaining member, "
                     f"that member's own leave): {bad}")


def test_last_two_members_leaving_at_once_delete_the_group(server, env, heirs):
    """The last two members leave at the same moment: the group is deleted (the last
    one out gets `chat_deleted`), not left behind with no members."""
    c = env.c
    owner, admin, _, _ = heirs
    since = {u["id"]: all_events_cursor(c, u) for u in (owner, admin)}
    chats = []
    for _ in range(ROUNDS):
        chat = call(c, owner, "POST", "/api/chats/", {"type": "group", "name": "race2", "member_ids": []}).json()["id"]
        assert call(c, owner, "POST", f"/api/chats/{chat}/members/", {"user_id": admin["id"], "role": "admin"}).status_code == 201
        statuses = leave_together(server, chat, [owner, admin])
        assert statuses == [204, 204], statuses
        chats.append(chat)
    deleted = {}
    for u in (owner, admin):
        for e in all_events(c, u, since[u["id"]]):
            if e["type"] == "chat_deleted":
                deleted[e["chat_id"]] = deleted.get(e["chat_id"], 0) + 1
    orphaned = [chat for chat in chats if deleted.get(chat, 0) == 0]
    assert not orphaned, f"groups whose last members left but which were never deleted: {orphaned}"


def all_events_cursor(c, user):
    since = 0
    while True:
        body = call(c, user, "GET", f"/api/events/?since={since}&limit=1000").json()
        since = body["seq"]
        if not body["has_more"]:
            return since


# ---- rights taken away while a request that used them is on its way -----------------------

RIGHTS_ROUNDS = 10


def test_a_right_taken_away_meanwhile_is_not_used(server, env, heirs):
    """A request checked against a role that a concurrent demotion, removal or departure
    takes away must either commit before that change or be refused: never commit after it.
    (Each of these committed after the change in 3-11 of 30 tries before the writes checked
    the caller's standing themselves.)"""
    c = env.c
    owner, admin, member, bystander = heirs
    bad = []

    def group():
        chat = call(c, owner, "POST", "/api/chats/", {"type": "group", "name": "rights", "member_ids": [
            member["id"], bystander["id"]]}).json()["id"]
        r = call(c, owner, "POST", f"/api/chats/{chat}/members/", {"user_id": admin["id"], "role": "admin"})
        assert r.status_code == 201, r.text
        return chat

    def order(chat, since):
        """The chat's member and chat events as the bystander got them: (type, user, role)."""
        return [(e["type"], e.get("user_id"), e.get("role")) for e in all_events(c, bystander, since)
                if e.get("chat_id") == chat and e["type"] in ("member_removed", "member_updated", "chat_updated")]

    def after(events, first, then):
        return first in events and then in events and events.index(first) < events.index(then)

    for _ in range(RIGHTS_ROUNDS):
        since = all_events_cursor(c, bystander)
        # The owner leaves while removing the admin: after leaving, they remove nobody.
        chat = group()
        together(server, [(owner, "DELETE", f"/api/chats/{chat}/members/{owner['id']}/"),
                          (owner, "DELETE", f"/api/chats/{chat}/members/{admin['id']}/")])
        ev = order(chat, since)
        if after(ev, ("member_removed", owner["id"], "owner"), ("member_removed", admin["id"], "admin")) or \
                after(ev, ("member_removed", owner["id"], "owner"), ("member_removed", admin["id"], "owner")):
            bad.append(("removed after leaving", ev))
        # The admin is demoted while removing a member; then removed while removing one.
        for change in ("demote", "remove"):
            since = all_events_cursor(c, bystander)
            chat = group()
            if change == "demote":
                first = (owner, "PATCH", f"/api/chats/{chat}/members/{admin['id']}/", {"role": "member"})
                lost = ("member_updated", admin["id"], "member")
            else:
                first = (owner, "DELETE", f"/api/chats/{chat}/members/{admin['id']}/")
                lost = ("member_removed", admin["id"], "admin")
            together(server, [first, (admin, "DELETE", f"/api/chats/{chat}/members/{member['id']}/")])
            ev = order(chat, since)
            if after(ev, lost, ("member_removed", member["id"], "member")):
                bad.append((f"member removed by an admin after the admin's {change}", ev))
        # The admin is demoted while renaming the group.
        since = all_events_cursor(c, bystander)
        chat = group()
        together(server, [(owner, "PATCH", f"/api/chats/{chat}/members/{admin['id']}/", {"role": "member"}),
                          (admin, "PATCH", f"/api/chats/{chat}/", {"name": "by a demoted admin"})])
        ev = order(chat, since)
        renamed = [e for e in ev if e[0] == "chat_updated"]
        if renamed and after(ev, ("member_updated", admin["id"], "member"), renamed[0]):
            bad.append(("renamed after the demotion", ev))
        # One pin unpinned twice at once: one 204, one 404 (as DRF's destroy answers).
        message = call(c, member, "POST", "/api/messages/", {"chat": chat, "text": "pin me"}).json()["id"]
        pin = call(c, owner, "POST", "/api/pinned/", {"message_id": message})
        assert pin.status_code in (200, 201), pin.text
        statuses = together(server, [(owner, "DELETE", f"/api/pinned/{pin.json()['id']}/")] * 2)
        if sorted(statuses) != [204, 404]:
            bad.append(("two unpins of one pin", statuses))
    assert not bad, bad
