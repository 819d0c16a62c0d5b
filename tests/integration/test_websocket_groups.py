"""Delivered receipts in a large group are coalesced: a message read by 40 members'
sockets produces one `delivered` event for everyone, not one per member."""
import asyncio
import json
import time

import websockets

from conftest import Client


def test_large_group_delivered_events_are_coalesced(make_server):
    s = make_server()
    c = Client(s)
    owner = c.register()
    members = [c.register() for _ in range(40)]
    g = c.post("/api/chats/", token=owner["access"],
               json={"type": "group", "name": "big", "member_ids": [m["user"]["id"] for m in members]}).json()
    url = s.url.replace("http", "ws")

    async def scenario():
        sockets = [await websockets.connect(f"{url}/ws/?token={m['access']}", ping_interval=None, max_queue=None) for m in members]
        sender = await websockets.connect(f"{url}/ws/?token={owner['access']}", ping_interval=None, max_queue=None)
        try:
            await sender.send(json.dumps({"type": "message", "chat_id": g["id"], "text": "to all", "client_id": "big-1"}))
            message_id = None
            received = 0
            for ws in sockets:  # every member's socket gets the message
                while True:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if frame["type"] == "message":
                        message_id = frame["message_id"]
                        received += 1
                        break
            assert received == 40
            # Collect what the sender hears for a while: delivered watermarks are flushed in batches.
            delivered = []
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                try:
                    frame = json.loads(await asyncio.wait_for(sender.recv(), 0.3))
                except asyncio.TimeoutError:
                    continue
                if frame["type"] == "delivered":
                    delivered.append(frame)
            return message_id, delivered
        finally:
            for ws in sockets + [sender]:
                await ws.close()

    message_id, delivered = asyncio.run(scenario())
    assert 1 <= len(delivered) <= 3, delivered  # not 40: one per rise of the lowest watermark
    assert delivered[-1]["last_delivered_message_id"] == message_id
    # The watermarks themselves were all written: the sender's message shows as delivered.
    page = c.get(f"/api/messages/?chat={g['id']}", token=owner["access"]).json()
    assert page["results"][0]["status"] == "delivered"
