"""What the README's "Upgrades" step promises an operator, against real servers: a node
keeps serving while a newer version's migration changes what a statement it prepared
returns (a rolling upgrade)."""

import pytest

import conftest
from conftest import Client
from test_websocket import is_, private_chat, rest_send, run, uid, user_ws

# What a newer version's migration might do to the send function while older nodes still
# serve: give it one more result column at the end (the rule for such migrations: see
# pg_migrations.cpp). The function is wrapped under its own name, so what it stores is
# unchanged; only its result type is new, which is what invalidates prepared statements.
WIDEN_SEND_FUNCTION = r"""
DO $do$
DECLARE f oid; n int; args text; result text; positional text;
BEGIN
  SELECT p.oid, p.pronargs INTO f, n FROM pg_proc p WHERE p.proname = 'chat_send_messages';
  args := pg_get_function_identity_arguments(f);
  result := pg_get_function_result(f);
  SELECT string_agg('$' || i, ', ') INTO positional FROM generate_series(1, n) i;
  EXECUTE format('ALTER FUNCTION chat_send_messages(%s) RENAME TO chat_send_messages_before', args);
  EXECUTE format('CREATE FUNCTION chat_send_messages(%s) RETURNS %s LANGUAGE sql AS '
                 '$f$ SELECT *, 0 FROM chat_send_messages_before(%s) $f$',
                 args, left(result, length(result) - 1) || ', r_added integer)', positional);
END
$do$;
"""


def test_a_node_keeps_sending_after_a_newer_migration_changes_the_send_functions_result(make_server):
    if conftest.BACKEND != "postgres":
        pytest.skip("statements prepared across a schema change are PostgreSQL's")
    # Two connections, both used before the change, so each meets the stale plan.
    server = make_server(DB_POOL_SIZE="2")
    c = Client(server)
    ann, bob = c.register(), c.register()
    chat = private_chat(c, ann, bob)
    first = [rest_send(c, ann, chat, f"before {i}") for i in range(6)]

    server.db.execute(WIDEN_SEND_FUNCTION)
    assert server.db.scalar("SELECT count(*) FROM pg_proc WHERE proname = 'chat_send_messages_before'") == 1

    # REST sends and a forward, each on whichever connection the pool lends.
    after = [rest_send(c, ann, chat, f"after {i}") for i in range(6)]
    r = c.post(f"/api/messages/{first[0]['id']}/forward/", token=bob["access"],
               json={"target_chat_id": chat})
    assert r.status_code == 201, r.text
    assert r.json()["forwarded_from"] == first[0]["id"]

    async def socket_send():
        ws = await user_ws(server, bob)
        await ws.send({"type": "message", "chat_id": chat, "text": "over the socket", "client_id": "k1"})
        echo = await ws.until(is_("message", client_id="k1"))
        await ws.close()
        return echo

    echo = run(socket_send())
    assert echo["text"] == "over the socket" and echo["sender_id"] == uid(bob)

    ids = [m["id"] for m in first + after] + [r.json()["id"], echo["message_id"]]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    stored = c.get(f"/api/messages/?chat={chat}&limit=200", token=ann["access"]).json()["results"]
    assert sorted(m["id"] for m in stored) == ids
    # The make_server fixture then checks the log for 500s and unhandled errors.

