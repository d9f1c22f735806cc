"""A server that stops (SIGTERM) and starts again on the same port: clients
get 3001 and reconnect by themselves; with memory storage the new server has
new epochs, so the resubscribe reports recovered=False. Own server, not the
session one."""

import asyncio

from centrifuge import ClientState

from harness import api, client, connect_token, start_server, subscription, uniq


def test_sigterm_then_restart():
    server = start_server()

    async def main():
        channel = uniq("chat:restart")
        c = client(server, token=connect_token("alice"), min_reconnect_delay=0.2, max_reconnect_delay=0.5)
        sub = subscription(c, channel, recoverable=True)
        try:
            await c.connect()
            await c.ready(timeout=5)
            await sub.subscribe()
            await sub.ready(timeout=5)
            epoch1 = sub.rec.of("subscribed")[0].stream_position.epoch
            await api(server, "publish", {"channel": channel, "data": {"n": 1}})
            await sub.rec.wait("publication")

            status = await asyncio.to_thread(server.stop)
            assert status == 0
            ctx = await c.rec.wait("connecting", count=2)
            assert ctx.code == 3001, (ctx.code, ctx.reason)

            restarted = await asyncio.to_thread(start_server, server.port)
            try:
                await c.rec.wait("connected", count=2, timeout=10)
                sctx = await sub.rec.wait("subscribed", count=2)
                assert sctx.was_recovering is True
                assert sctx.recovered is False
                assert sctx.stream_position.epoch != epoch1
                await api(restarted, "publish", {"channel": channel, "data": {"n": 2}})
                pub = await sub.rec.wait("publication", count=2)
                assert pub.pub.data == {"n": 2}
                assert c.state == ClientState.CONNECTED
            finally:
                await c.disconnect()
                restarted.stop()
        finally:
            await c.disconnect()

    try:
        asyncio.run(asyncio.wait_for(main(), 60))
    finally:
        server.stop()
