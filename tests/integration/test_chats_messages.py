"""Chats, messages, pins, search, receipts and the event log over REST (API.md)."""
import json
import os
import re
import sqlite3
import threading
import time

import pytest

from conftest import ROOT, Client, assert_no_server_errors, unique_name


@pytest.fixture(scope="module")
def people(server):
    c = Client(server)
    return {name: c.register(unique_name(name)) for name in ("ann", "bob", "cat", "dan")}


def uid(p):
    return p["user"]["id"]


def new_group(c, owner, *members, name="team"):
    r = c.post("/api/chats/", token=owner["access"],
               json={"type": "group", "name": name, "member_ids": [uid(m) for m in members]})
    assert r.status_code == 201, r.text
    return r.json()


def send(c, who, chat_id, text, **extra):
    r = c.post("/api/messages/", token=who["access"], json={"chat": chat_id, "text": text, **extra})
    assert r.status_code in (200, 201), r.text
    return r.json()


def history(c, who, chat_id, **params):
    q = "&".join(f"{k}={v}" for k, v in params.items())
    r = c.get(f"/api/messages/?chat={chat_id}&{q}", token=who["access"])
    assert r.status_code == 200, r.text
    return r.json()


def chat_of(c, who, chat_id):
    r = c.get(f"/api/chats/{chat_id}/", token=who["access"])
    assert r.status_code == 200, r.text
    return r.json()


# ---- chats ----------------------------------------------------------------------------

def test_private_chat_is_unique_per_pair(client):
    a, b = client.register(), client.register()
    r = client.post("/api/chats/", token=a["access"], json={"type": "private", "member_ids": [uid(b)]})
    assert r.status_code == 201
    chat = r.json()
    assert chat["type"] == "private" and chat["name"] == ""
    assert sorted(m["id"] for m in chat["members"]) == sorted([uid(a), uid(b)])
    assert {m["role"] for m in chat["members"]} == {"member"}
    assert chat["last_message"] is None and chat["unread_count"] == 0
    assert chat["last_read_message_id"] == 0 and chat["pinned_message_ids"] == []
    again = client.post("/api/chats/", token=b["access"], json={"type": "private", "member_ids": [uid(a)]})
    assert again.status_code == 200
    assert again.json()["id"] == chat["id"]


def test_chat_validation(client, people):
    ann = people["ann"]
    cases = [
        ({}, {"type"}),
        ({"type": "channel", "member_ids": []}, {"type"}),
        ({"type": "private"}, {"member_ids"}),
        ({"type": "private", "member_ids": [uid(ann)]}, {"member_ids"}),  # yourself
        ({"type": "private", "member_ids": [uid(people["bob"]), uid(people["cat"])]}, {"member_ids"}),
        ({"type": "private", "member_ids": [999999]}, {"member_ids"}),
        ({"type": "group", "member_ids": []}, {"name"}),
        ({"type": "group", "name": "", "member_ids": []}, {"name"}),
        ({"type": "group", "name": "x" * 256, "member_ids": []}, {"name"}),
        ({"type": "group", "name": "ok", "member_ids": "1,2"}, {"member_ids"}),
        ({"type": "group", "name": "ok", "member_ids": ["a"]}, {"member_ids"}),
    ]
    for body, fields in cases:
        r = client.post("/api/chats/", token=ann["access"], json=body)
        assert r.status_code == 400, (body, r.text)
        assert set(r.json()) == fields, (body, r.text)


def test_choices_are_read_as_drfs_choicefield(client, people):
    """type and role are DRF ChoiceFields: a value not among the choices is quoted as Python's
    str() shows it, untrimmed, and null "may not be null"."""
    ann, bob = people["ann"], people["bob"]
    for value, shown in (("channel", "channel"), (" group ", " group "), ("", ""), (1, "1"),
                         (True, "True"), (1.5, "1.5"), (["group"], "['group']"),
                         ({"a": "it's", "b": None}, "{'a': \"it's\", 'b': None}"),
                         (["tab\there", "\u00a0"], "['tab\\there', '\\xa0']")):
        r = client.post("/api/chats/", token=ann["access"],
                        json={"type": value, "name": "x", "member_ids": []})
        assert (r.status_code, r.json()) == (400, {"type": [f'"{shown}" is not a valid choice.']}), (value, r.text)
    r = client.post("/api/chats/", token=ann["access"], json={"type": None, "name": "x", "member_ids": []})
    assert (r.status_code, r.json()) == (400, {"type": ["This field may not be null."]}), r.text
    g = new_group(client, ann)
    r = client.post(f"/api/chats/{g['id']}/members/", token=ann["access"], json={"user_id": uid(bob), "role": ["admin"]})
    assert (r.status_code, r.json()) == (400, {"role": ['"[\'admin\']" is not a valid choice.']}), r.text
    r = client.post(f"/api/chats/{g['id']}/members/", token=ann["access"], json={"user_id": uid(bob), "role": "admin"})
    assert r.status_code == 201, r.text
    r = client.patch(f"/api/chats/{g['id']}/members/{uid(bob)}/", token=ann["access"], json={"role": ""})
    assert (r.status_code, r.json()) == (400, {"role": ['"" is not a valid choice.']}), r.text
    r = client.patch(f"/api/chats/{g['id']}/members/{uid(bob)}/", token=ann["access"], json={"role": None})
    assert (r.status_code, r.json()) == (400, {"role": ["This field may not be null."]}), r.text


def test_group_roles_rename_and_members(client, people):
    ann, bob, cat, dan = (people[n] for n in ("ann", "bob", "cat", "dan"))
    g = new_group(client, ann, bob)
    roles = {m["id"]: m["role"] for m in g["members"]}
    assert roles == {uid(ann): "owner", uid(bob): "member"}
    r = client.patch(f"/api/chats/{g['id']}/", token=ann["access"], json={"name": "renamed"})
    assert r.status_code == 200 and r.json()["name"] == "renamed"
    # The same name again: the same answer, and nothing logged for the members.
    seq = client.get("/api/events/?since=0", token=bob["access"]).json()["seq"]
    again = client.patch(f"/api/chats/{g['id']}/", token=ann["access"], json={"name": "renamed"})
    assert again.status_code == 200 and again.json() == r.json(), (again.text, r.text)
    assert client.get(f"/api/events/?since={seq}", token=bob["access"]).json()["results"] == []
    r = client.post(f"/api/chats/{g['id']}/members/", token=ann["access"], json={"user_id": uid(cat), "role": "admin"})
    assert r.status_code == 201
    assert r.json() == {"id": uid(cat), "username": cat["user"]["username"], "role": "admin"}
    r = client.post(f"/api/chats/{g['id']}/members/", token=ann["access"], json={"user_id": uid(cat)})
    assert r.status_code == 400
    r = client.post(f"/api/chats/{g['id']}/members/", token=ann["access"], json={"user_id": uid(dan), "role": "owner"})
    assert r.status_code == 400 and "role" in r.json()
    r = client.patch(f"/api/chats/{g['id']}/members/{uid(bob)}/", token=ann["access"], json={"role": "admin"})
    assert r.status_code == 200 and r.json()["role"] == "admin"
    r = client.patch(f"/api/chats/{g['id']}/members/{uid(ann)}/", token=ann["access"], json={"role": "member"})
    assert r.status_code == 400 and r.json() == {"role": ["The owner's role cannot be changed."]}
    r = client.request("DELETE", f"/api/chats/{g['id']}/members/{uid(bob)}/", token=ann["access"])
    assert r.status_code == 204
    assert client.get(f"/api/chats/{g['id']}/", token=bob["access"]).status_code == 404
    members = {m["id"] for m in chat_of(client, ann, g["id"])["members"]}
    assert members == {uid(ann), uid(cat)}


def test_owner_leaving_hands_over_and_last_member_deletes(client, people):
    ann, bob, cat = people["ann"], people["bob"], people["cat"]
    g = new_group(client, ann, bob, cat)
    client.patch(f"/api/chats/{g['id']}/members/{uid(cat)}/", token=ann["access"], json={"role": "admin"})
    assert client.request("DELETE", f"/api/chats/{g['id']}/members/{uid(ann)}/", token=ann["access"]).status_code == 204
    roles = {m["id"]: m["role"] for m in chat_of(client, bob, g["id"])["members"]}
    assert roles == {uid(bob): "member", uid(cat): "owner"}  # the admin, though bob is older
    client.request("DELETE", f"/api/chats/{g['id']}/members/{uid(cat)}/", token=cat["access"])
    assert {m["id"]: m["role"] for m in chat_of(client, bob, g["id"])["members"]} == {uid(bob): "owner"}
    assert client.request("DELETE", f"/api/chats/{g['id']}/members/{uid(bob)}/", token=bob["access"]).status_code == 204
    assert client.get(f"/api/chats/{g['id']}/", token=bob["access"]).status_code == 404


def test_a_group_has_at_most_ten_thousand_members(make_server):
    """The cap holds at creation and for members added later; a place freed can be
    taken again. The 10,000 users are written straight into the database (registering
    them would take minutes), of a server of their own."""
    server = make_server()
    client = Client(server)
    owner = client.register()
    prefix = "cap" + unique_name()[:8]
    server.db.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000) "
        "INSERT INTO users(username, username_key, email, password_hash, date_joined) "
        "SELECT ? || i, ? || i, '', 'x', 0 FROM n", prefix, prefix)
    ids = [row[0] for row in server.db.query(
        "SELECT id FROM users WHERE username_key LIKE ? ORDER BY id", prefix + "%")]
    assert len(ids) == 10000
    r = client.post("/api/chats/", token=owner["access"],
                    json={"type": "group", "name": "too many", "member_ids": ids})
    assert (r.status_code, r.json()) == (400, {"member_ids": ["Too many members."]}), r.text[:300]
    r = client.post("/api/chats/", token=owner["access"],
                    json={"type": "group", "name": "full", "member_ids": ids[:9999]})
    assert r.status_code == 201 and len(r.json()["members"]) == 10000, r.text[:300]
    g = r.json()["id"]
    r = client.post(f"/api/chats/{g}/members/", token=owner["access"], json={"user_id": ids[9999]})
    assert (r.status_code, r.json()) == (400, {"non_field_errors": ["A group has at most 10000 members."]}), r.text
    # Adding someone already there still says so.
    r = client.post(f"/api/chats/{g}/members/", token=owner["access"], json={"user_id": ids[0]})
    assert (r.status_code, r.json()) == (400, {"user_id": ["This user is already a member of the chat."]}), r.text
    r = client.request("DELETE", f"/api/chats/{g}/members/{ids[0]}/", token=owner["access"])
    assert r.status_code == 204, r.text
    r = client.post(f"/api/chats/{g}/members/", token=owner["access"], json={"user_id": ids[9999]})
    assert r.status_code == 201, r.text

def test_chat_list_order_last_message_unread_and_pins(client):
    a, b = client.register(), client.register()
    g1 = new_group(client, a, b, name="first")
    g2 = new_group(client, a, b, name="second")
    m1 = send(client, a, g1["id"], "older activity")
    m2 = send(client, a, g2["id"], "newer activity")
    listed = client.get("/api/chats/", token=b["access"]).json()
    ids = [c["id"] for c in listed]
    assert ids.index(g2["id"]) < ids.index(g1["id"])
    send(client, b, g1["id"], "bump")  # now g1 is the most recent
    listed = client.get("/api/chats/", token=b["access"]).json()
    assert listed[0]["id"] == g1["id"]
    assert listed[0]["last_message"]["text"] == "bump"
    second = next(c for c in listed if c["id"] == g2["id"])
    assert second["unread_count"] == 1 and second["last_message"]["id"] == m2["id"]
    assert second["last_message"]["client_id"] is None
    # b's own message moved b's watermark past a's older one.
    first = next(c for c in listed if c["id"] == g1["id"])
    assert first["unread_count"] == 0 and first["last_read_message_id"] > m1["id"]
    client.post("/api/pinned/", token=a["access"], json={"message_id": m2["id"]})
    assert chat_of(client, b, g2["id"])["pinned_message_ids"] == [m2["id"]]


def test_chat_list_ranks_by_what_the_viewer_still_sees(client):
    a, b = client.register(), client.register()
    g1 = new_group(client, a, b, name="quiet")
    g2 = new_group(client, a, b, name="busy")
    old = send(client, a, g1["id"], "old in the quiet one")
    newer = send(client, a, g2["id"], "newer in the busy one")
    newest = send(client, a, g1["id"], "newest in the quiet one")

    def order(who):
        listed = client.get("/api/chats/", token=who["access"]).json()
        return [c["id"] for c in listed if c["id"] in (g1["id"], g2["id"])], listed

    assert order(b)[0] == [g1["id"], g2["id"]]
    # b hides the quiet chat's newest message: for b it ranks by the one before, as its
    # last_message says; for a nothing moves.
    assert client.request("DELETE", f"/api/messages/{newest['id']}/?for=me",
                          token=b["access"]).status_code == 204
    ids, listed = order(b)
    assert ids == [g2["id"], g1["id"]]
    assert next(c for c in listed if c["id"] == g1["id"])["last_message"]["id"] == old["id"]
    assert next(c for c in listed if c["id"] == g2["id"])["last_message"]["id"] == newer["id"]
    assert order(a)[0] == [g1["id"], g2["id"]]
    # Hiding everything in it ranks it by its creation, before the busy chat was made.
    assert client.request("DELETE", f"/api/messages/{old['id']}/?for=me",
                          token=b["access"]).status_code == 204
    ids, listed = order(b)
    assert ids == [g2["id"], g1["id"]]
    assert next(c for c in listed if c["id"] == g1["id"])["last_message"] is None


def test_delete_chat(client, people):
    ann, bob = people["ann"], people["bob"]
    g = new_group(client, ann, bob)
    assert client.request("DELETE", f"/api/chats/{g['id']}/", token=bob["access"]).status_code == 403
    assert client.request("DELETE", f"/api/chats/{g['id']}/", token=ann["access"]).status_code == 204
    assert client.get(f"/api/chats/{g['id']}/", token=ann["access"]).status_code == 404
    assert g["id"] not in [c["id"] for c in client.get("/api/chats/", token=bob["access"]).json()]


def test_delete_chat_with_many_messages(client, people):
    # Deleting the rows needs megabytes of undo copies in the write's savepoint.
    ann, bob = people["ann"], people["bob"]
    g = new_group(client, ann, bob, name="long history")
    tag = unique_name("h")
    for i in range(1500):
        send(client, ann, g["id"], f"{i} {tag} " + "many words of history " * 20)
    r = client.request("DELETE", f"/api/chats/{g['id']}/", token=ann["access"])
    assert r.status_code == 204, r.text
    assert client.get(f"/api/chats/{g['id']}/", token=ann["access"]).status_code == 404
    r = client.get(f"/api/messages/search/?q={tag}", token=bob["access"])
    assert r.status_code == 200, r.text
    assert r.json()["results"] == []


def test_join_starts_with_nothing_unread(client):
    a, b, c = client.register(), client.register(), client.register()
    g = new_group(client, a, b)
    for i in range(3):
        last = send(client, a, g["id"], f"before c joined {i}")
    client.post(f"/api/chats/{g['id']}/members/", token=a["access"], json={"user_id": uid(c)})
    view = chat_of(client, c, g["id"])
    assert view["unread_count"] == 0 and view["last_read_message_id"] == last["id"]
    assert chat_of(client, b, g["id"])["unread_count"] == 3


# ---- messages ---------------------------------------------------------------------------

def test_message_shape_trimming_and_limits(client, people):
    ann, bob = people["ann"], people["bob"]
    g = new_group(client, ann, bob)
    m = send(client, ann, g["id"], "  hello  ")
    assert set(m) == {"id", "chat", "sender_id", "sender", "text", "created_at", "edited_at", "is_edited",
                      "is_deleted", "forwarded_from", "client_id", "status"}
    assert m["text"] == "hello" and m["chat"] == g["id"] and m["sender_id"] == uid(ann)
    assert m["sender"] == ann["user"]["username"] and m["status"] == "sent"
    assert m["created_at"].endswith("Z") and m["edited_at"] is None and not m["is_edited"]
    assert send(client, ann, g["id"], "я" * 4096)["text"] == "я" * 4096
    # Trimmed as Python's str.strip() trims (DRF's CharField): no-break spaces, C0/C1
    # separators and every Unicode space separator.
    assert send(client, ann, g["id"], "\u00a0\u3000hi there\u202f\u2007\x85")["text"] == "hi there"
    blank = "This field may not be blank."
    for text, msg in (("   ", blank), ("\u00a0", blank), ("\u2007\u202f\x85\x1f\u2028", blank),
                      ("x" * 4097, "Ensure this field has no more than 4096 characters.")):
        r = client.post("/api/messages/", token=ann["access"], json={"chat": g["id"], "text": text})
        assert (r.status_code, r.json()) == (400, {"text": [msg]})
    # A client_id is kept exactly as sent, but whitespace alone is blank.
    r = client.post("/api/messages/", token=ann["access"], json={"chat": g["id"], "text": "x", "client_id": "  \u00a0"})
    assert (r.status_code, r.json()) == (400, {"client_id": [blank]})
    assert send(client, ann, g["id"], "x", client_id=" padded ")["client_id"] == " padded "
    r = client.post("/api/messages/", token=ann["access"], json={})
    assert r.status_code == 400 and set(r.json()) == {"chat", "text"}
    r = client.post("/api/messages/", token=ann["access"], json={"chat": g["id"], "text": "x", "client_id": "c" * 65})
    assert r.status_code == 400 and set(r.json()) == {"client_id"}


def test_idempotent_send_survives_time_and_restart(make_server):
    s = make_server()
    c = Client(s)
    a, b = c.register(), c.register()
    g = new_group(c, a, b)
    first = c.post("/api/messages/", token=a["access"], json={"chat": g["id"], "text": "once", "client_id": "k-1"})
    assert first.status_code == 201 and first.json()["client_id"] == "k-1"
    s.restart()
    retry = c.post("/api/messages/", token=a["access"], json={"chat": g["id"], "text": "once", "client_id": "k-1"})
    assert retry.status_code == 200 and retry.json()["id"] == first.json()["id"]
    # The same client_id from another sender is another message.
    other = c.post("/api/messages/", token=b["access"], json={"chat": g["id"], "text": "mine", "client_id": "k-1"})
    assert other.status_code == 201
    assert len(history(c, a, g["id"])["results"]) == 2


def test_history_pagination(client, people):
    ann, bob = people["ann"], people["bob"]
    g = new_group(client, ann, bob)
    sent = [send(client, ann, g["id"], f"m{i}")["id"] for i in range(7)]
    page = history(client, bob, g["id"], limit=3)
    assert [m["id"] for m in page["results"]] == sent[:-4:-1] and page["has_more"]
    page2 = history(client, bob, g["id"], limit=3, before=page["results"][-1]["id"])
    assert [m["id"] for m in page2["results"]] == sent[3:0:-1] and page2["has_more"]
    page3 = history(client, bob, g["id"], limit=3, before=page2["results"][-1]["id"])
    assert [m["id"] for m in page3["results"]] == [sent[0]] and not page3["has_more"]
    after = history(client, bob, g["id"], after=sent[2], limit=2)
    assert [m["id"] for m in after["results"]] == sent[3:5] and after["has_more"]
    after2 = history(client, bob, g["id"], after=sent[4])
    assert [m["id"] for m in after2["results"]] == sent[5:] and not after2["has_more"]
    assert len(history(client, bob, g["id"])["results"]) == 7  # default limit 50
    for bad in ("limit=0", "limit=201", "limit=x", "before=x"):
        r = client.get(f"/api/messages/?chat={g['id']}&{bad}", token=bob["access"])
        assert r.status_code == 400, bad
    assert client.get("/api/messages/", token=bob["access"]).json() == {"chat": ["This field is required."]}


def test_status_moves_from_sent_to_delivered_to_read(client):
    a, b, c = client.register(), client.register(), client.register()
    g = new_group(client, a, b, c)
    m = send(client, a, g["id"], "ticks")
    assert m["status"] == "sent"
    history(client, b, g["id"])
    assert history(client, a, g["id"])["results"][0]["status"] == "sent"  # c has not fetched
    history(client, c, g["id"])
    assert history(client, a, g["id"])["results"][0]["status"] == "delivered"
    client.post(f"/api/chats/{g['id']}/read/", token=b["access"], json={"last_read_message_id": m["id"]})
    assert history(client, a, g["id"])["results"][0]["status"] == "delivered"
    r = client.post(f"/api/chats/{g['id']}/read/", token=c["access"], json={"last_read_message_id": m["id"]})
    assert r.json() == {"unread_count": 0}
    assert history(client, a, g["id"])["results"][0]["status"] == "read"


def test_an_older_page_delivers_only_down_to_what_its_reader_had(client):
    """The delivered watermark covers every message below it. A page fetched with `before=`
    alone that does not reach down to what the reader already had leaves it where it was
    (the messages between were never fetched); one that does reach moves it to its newest
    message; the newest page moves it to the newest message, as opening the chat does."""
    a, b, c = client.register(), client.register(), client.register()
    g = new_group(client, a, b, c)
    history(client, c, g["id"])  # c has every message, so b's watermark alone decides
    sent = [send(client, a, g["id"], f"m{i}")["id"] for i in range(6)]
    history(client, c, g["id"])
    start = client.get("/api/events/", token=a["access"]).json()["seq"]

    def statuses():
        page = history(client, a, g["id"])["results"]
        return {m["id"]: m["status"] for m in page if m["id"] in sent}

    def delivered_by_b():
        feed = client.get(f"/api/events/?since={start}", token=a["access"]).json()["results"]
        return [e["last_delivered_message_id"] for e in feed
                if e["type"] == "delivered" and e["user_id"] == uid(b)]

    jump = history(client, b, g["id"], before=sent[4], limit=2)
    assert [m["id"] for m in jump["results"]] == [sent[3], sent[2]] and jump["has_more"]
    assert set(statuses().values()) == {"sent"} and delivered_by_b() == []

    down = history(client, b, g["id"], before=sent[2], limit=10)
    assert [m["id"] for m in down["results"]] == [sent[1], sent[0]] and not down["has_more"]
    assert statuses() == {m: ("delivered" if m in sent[:2] else "sent") for m in sent}
    assert delivered_by_b() == [sent[1]]

    joined = history(client, b, g["id"], before=sent[4], limit=2)
    assert [m["id"] for m in joined["results"]] == [sent[3], sent[2]] and joined["has_more"]
    assert statuses() == {m: ("delivered" if m in sent[:4] else "sent") for m in sent}

    assert [m["id"] for m in history(client, b, g["id"], limit=1)["results"]] == [sent[5]]
    assert set(statuses().values()) == {"delivered"}
    assert delivered_by_b() == [sent[1], sent[3], sent[5]]


def test_a_page_of_events_holds_about_four_megabytes(client):
    """GET /api/events/ stops a page at about 4 MiB of events, before `limit`, and says
    has_more: the next page goes on from its seq, and every event comes once, in order.
    (200 messages of 4,096 control characters: about 24 KB each once escaped.)"""
    a, b = client.register(), client.register()
    g = new_group(client, a, b)
    since = client.get("/api/events/?since=0", token=b["access"]).json()["seq"]
    ids = [send(client, a, g["id"], f"{i}" + "\x01" * 4090)["id"] for i in range(200)]
    seen, cursor, pages = [], since, []
    while True:
        r = client.get(f"/api/events/?since={cursor}&limit=1000", token=b["access"])
        assert r.status_code == 200, r.text[:300]
        page = r.json()
        pages.append((len(r.content), len(page["results"]), page["has_more"]))
        seen += [e["message_id"] for e in page["results"] if e["type"] == "message"]
        cursor = page["seq"]
        if not page["has_more"]:
            break
        assert len(pages) < 10, pages
    assert seen == ids, pages
    assert len(pages) >= 2 and all(size < 5_000_000 for size, _, _ in pages), pages

def test_fetching_events_delivers_every_chat_and_logs_as_a_socket_does(client):
    """GET /api/events/ delivers the newest message of each chat of its page, as a socket's
    delivery does: every sender of a small chat hears a `delivered`, while a group of more
    than 32 members logs one only when its lowest watermark rises, whoever's fetch (or
    page of history) raised it last."""
    b = client.register()
    partners = [client.register() for _ in range(4)]
    chats = [client.post("/api/chats/", token=p["access"], json={"type": "private", "member_ids": [uid(b)]}).json()["id"]
             for p in partners]
    owner = client.register()
    others = [client.register() for _ in range(33)]
    big = new_group(client, owner, b, *others, name="big")["id"]
    start = client.get("/api/events/", token=owner["access"]).json()["seq"]
    sent = [send(client, p, chat, f"to b {i}")["id"] for i, (p, chat) in enumerate(zip(partners, chats))]
    in_big = send(client, owner, big, "to all")["id"]

    fetched = client.get(f"/api/events/?since={start}", token=b["access"]).json()["results"]
    assert sorted(e["message_id"] for e in fetched if e["type"] == "message") == sorted(sent + [in_big])
    for p, chat, m in zip(partners, chats, sent):
        assert history(client, p, chat)["results"][0]["status"] == "delivered"
        feed = client.get(f"/api/events/?since={start}", token=p["access"]).json()["results"]
        assert [(e["user_id"], e["last_delivered_message_id"]) for e in feed if e["type"] == "delivered"] == [(uid(b), m)], feed

    def delivered_in_big():
        feed = client.get(f"/api/events/?since={start}", token=owner["access"]).json()["results"]
        return [e for e in feed if e["type"] == "delivered" and e["chat_id"] == big]

    assert delivered_in_big() == []  # 33 members have not had it yet
    for other in others[:-1]:
        client.get(f"/api/events/?since={start}", token=other["access"])
    assert delivered_in_big() == []
    assert history(client, owner, big)["results"][0]["status"] == "sent"
    history(client, others[-1], big)  # the last one reads a page instead
    assert [(e["user_id"], e["last_delivered_message_id"]) for e in delivered_in_big()] == [(uid(others[-1]), in_big)]
    assert history(client, owner, big)["results"][0]["status"] == "delivered"


def test_reads_are_answered_while_the_database_takes_no_writes(make_server):
    """A fetch delivers what it returns, which is a write. When the database takes none (a
    full disk; here another process holds SQLite's write lock past chatd's 5 s wait), the
    history and the event log are still answered, and the receipt is written by a later
    fetch."""
    import conftest
    if conftest.BACKEND != "sqlite":
        pytest.skip("holds SQLite's write lock")
    server = make_server()
    c = Client(server)
    a, b = c.register(), c.register()
    chat = c.post("/api/chats/", token=a["access"], json={"type": "private", "member_ids": [uid(b)]}).json()
    sent = [send(c, a, chat["id"], f"n{i}")["id"] for i in range(3)]
    holder = sqlite3.connect(server.db_path, isolation_level=None, timeout=10)
    try:
        holder.execute("BEGIN IMMEDIATE")
        page = c.get(f"/api/messages/?chat={chat['id']}", token=b["access"], timeout=30)
        assert page.status_code == 200, page.text
        assert [m["id"] for m in page.json()["results"]] == sent[::-1]
        events = c.get("/api/events/?since=0", token=b["access"], timeout=30)
        assert events.status_code == 200, events.text
        assert [e["message_id"] for e in events.json()["results"] if e["type"] == "message"] == sent
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "delivered receipt of a read not written" in server.read_log()
    assert history(c, a, chat["id"])["results"][0]["status"] == "sent"
    history(c, b, chat["id"])
    assert history(c, a, chat["id"])["results"][0]["status"] == "delivered"


def test_read_watermark_never_goes_down(client):
    a, b = client.register(), client.register()
    g = new_group(client, a, b)
    ids = [send(client, a, g["id"], f"n{i}")["id"] for i in range(4)]
    r = client.post(f"/api/chats/{g['id']}/read/", token=b["access"], json={"last_read_message_id": ids[2]})
    assert r.json() == {"unread_count": 1}
    r = client.post(f"/api/chats/{g['id']}/read/", token=b["access"], json={"last_read_message_id": ids[0]})
    assert r.json() == {"unread_count": 1}
    assert chat_of(client, b, g["id"])["last_read_message_id"] == ids[2]
    r = client.post(f"/api/chats/{g['id']}/read/", token=b["access"], json={"last_read_message_id": 10**12})
    assert r.json() == {"unread_count": 0}
    assert chat_of(client, b, g["id"])["last_read_message_id"] == ids[3]  # clamped to the newest
    r = client.post(f"/api/chats/{g['id']}/read/", token=b["access"], json={})
    assert r.status_code == 400


def test_read_watermark_is_read_as_drfs_integer_field(client):
    r"""DRF's IntegerField: int(re.sub(r"\.0*\s*$", "", str(data)))."""
    a, b = client.register(), client.register()
    g = new_group(client, a, b)
    ids = [send(client, a, g["id"], f"n{i}")["id"] for i in range(5)]

    def read(value):
        return client.post(f"/api/chats/{g['id']}/read/", token=b["access"],
                           json={"last_read_message_id": value})

    # int() reads decimal digits of any script: Arabic-Indic ones here.
    arabic = str(ids[2]).translate({ord(d): 0x0660 + int(d) for d in "0123456789"})
    for value, unread in ((f"{ids[0]}.0", 4), (f"+{ids[1]}", 3), (arabic, 2), (f" {ids[2]}.00 ", 2),
                          (float(ids[3]), 1)):
        r = read(value)
        assert (r.status_code, r.json()) == (200, {"unread_count": unread}), (value, r.text)
    for value in (f"{ids[4]}.5", f"{ids[4]}.0.0", f"0x{ids[4]:x}", float(ids[4]) + 0.5):
        r = read(value)
        assert (r.status_code, r.json()) == (400, {"last_read_message_id": ["A valid integer is required."]}), \
            (value, r.text)
    assert chat_of(client, b, g["id"])["last_read_message_id"] == ids[3]


def test_edit_delete_and_delete_for_me(client):
    a, b = client.register(), client.register()
    g = new_group(client, a, b)
    m = send(client, a, g["id"], "first draft")
    r = client.patch(f"/api/messages/{m['id']}/", token=a["access"], json={"text": " final "})
    assert r.status_code == 200
    edited = r.json()
    assert edited["text"] == "final" and edited["is_edited"] and edited["edited_at"].endswith("Z")
    assert client.request("PUT", f"/api/messages/{m['id']}/", token=a["access"], json={"text": ""}).status_code == 400
    keep = send(client, a, g["id"], "keep me")
    assert chat_of(client, b, g["id"])["unread_count"] == 2
    assert client.request("DELETE", f"/api/messages/{m['id']}/", token=a["access"]).status_code == 204
    gone = next(x for x in history(client, b, g["id"])["results"] if x["id"] == m["id"])
    assert gone["is_deleted"] and gone["text"] == ""
    assert chat_of(client, b, g["id"])["unread_count"] == 1
    # A deleted message is not edited, forwarded or pinned: a 400 in DRF's validation shape.
    r = client.patch(f"/api/messages/{m['id']}/", token=a["access"], json={"text": "again"})
    assert r.status_code == 400 and r.json() == {"non_field_errors": ["A deleted message cannot be edited."]}
    r = client.post(f"/api/messages/{m['id']}/forward/", token=a["access"], json={"target_chat_id": g["id"]})
    assert r.status_code == 400 and r.json() == {"non_field_errors": ["A deleted message cannot be forwarded."]}
    r = client.post("/api/pinned/", token=a["access"], json={"message_id": m["id"]})
    assert r.status_code == 400 and r.json() == {"message_id": ["A deleted message cannot be pinned."]}
    assert client.request("DELETE", f"/api/messages/{keep['id']}/?for=me", token=b["access"]).status_code == 204
    assert chat_of(client, b, g["id"])["unread_count"] == 0
    assert keep["id"] not in [x["id"] for x in history(client, b, g["id"])["results"]]
    assert keep["id"] in [x["id"] for x in history(client, a, g["id"])["results"]]
    assert chat_of(client, b, g["id"])["last_message"]["id"] == m["id"]
    assert client.request("DELETE", f"/api/messages/{keep['id']}/?for=me", token=b["access"]).status_code == 404


def test_a_message_hidden_for_me_stays_hidden_after_leaving_and_coming_back(client):
    a, b = client.register(), client.register()
    g = new_group(client, a, b)
    tag = unique_name("unicorn")
    seen = send(client, a, g["id"], f"{tag} seen")
    hidden = send(client, a, g["id"], f"{tag} hidden")
    assert client.request("DELETE", f"/api/messages/{hidden['id']}/?for=me", token=b["access"]).status_code == 204
    assert client.request("DELETE", f"/api/chats/{g['id']}/members/{uid(b)}/", token=b["access"]).status_code == 204
    r = client.post(f"/api/chats/{g['id']}/members/", token=a["access"], json={"user_id": uid(b)})
    assert r.status_code == 201, r.text
    assert [m["id"] for m in history(client, b, g["id"])["results"]] == [seen["id"]]
    r = client.get(f"/api/messages/search/?q={tag}", token=b["access"])
    assert [m["id"] for m in r.json()["results"]] == [seen["id"]]
    assert chat_of(client, b, g["id"])["last_message"]["id"] == seen["id"]
    r = client.post(f"/api/messages/{hidden['id']}/forward/", token=b["access"], json={"target_chat_id": g["id"]})
    assert r.status_code == 404, r.text
    # The other member still has both.
    assert [m["id"] for m in history(client, a, g["id"])["results"]] == [hidden["id"], seen["id"]]
    # A new message counts as unread beside it; the hidden one never does.
    send(client, a, g["id"], "after")
    assert chat_of(client, b, g["id"])["unread_count"] == 1


def test_forward(client):
    a, b, c = client.register(), client.register(), client.register()
    g1 = new_group(client, a, b)
    g2 = new_group(client, a, c)
    original = send(client, b, g1["id"], "worth sharing")
    r = client.post(f"/api/messages/{original['id']}/forward/", token=a["access"], json={"target_chat_id": g2["id"]})
    assert r.status_code == 201
    fwd = r.json()
    assert fwd["chat"] == g2["id"] and fwd["forwarded_from"] == original["id"]
    assert fwd["text"] == "worth sharing" and fwd["sender_id"] == uid(a)
    g3 = new_group(client, c, a)
    r = client.post(f"/api/messages/{fwd['id']}/forward/", token=c["access"], json={"target_chat_id": g3["id"]})
    assert r.json()["forwarded_from"] == original["id"]  # the first original
    # Not a member of the source or of the target: 404.
    assert client.post(f"/api/messages/{original['id']}/forward/", token=c["access"],
                       json={"target_chat_id": g3["id"]}).status_code == 404
    assert client.post(f"/api/messages/{original['id']}/forward/", token=b["access"],
                       json={"target_chat_id": g2["id"]}).status_code == 404


def test_a_forward_with_a_client_id_is_idempotent(client):
    """As a send's: the same sender, target chat and client_id answer the first forward
    (200), even once its original is deleted; the client_id shows on the sender's copy
    only. A forward without one is a new message each time, as the original's."""
    a, b = client.register(), client.register()
    source, target = new_group(client, a, b), new_group(client, a, b)
    original = send(client, b, source["id"], "share this")

    def forward(body, who=a):
        return client.post(f"/api/messages/{original['id']}/forward/", token=who["access"],
                           json={"target_chat_id": target["id"], **body})

    r = forward({"client_id": "fw-1"})
    assert r.status_code == 201, r.text
    first = r.json()
    assert (first["client_id"], first["forwarded_from"], first["chat"]) == ("fw-1", original["id"], target["id"])
    r = forward({"client_id": "fw-1"})
    assert (r.status_code, r.json()["id"], r.json()["client_id"]) == (200, first["id"], "fw-1"), r.text
    # Another member's copy carries no client_id; the same key of another sender is theirs.
    r = client.get(f"/api/messages/?chat={target['id']}", token=b["access"])
    assert [(m["id"], m["client_id"]) for m in r.json()["results"]] == [(first["id"], None)]
    r = forward({"client_id": "fw-1"}, who=b)
    assert r.status_code == 201 and r.json()["id"] != first["id"], r.text
    # Without a key, every forward is new.
    ids = {forward({}).json()["id"] for _ in range(2)}
    assert len(ids) == 2 and first["id"] not in ids
    # The original deleted: a retry still answers the first, a new forward is refused.
    assert client.request("DELETE", f"/api/messages/{original['id']}/", token=b["access"]).status_code == 204
    r = forward({"client_id": "fw-1"})
    assert (r.status_code, r.json()["id"], r.json()["text"]) == (200, first["id"], "share this"), r.text
    r = forward({"client_id": "fw-2"})
    assert r.status_code == 400, r.text
    # With a key or without, a deleted original is refused before the target is looked at.
    elsewhere = new_group(client, b)
    for body in ({}, {"client_id": "fw-3"}):
        r = client.post(f"/api/messages/{original['id']}/forward/", token=a["access"],
                        json={"target_chat_id": elsewhere["id"], **body})
        assert r.status_code == 400, (body, r.text)
    # A key is the sender's in the chat, whatever it was sent with: a forward repeating a
    # plain send's key answers that message.
    typed = send(client, a, target["id"], "typed", client_id="fw-4")
    live = send(client, b, source["id"], "still here")
    r = client.post(f"/api/messages/{live['id']}/forward/", token=a["access"],
                    json={"target_chat_id": target["id"], "client_id": "fw-4"})
    assert (r.status_code, r.json()["id"], r.json()["forwarded_from"]) == (200, typed["id"], None), r.text
    # The key is checked as a send's.
    for bad, message in (("   ", "This field may not be blank."),
                         ("x" * 65, "Ensure this field has no more than 64 characters.")):
        r = forward({"client_id": bad})
        assert (r.status_code, r.json()) == (400, {"client_id": [message]}), r.text


# ---- search --------------------------------------------------------------------------------

def test_search(client):
    a, b, outsider = client.register(), client.register(), client.register()
    g = new_group(client, a, b)
    other = new_group(client, outsider, name="private-world")
    tag = unique_name("z")
    m1 = send(client, a, g["id"], f"Привет, мир! {tag}")
    m2 = send(client, b, g["id"], f"привет всем и ПРИВЕТСТВИЕ {tag}")
    m3 = send(client, a, g["id"], f"Hello world {tag}")
    m4 = send(client, a, g["id"], f"Crème brûlée {tag}")
    send(client, outsider, other["id"], f"привет from elsewhere {tag}")

    def search(who, q, **extra):
        params = "&".join([f"q={q}"] + [f"{k}={v}" for k, v in extra.items()])
        r = client.get(f"/api/messages/search/?{params}", token=who["access"])
        assert r.status_code == 200, r.text
        return [x["id"] for x in r.json()["results"]]

    assert search(b, f"привет {tag}") == [m2["id"], m1["id"]]  # newest first, only my chats
    assert search(b, f"ПРИВ {tag}") == [m2["id"], m1["id"]]    # prefixes, any case
    assert search(b, f"приветствие {tag}") == [m2["id"]]        # all words must match
    assert search(b, f"ривет {tag}") == []                      # not a prefix: no match
    assert search(b, f"WORLD {tag}") == [m3["id"]]
    assert search(b, f"creme brulee {tag}") == [m4["id"]]       # diacritics folded
    assert search(b, f"привет {tag}", chat=g["id"]) == [m2["id"], m1["id"]]
    assert client.get(f"/api/messages/search/?q=x&chat={other['id']}", token=b["access"]).status_code == 404
    client.request("DELETE", f"/api/messages/{m1['id']}/", token=a["access"])
    client.request("DELETE", f"/api/messages/{m2['id']}/?for=me", token=b["access"])
    assert search(b, f"привет {tag}") == []
    assert search(a, f"привет {tag}") == [m2["id"]]
    for bad in ("", "q=", "q=%20%2C"):
        r = client.get(f"/api/messages/search/?{bad}", token=b["access"])
        assert r.status_code == 400, bad


def test_search_needs_every_word_whole(client):
    """Every word of the query must be in a message: none is dropped past a count (a query
    of more words than a search takes is a 400) or cut short past a length."""
    a = client.register()
    g = new_group(client, a)
    tag = unique_name("w")
    eight = "one two three four five six seven eight"
    m1 = send(client, a, g["id"], f"{eight} {tag}")
    long_word = "a" * 64 + "b"
    m2 = send(client, a, g["id"], f"{long_word} {tag}")

    def search(q):
        r = client.get(f"/api/messages/search/?q={q}", token=a["access"])
        assert r.status_code == 200, r.text
        return [x["id"] for x in r.json()["results"]]

    assert search(f"{eight} {tag}") == [m1["id"]]
    assert search(f"{eight} {tag} zzzzz") == []       # the tenth word counts too
    assert search(f"{tag} {long_word}") == [m2["id"]]
    assert search(f"{tag} {'a' * 64}") == [m2["id"]]  # a prefix
    assert search(f"{tag} {'a' * 64 + 'c'}") == []    # the 65th character counts
    assert search(f"{tag} {'a' * 64 + 'b' * 36}") == []
    for n in (2046, 2047, 2048, 3000):                 # PostgreSQL indexes words < 2047 bytes
        assert search(f"{tag} {'a' * n}") == [], n
    words = " ".join(f"w{i:02}" for i in range(32))  # none begins another
    r = client.get(f"/api/messages/search/?q={words} w0 w1", token=a["access"])
    assert r.status_code == 200, r.text                # w0 and w1 begin others: no more terms
    r = client.get(f"/api/messages/search/?q={words} w32", token=a["access"])
    assert (r.status_code, r.json()) == (400, {"q": ["Enter at most 32 words to search for."]}), r.text


def test_search_finds_greek_words_in_either_case(client):
    """Σ lower-cases to σ, and a word written in small letters ends in ς: either spelling
    finds both, as a case-insensitive search must."""
    a = client.register()
    g = new_group(client, a)
    tag = unique_name("g")
    capitals = send(client, a, g["id"], f"ΟΔΟΣ {tag}")
    small = send(client, a, g["id"], f"λόγος {tag}")
    mixed = send(client, a, g["id"], f"Σοφός {tag}")

    def search(q):
        r = client.get(f"/api/messages/search/?q={q} {tag}", token=a["access"])
        assert r.status_code == 200, r.text
        return [x["id"] for x in r.json()["results"]]

    for q in ("οδος", "ΟΔΟΣ", "οδοσ", "Οδος", "οδο"):
        assert search(q) == [capitals["id"]], q
    for q in ("λόγος", "ΛΌΓΟΣ", "λόγοσ", "λόγ"):
        assert search(q) == [small["id"]], q
    for q in ("σοφός", "ΣΟΦΌΣ", "σοφ"):
        assert search(q) == [mixed["id"]], q
    inner = send(client, a, g["id"], f"ΑΒ αςβ {tag}")  # a ς inside a word, as typed
    assert search("αςβ") == [inner["id"]]


# The stores' full-text queries as written in src/store/sqlite (chat_store.cpp's kSearch,
# admin_store.cpp's kSearchMessages), with the message columns shortened to m.id.
SEARCH_SQL = (
    "SELECT m.id FROM messages_fts f JOIN messages m ON m.id = f.rowid "
    "LEFT JOIN users u ON u.id = m.sender_id "
    "WHERE messages_fts MATCH ?1 AND m.is_deleted = 0 "
    "AND m.chat_id IN (SELECT chat_id FROM chat_members WHERE user_id = ?2) "
    "AND (?3 = 0 OR m.chat_id = ?3) AND NOT EXISTS (SELECT 1 FROM hidden_messages h "
    "WHERE h.user_id = ?2 AND h.chat_id = m.chat_id AND h.message_id = m.id) "
    "ORDER BY f.rowid DESC LIMIT ?4")
ADMIN_SEARCH_SQL = (
    "SELECT m.id FROM messages_fts f JOIN messages m ON m.id = f.rowid "
    "LEFT JOIN users u ON u.id = m.sender_id "
    "WHERE messages_fts MATCH ?4 AND (?1 = 0 OR m.chat_id = ?1) "
    "AND m.chat_id NOT IN (SELECT id FROM chats WHERE purging = 1) AND f.rowid < ?2 "
    "ORDER BY f.rowid DESC LIMIT ?3")


def store_source(name):
    with open(os.path.join(ROOT, "src", "store", "sqlite", name)) as f:
        # The C++ literals joined and their spacing collapsed.
        return re.sub(r"\s+", " ", re.sub(r'"\s*"', " ", f.read()))


@pytest.mark.sqlite_only
def test_search_uses_the_full_text_index(make_server):
    """Matches come from the FTS5 index newest first, so LIMIT stops the walk; a sort
    would read every match in the file first. The queries are checked against the stores'
    source, so neither can drift from what is planned here."""
    for sql, source, tail in ((SEARCH_SQL, "chat_store.cpp", "ORDER BY f.rowid DESC LIMIT ?4"),
                              (ADMIN_SEARCH_SQL, "admin_store.cpp",
                               "AND f.rowid < ?2 ORDER BY f.rowid DESC LIMIT ?3")):
        assert tail in store_source(source), source
    s = make_server()
    Client(s).register()
    with sqlite3.connect(s.db_path) as db:
        # Prefixes of one and two characters have indexes of their own: without one, FTS5
        # merges the entries of every word starting with the prefix (chatbench's search).
        # Each message's chat is indexed too, so that a search names the caller's chats.
        table = db.execute("SELECT sql FROM sqlite_master WHERE name = 'messages_fts'").fetchone()
        assert "prefix = '1 2'" in table[0] and "fts5(text, chat_id," in table[0], table
        for sql, args in ((SEARCH_SQL, ('"x"*', 1, 0, 20)), (ADMIN_SEARCH_SQL, (0, 10**9, 20, '"x"*'))):
            plan = " ".join(row[-1] for row in db.execute("EXPLAIN QUERY PLAN " + sql, args))
            assert "VIRTUAL TABLE INDEX" in plan, plan
            assert "TEMP B-TREE" not in plan, plan


# ---- pins ------------------------------------------------------------------------------------

def test_pins(client):
    a, b = client.register(), client.register()
    g = new_group(client, a, b)
    m = send(client, b, g["id"], "pin me")
    r = client.post("/api/pinned/", token=a["access"], json={"message_id": m["id"]})
    assert r.status_code == 201
    pin = r.json()
    assert set(pin) == {"id", "chat", "message", "pinned_by", "pinned_at"}
    assert pin["chat"] == g["id"] and pin["message"]["id"] == m["id"] and pin["pinned_by"] == uid(a)
    again = client.post("/api/pinned/", token=a["access"], json={"message_id": m["id"]})
    assert again.status_code == 200 and again.json()["id"] == pin["id"]
    listed = client.get(f"/api/pinned/?chat={g['id']}", token=b["access"]).json()
    assert [p["id"] for p in listed] == [pin["id"]]
    assert client.request("DELETE", f"/api/pinned/{pin['id']}/", token=b["access"]).status_code == 403
    assert client.request("DELETE", f"/api/pinned/{pin['id']}/", token=a["access"]).status_code == 204
    assert client.get(f"/api/pinned/?chat={g['id']}", token=b["access"]).json() == []
    assert client.request("DELETE", f"/api/pinned/{pin['id']}/", token=a["access"]).status_code == 404


def test_a_pinned_message_hidden_for_me_is_gone_from_my_pins(client):
    """Hidden with ?for=me, a message is gone for that member everywhere, pins included;
    the other members still see it pinned."""
    a, b = client.register(), client.register()
    g = new_group(client, a, b)
    m = send(client, a, g["id"], "secret pinned")
    kept = send(client, a, g["id"], "pinned too")
    for x in (m, kept):
        assert client.post("/api/pinned/", token=a["access"], json={"message_id": x["id"]}).status_code == 201
    assert client.request("DELETE", f"/api/messages/{m['id']}/?for=me", token=b["access"]).status_code == 204
    mine = client.get(f"/api/pinned/?chat={g['id']}", token=b["access"]).json()
    assert [p["message"]["id"] for p in mine] == [kept["id"]], mine
    assert "secret" not in str(mine)
    assert client.get(f"/api/chats/{g['id']}/", token=b["access"]).json()["pinned_message_ids"] == [kept["id"]]
    listed = next(c for c in client.get("/api/chats/", token=b["access"]).json() if c["id"] == g["id"])
    assert listed["pinned_message_ids"] == [kept["id"]]
    theirs = client.get(f"/api/pinned/?chat={g['id']}", token=a["access"]).json()
    assert [p["message"]["id"] for p in theirs] == [m["id"], kept["id"]]
    assert client.get(f"/api/chats/{g['id']}/", token=a["access"]).json()["pinned_message_ids"] == [m["id"], kept["id"]]


def test_a_message_deleted_for_everyone_is_unpinned(client):
    """A deleted message cannot be pinned, so deleting a pinned one removes its pin too: the
    members are told with an `unpin` right after the `delete`, and the chat's other pins
    stay."""
    a, b = client.register(), client.register()
    g = new_group(client, a, b)
    m = send(client, b, g["id"], "pinned, then deleted")
    kept = send(client, b, g["id"], "pinned and kept")
    pins = {}
    for x in (m, kept):
        r = client.post("/api/pinned/", token=a["access"], json={"message_id": x["id"]})
        assert r.status_code == 201
        pins[x["id"]] = r.json()["id"]
    since = client.get("/api/events/", token=a["access"]).json()["seq"]
    assert client.request("DELETE", f"/api/messages/{m['id']}/", token=b["access"]).status_code == 204
    for who in (a, b):
        listed = client.get(f"/api/pinned/?chat={g['id']}", token=who["access"]).json()
        assert [p["message"]["id"] for p in listed] == [kept["id"]], listed
        chat = client.get(f"/api/chats/{g['id']}/", token=who["access"]).json()
        assert chat["pinned_message_ids"] == [kept["id"]]
    assert client.request("DELETE", f"/api/pinned/{pins[m['id']]}/", token=a["access"]).status_code == 404
    feed = client.get(f"/api/events/?since={since}", token=a["access"]).json()["results"]
    told = [(e["type"], e.get("message_id")) for e in feed if e["type"] in ("delete", "unpin")]
    assert told == [("delete", m["id"]), ("unpin", m["id"])], feed
    assert next(e for e in feed if e["type"] == "unpin")["chat_id"] == g["id"]
    # Deleting it again changes nothing and tells nothing more.
    assert client.request("DELETE", f"/api/messages/{m['id']}/", token=b["access"]).status_code == 204
    again = client.get(f"/api/events/?since={since}", token=a["access"]).json()["results"]
    assert [e["type"] for e in again if e["type"] in ("delete", "unpin")] == ["delete", "unpin"]


# ---- events ------------------------------------------------------------------------------------

def test_event_log_replay(client):
    a, b, c = client.register(), client.register(), client.register()
    start = client.get("/api/events/", token=b["access"]).json()
    assert start["resync_required"] is False and start["results"] == []
    since = start["seq"]
    g = new_group(client, a, b)
    m = send(client, a, g["id"], "logged", client_id="a-1")
    client.patch(f"/api/messages/{m['id']}/", token=a["access"], json={"text": "logged twice"})
    # The log replays no words a message no longer has: the edit rewrote its message event.
    # (Read by its sender: b's fetching would deliver it, a `delivered` event of its own.)
    edited = client.get(f"/api/events/?since={since}", token=a["access"]).json()["results"]
    assert [e["text"] for e in edited if "text" in e] == ["logged twice", "logged twice"], edited
    client.post(f"/api/chats/{g['id']}/read/", token=b["access"], json={"last_read_message_id": m["id"]})
    client.post("/api/pinned/", token=a["access"], json={"message_id": m["id"]})
    client.post(f"/api/chats/{g['id']}/members/", token=a["access"], json={"user_id": uid(c)})
    client.request("DELETE", f"/api/messages/{m['id']}/?for=me", token=b["access"])
    client.request("DELETE", f"/api/messages/{m['id']}/", token=a["access"])
    feed = client.get(f"/api/events/?since={since}", token=b["access"]).json()
    types = [e["type"] for e in feed["results"]]
    # b hid the message for themselves: its message, edit, pin and delete-for-everyone events
    # are gone from b's replay (as the message is from every other answer b gets), the rest
    # of the chat is not.
    assert types == ["chat_created", "read", "member_added", "delete"], types
    assert feed["results"][-1]["for_me"] is True
    seqs = [e["seq"] for e in feed["results"]]
    # The cursor passes the delete b does not replay, so b never asks for it again.
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and feed["seq"] > seqs[-1]
    mine = client.get(f"/api/events/?since={since}", token=a["access"]).json()["results"]
    # Deleted for everyone: its message event now carries the empty text it has, and its
    # edit event is gone (the delete supersedes it; seqs may skip).
    # The deletion took the message's pin with it (an unpin after the delete).
    assert [e["type"] for e in mine] == ["chat_created", "message", "read", "pin", "member_added",
                                         "delete", "unpin"], mine
    msg = mine[1]
    assert msg["client_id"] == "a-1" and msg["message_id"] == m["id"] and msg["chat_id"] == g["id"]
    assert msg["text"] == "", mine[:2]
    assert not any(e.get("for_me") for e in mine)  # b's hiding reached b alone
    assert {"type": "delete", "chat_id": g["id"], "message_id": m["id"], "for_me": True}.items() <= \
        feed["results"][-1].items()
    # The newcomer sees the chat from their joining on, not its earlier history.
    newcomer = [e["type"] for e in client.get(f"/api/events/?since={since}", token=c["access"]).json()["results"]]
    assert newcomer == ["chat_created", "member_added", "delete", "unpin"], newcomer
    # Paging with limit and has_more covers the same events.
    page = client.get(f"/api/events/?since={since}&limit=3", token=b["access"]).json()
    assert page["has_more"] and [e["seq"] for e in page["results"]] == seqs[:3] and page["seq"] == seqs[2]
    rest = client.get(f"/api/events/?since={page['seq']}", token=b["access"]).json()
    assert [e["seq"] for e in rest["results"]] == seqs[3:] and not rest["has_more"]
    assert client.get(f"/api/events/?since={seqs[-1] + 1000}", token=b["access"]).json()["results"] == []


def test_removed_member_and_deleted_chat_events(client):
    a, b = client.register(), client.register()
    since = client.get("/api/events/", token=b["access"]).json()["seq"]
    g = new_group(client, a, b)
    client.request("DELETE", f"/api/chats/{g['id']}/members/{uid(b)}/", token=a["access"])
    send(client, a, g["id"], "after b left")
    g2 = new_group(client, a, b)
    client.request("DELETE", f"/api/chats/{g2['id']}/", token=a["access"])
    types = [(e["type"], e["chat_id"]) for e in client.get(f"/api/events/?since={since}", token=b["access"]).json()["results"]]
    # A chat one has left, or that is gone, replays as the one event that ends it for them;
    # nothing that happened there afterwards is shown.
    assert types == [("member_removed", g["id"]), ("chat_deleted", g2["id"])], types


def test_a_deleted_chat_takes_its_events_for_all_members_with_it(make_server):
    """Deleting a chat deletes the events every member shared (its messages' words among
    them): nobody replays them any more. What was for one user stays: a removed member's
    own removal, and each member's chat_deleted."""
    s = make_server()
    c = Client(s)
    a, b, x = c.register(), c.register(), c.register()
    g = new_group(c, a, b, x)
    since = c.get("/api/events/", token=x["access"]).json()["seq"]
    m = send(c, a, g["id"], "words of a chat about to go")
    assert c.patch(f"/api/chats/{g['id']}/", token=a["access"], json={"name": "doomed"}).status_code == 200
    assert c.request("DELETE", f"/api/messages/{m['id']}/?for=me", token=b["access"]).status_code == 204
    assert c.request("DELETE", f"/api/chats/{g['id']}/members/{uid(x)}/", token=a["access"]).status_code == 204
    removal = [(e["type"], e["chat_id"]) for e in
               c.get(f"/api/events/?since={since}", token=x["access"]).json()["results"]]
    assert ("member_removed", g["id"]) in removal, removal
    assert any("about to go" in p for (p,) in s.db.query("SELECT payload FROM events WHERE chat_id = ?", g["id"]))
    assert c.request("DELETE", f"/api/chats/{g['id']}/", token=a["access"]).status_code == 204
    rows = s.db.query("SELECT type, user_id, payload FROM events WHERE chat_id = ?", g["id"])
    assert rows and all(u is not None for _, u, _ in rows), rows
    assert not any("about to go" in p for _, _, p in rows), rows
    assert sorted(u for t, u, _ in rows if t == "chat_deleted") == sorted([uid(a), uid(b)])
    # Replays read as before the purge: the event that ends the chat for each of them.
    for who, ending in ((x, removal), (b, [("chat_deleted", g["id"])])):
        got = [(e["type"], e["chat_id"]) for e in
               c.get(f"/api/events/?since={since}", token=who["access"]).json()["results"]]
        assert got == ending, (who["user"]["username"], got)


def test_a_deleted_chat_leaves_none_of_its_rows(make_server):
    """A chat deleted by a member, and a group deleted by its last member leaving, leave no
    row behind: members, messages (deleted ones too), hides, pins, and the events all its
    members shared. (SQLite removes them in slices after the deletion's own transaction,
    before it answers.) The pair of a deleted private chat can start a new one."""
    s = make_server()
    c = Client(s)
    a, b = c.register(), c.register()
    private = c.post("/api/chats/", token=a["access"], json={"type": "private", "member_ids": [uid(b)]}).json()
    group = new_group(c, a, b)
    for chat in (private["id"], group["id"]):
        ids = [send(c, a, chat, f"words {i}")["id"] for i in range(3)]
        assert c.request("DELETE", f"/api/messages/{ids[0]}/?for=me", token=b["access"]).status_code == 204
        assert c.post("/api/pinned/", token=a["access"], json={"message_id": ids[1]}).status_code == 201
        assert c.request("DELETE", f"/api/messages/{ids[2]}/", token=a["access"]).status_code == 204
    assert c.request("DELETE", f"/api/chats/{private['id']}/", token=b["access"]).status_code == 204
    for who in (b, a):
        r = c.request("DELETE", f"/api/chats/{group['id']}/members/{uid(who)}/", token=who["access"])
        assert r.status_code == 204, r.text
    for chat in (private["id"], group["id"]):
        left = {table: s.db.scalar(f"SELECT count(*) FROM {table} WHERE chat_id = ?", chat)
                for table in ("chat_members", "messages", "hidden_messages", "pins")}
        left["chats"] = s.db.scalar("SELECT count(*) FROM chats WHERE id = ?", chat)
        left["events"] = s.db.scalar("SELECT count(*) FROM events WHERE chat_id = ? AND user_id IS NULL", chat)
        assert set(left.values()) == {0}, (chat, left)
    again = c.post("/api/chats/", token=a["access"], json={"type": "private", "member_ids": [uid(b)]})
    assert again.status_code == 201 and again.json()["id"] != private["id"], again.text


@pytest.mark.postgres_only
def test_deleting_a_chat_while_its_messages_are_edited_deadlocks_nothing(make_server):
    """A chat's deletion cascades to its messages and then deletes its events; an edit locks
    its message, then rewrites its events. Taken in opposite orders the two deadlocked
    (PostgreSQL broke the cycle after its deadlock timeout, 1 s, and the write was
    retried). PostgreSQL's own log shows any deadlock."""
    log_path = os.environ["CHATD_TEST_PG_LOG"]
    s = make_server()
    c = Client(s)
    a, b = c.register(), c.register()
    before = os.path.getsize(log_path)
    failures = []
    for _ in range(10):
        g = new_group(c, a, b)
        ids = [send(c, b, g["id"], f"m{i}")["id"] for i in range(3)]
        gone = threading.Event()

        def edits():
            own = Client(s)
            n = 0
            while not gone.is_set() and n < 500:
                n += 1
                r = own.patch(f"/api/messages/{ids[n % 3]}/", token=b["access"], json={"text": f"e{n}"})
                # Gone with the chat: 404, or 400 for an edit that found its message as the
                # deletion took it ("A deleted message cannot be edited.").
                if r.status_code in (400, 404):
                    return
                if r.status_code != 200:
                    failures.append(r.text)

        editor = threading.Thread(target=edits)
        editor.start()
        time.sleep(0.02)
        r = c.request("DELETE", f"/api/chats/{g['id']}/", token=a["access"])
        gone.set()
        editor.join(30)
        assert r.status_code == 204, r.text
    assert not failures, failures
    with open(log_path, errors="replace") as f:
        f.seek(before)
        assert "deadlock detected" not in f.read()
    assert_no_server_errors(s)


def test_chat_events_log_copies_of_messages_without_their_text(make_server):
    """Renames and additions carry the chat's last message (and, for members who hid it, the
    one they see instead): the log keeps those copies without their text, so an edit or a
    deletion leaves the old words only in what it rewrites (the message's own event)."""
    s = make_server()
    c = Client(s)
    a, b, h, d = c.register(), c.register(), c.register(), c.register()
    g = new_group(c, a, b, h)
    secret = send(c, a, g["id"], "the code is hunter2")
    assert c.patch(f"/api/chats/{g['id']}/", token=a["access"], json={"name": "renamed"}).status_code == 200
    r = c.post(f"/api/chats/{g['id']}/members/", token=a["access"], json={"user_id": uid(d)})
    assert r.status_code == 201, r.text
    later = send(c, b, g["id"], "later words")
    assert c.request("DELETE", f"/api/messages/{later['id']}/?for=me", token=h["access"]).status_code == 204
    assert c.patch(f"/api/chats/{g['id']}/", token=a["access"], json={"name": "again"}).status_code == 200

    def logged():
        return s.db.query("SELECT type, payload FROM events WHERE chat_id = ? ORDER BY seq", g["id"])

    renames = [json.loads(p) for t, p in logged() if t == "chat_updated"]
    joined = [json.loads(p) for t, p in logged() if t == "chat_created"]
    joined = [e for e in joined if e["chat"]["last_message"] is not None]
    assert len(renames) == 2 and len(joined) == 1, (renames, joined)
    # The two renames and the newcomer's chat_created, each with a copy of the secret (the
    # second rename's for the member who hid the newer message), without its text.
    copies = [renames[0]["last_message"], joined[0]["chat"]["last_message"],
              renames[1]["seen_by_hiders"][0]["last_message"]]
    assert [m["id"] for m in copies] == [secret["id"]] * 3
    assert all(m["text"] == "" for m in copies), copies
    assert renames[1]["last_message"]["id"] == later["id"] and renames[1]["last_message"]["text"] == ""
    assert [t for t, p in logged() if "hunter2" in p] == ["message"]
    r = c.patch(f"/api/messages/{secret['id']}/", token=a["access"], json={"text": "the code is ***"})
    assert r.status_code == 200, r.text
    assert [t for t, p in logged() if "hunter2" in p] == []
    assert c.request("DELETE", f"/api/messages/{secret['id']}/", token=a["access"]).status_code == 204
    assert [t for t, p in logged() if "the code is" in p] == []
    # Replays fill in each reader's own copy: the newcomer sees the chat as it is now.
    feed = c.get("/api/events/?since=0", token=d["access"]).json()["results"]
    joined = next(e for e in feed if e["type"] == "chat_created")
    assert joined["chat"]["last_message"]["id"] == later["id"]
    assert joined["chat"]["last_message"]["text"] == "later words"


def test_resync_required_past_retention(make_server):
    s = make_server()
    c = Client(s)
    a, b = c.register(), c.register()
    g = new_group(c, a, b)
    send(c, a, g["id"], "old news")
    # As the hourly pruning job leaves it.
    top = s.db.scalar("SELECT max(seq) FROM events")
    s.db.execute("DELETE FROM events WHERE seq <= ?", top)
    s.db.execute("UPDATE event_log_state SET pruned_through = ?", top)
    r = c.get("/api/events/?since=0", token=b["access"]).json()
    assert r["resync_required"] is True and r["results"] == []
    assert c.get(f"/api/events/?since={top}", token=b["access"]).json()["resync_required"] is False


def test_patch_is_a_partial_update_and_put_is_not(client):
    """DRF's partial update: PATCH with a field left out keeps it (an empty body changes
    nothing and logs nothing); PUT still requires every field."""
    ann, bob = client.register(), client.register()
    g = client.post("/api/chats/", token=ann["access"],
                    json={"type": "group", "name": "partial", "member_ids": [uid(bob)]}).json()
    m = client.post("/api/messages/", token=ann["access"], json={"chat": g["id"], "text": "as sent"}).json()
    seq = client.get("/api/events/?since=0", token=ann["access"]).json()["seq"]

    r = client.patch(f"/api/chats/{g['id']}/", token=ann["access"], json={"id": 999, "type": "private"})
    assert r.status_code == 200 and r.json()["name"] == "partial" and r.json()["type"] == "group", r.text
    r = client.patch(f"/api/messages/{m['id']}/", token=ann["access"], json={})
    assert r.status_code == 200, r.text
    assert r.json()["text"] == "as sent" and r.json()["is_edited"] is False and r.json()["edited_at"] is None
    r = client.patch(f"/api/chats/{g['id']}/members/{uid(bob)}/", token=ann["access"], json={})
    assert r.status_code == 200 and r.json() == {"id": uid(bob), "username": bob["user"]["username"],
                                                 "role": "member"}, r.text
    assert client.get(f"/api/events/?since={seq}", token=ann["access"]).json()["results"] == []
    # Permissions still come first: bob may not rename, nor edit ann's message.
    assert client.patch(f"/api/chats/{g['id']}/", token=bob["access"], json={}).status_code == 403
    assert client.patch(f"/api/messages/{m['id']}/", token=bob["access"], json={}).status_code == 403
    # PUT is a full update.
    for path, field in ((f"/api/chats/{g['id']}/", "name"), (f"/api/messages/{m['id']}/", "text")):
        r = client.request("PUT", path, token=ann["access"], json={})
        assert r.status_code == 400 and r.json() == {field: ["This field is required."]}, (path, r.text)
