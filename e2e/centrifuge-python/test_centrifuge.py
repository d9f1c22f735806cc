"""The official Python SDK (centrifuge-python, asyncio) against duplex's
/connection/websocket: tokens, refresh, pings, publications from the API and
from clients, join/leave, presence, history, recovery after a disconnect,
subscription tokens. Mirrors e2e/centrifuge-js. Run through run.sh.
"""

import asyncio
import time

import pytest
from centrifuge import ClientState, ReplyError, StreamPosition, SubscriptionState

from harness import api, client, connect_token, sign, sub_token, subscription, uniq

WAIT = 5.0


def async_test(fn):
    """Runs the coroutine test in a fresh event loop; disconnects every client
    it made (passed in as `made`) afterwards."""

    def wrapper(server):
        async def main():
            made = []

            def make(*args, **kwargs):
                c = client(server, *args, **kwargs)
                made.append(c)
                return c

            try:
                await asyncio.wait_for(fn(server, make), 60)
            finally:
                for c in made:
                    await c.disconnect()

        asyncio.run(main())

    # Not functools.wraps: pytest would read the coroutine's signature and
    # look for a `make` fixture.
    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


async def connected(c):
    await c.connect()
    await c.ready(timeout=WAIT)
    return c


async def subscribed(sub):
    await sub.subscribe()
    await sub.ready(timeout=WAIT)
    return sub.rec.of("subscribed")[-1]


async def user(make, name, **kwargs):
    c = make(token=connect_token(name, info={"name": name}), **kwargs)
    await connected(c)
    return c


async def until(cond, timeout=WAIT, what="condition"):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


# --- connecting and tokens ----------------------------------------------------


@async_test
async def test_connects_with_a_token(server, make):
    a = await user(make, "alice")
    b = await user(make, "alice")
    ctx = a.rec.of("connected")[0]
    assert isinstance(ctx.client, str) and ctx.client
    assert a.client_id == ctx.client
    assert a.client_id != b.client_id
    assert a.state == ClientState.CONNECTED


async def expect_terminal(c, codes):
    await c.connect()
    ctx = await c.rec.wait("disconnected")
    assert ctx.code in codes, f"disconnected with {ctx.code} ({ctx.reason}), want one of {codes}"
    attempts = len(c.rec.of("connecting"))
    await asyncio.sleep(1)
    assert c.state == ClientState.DISCONNECTED
    assert len(c.rec.of("connecting")) == attempts, "no reconnect after a terminal close"


@async_test
async def test_wrongly_signed_token_closes_with_3500(server, make):
    await expect_terminal(make(token=connect_token("alice", secret="not-the-secret")), [3500])


@async_test
async def test_alg_none_token_closes_with_3500(server, make):
    good = connect_token("alice")
    _, payload, _ = good.split(".")
    header = sign({}, header={"alg": "none", "typ": "JWT"}).split(".")[0]
    await expect_terminal(make(token=f"{header}.{payload}."), [3500])


@async_test
async def test_no_token_is_refused(server, make):
    await expect_terminal(make(), [101, 3500])


@async_test
async def test_expired_token_gets_109_and_get_token_is_called(server, make):
    calls = []

    async def get_token():
        calls.append(1)
        return connect_token("alice")

    c = make(token=connect_token("alice", ttl=-60), get_token=get_token)
    await c.connect()
    await c.ready(timeout=WAIT)
    assert len(calls) == 1
    codes = [getattr(e.error, "code", None) for e in c.rec.of("error")]
    assert 109 in codes, codes


@async_test
async def test_expiring_token_is_refreshed_on_the_same_connection(server, make):
    calls = []

    async def get_token():
        calls.append(1)
        return connect_token("carol", ttl=3600)

    c = make(token=connect_token("carol", ttl=2), get_token=get_token)
    await connected(c)
    first = c.client_id
    await until(lambda: calls, 8, "get_token for the refresh")
    await asyncio.sleep(4)  # well past the first token's expiry
    assert len(calls) == 1
    assert c.state == ClientState.CONNECTED
    assert c.rec.of("connecting")[1:] == [], "no reconnect"  # [0] is connect() itself
    assert c.rec.of("disconnected") == []
    assert c.client_id == first
    channel = uniq("chat:refresh")
    sub = subscription(c, channel)
    await subscribed(sub)
    await api(server, "publish", {"channel": channel, "data": {"after": "refresh"}})
    ctx = await sub.rec.wait("publication")
    assert ctx.pub.data == {"after": "refresh"}


@async_test
async def test_pings_keep_the_connection_up(server, make):
    # The SDK drops a connection that gets no ping for ping + 1 s (python
    # restarts that timer on pings only, not on other frames).
    c = await user(make, "dave", max_server_ping_delay=1.0)
    first = c.client_id
    await asyncio.sleep(7)
    assert c.state == ClientState.CONNECTED
    assert c.rec.of("connecting")[1:] == []
    assert c.client_id == first


@async_test
async def test_token_channels_make_server_side_subscriptions(server, make):
    channel = uniq("chat:srv")
    c = make(token=connect_token("erin", channels=[channel]))
    await connected(c)
    await c.rec.wait("subscribed", lambda ctx: ctx.channel == channel)
    await api(server, "publish", {"channel": channel, "data": {"n": 1}})
    ctx = await c.rec.wait("publication")
    assert ctx.channel == channel
    assert ctx.pub.data == {"n": 1}


# --- channels -----------------------------------------------------------------


@async_test
async def test_publications_from_api_and_client(server, make):
    channel = uniq("chat:room")
    alice = await user(make, "alice")
    bob = await user(make, "bob")
    sub_a = subscription(alice, channel, recoverable=True)
    sub_b = subscription(bob, channel)
    ctx = await subscribed(sub_a)
    await subscribed(sub_b)
    assert ctx.recoverable is True
    assert ctx.was_recovering is False
    assert ctx.stream_position.epoch
    assert ctx.stream_position.offset == 0

    res = await api(server, "publish", {"channel": channel, "data": {"text": "from the api"}})
    assert res["offset"] == 1
    assert res["epoch"] == ctx.stream_position.epoch
    await sub_b.publish({"text": "from bob"})
    for sub in (sub_a, sub_b):
        await sub.rec.wait("publication", count=2)
    await asyncio.sleep(0.2)
    for sub in (sub_a, sub_b):
        pubs = [p.pub for p in sub.rec.of("publication")]
        assert [p.data for p in pubs] == [{"text": "from the api"}, {"text": "from bob"}]
        assert [p.offset for p in pubs] == [1, 2]
        assert pubs[0].info is None
        assert pubs[1].info.user == "bob"
        assert pubs[1].info.client == bob.client_id
        assert pubs[1].info.conn_info == {"name": "bob"}


@async_test
async def test_client_publish_refused_for_non_subscriber(server, make):
    c = await user(make, "mallory")
    with pytest.raises(ReplyError) as err:
        await c.publish(uniq("chat:nopub"), {"x": 1})
    assert err.value.code == 103


@async_test
async def test_join_and_leave(server, make):
    channel = uniq("chat:jl")
    alice = await user(make, "alice")
    bob = await user(make, "bob")
    sub_a = subscription(alice, channel, join_leave=True)
    await subscribed(sub_a)
    sub_b = subscription(bob, channel)
    await subscribed(sub_b)
    join = await sub_a.rec.wait("join", lambda ctx: ctx.info.user == "bob")
    assert join.info.client == bob.client_id
    assert join.info.conn_info == {"name": "bob"}
    await sub_b.unsubscribe()
    leave = await sub_a.rec.wait("leave", lambda ctx: ctx.info.user == "bob")
    assert leave.info.client == bob.client_id
    await sub_b.subscribe()
    await sub_a.rec.wait("join", lambda ctx: ctx.info.user == "bob", count=2)
    await bob.disconnect()
    await sub_a.rec.wait("leave", lambda ctx: ctx.info.user == "bob", count=2)


@async_test
async def test_presence_and_stats(server, make):
    channel = uniq("chat:pres")
    alice1 = await user(make, "alice")
    alice2 = await user(make, "alice")
    bob = await user(make, "bob")
    subs = []
    for c in (alice1, alice2, bob):
        s = subscription(c, channel)
        await subscribed(s)
        subs.append(s)
    pres = await subs[0].presence()
    assert sorted(pres.clients) == sorted([alice1.client_id, alice2.client_id, bob.client_id])
    assert pres.clients[bob.client_id].user == "bob"
    assert pres.clients[alice1.client_id].conn_info == {"name": "alice"}
    stats = await subs[2].presence_stats()
    assert (stats.num_clients, stats.num_users) == (3, 2)

    await bob.disconnect()
    deadline = time.monotonic() + 3
    while True:
        stats = await subs[0].presence_stats()
        if stats.num_clients == 2 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert (stats.num_clients, stats.num_users) == (2, 1)


@async_test
async def test_history(server, make):
    channel = uniq("chat:hist")
    for i in range(1, 6):
        res = await api(server, "publish", {"channel": channel, "data": {"i": i}})
        assert res["offset"] == i
        epoch = res["epoch"]
    c = await user(make, "alice")
    sub = subscription(c, channel)
    await subscribed(sub)

    all_ = await sub.history(limit=10)
    assert (all_.epoch, all_.offset) == (epoch, 5)
    assert [p.data["i"] for p in all_.publications] == [1, 2, 3, 4, 5]
    assert [p.offset for p in all_.publications] == [1, 2, 3, 4, 5]
    last2 = await sub.history(limit=2, reverse=True)
    assert [p.data["i"] for p in last2.publications] == [5, 4]
    since = await c.history(channel, limit=10, since=StreamPosition(offset=3, epoch=epoch))
    assert [p.data["i"] for p in since.publications] == [4, 5]
    # limit 0 (the SDK's default): the stream position only.
    pos = await sub.history()
    assert (pos.publications, pos.epoch, pos.offset) == ([], epoch, 5)


async def publish_n(server, channel, start, n):
    for i in range(start, start + n):
        await api(server, "publish", {"channel": channel, "data": {"seq": i}})


def seqs(sub):
    return [p.pub.data["seq"] for p in sub.rec.of("publication")]


@async_test
async def test_recovery_after_disconnect_and_connect(server, make):
    channel = uniq("chat:recover")
    c = await user(make, "alice")
    sub = subscription(c, channel, recoverable=True)
    await subscribed(sub)
    await publish_n(server, channel, 1, 1)
    await sub.rec.wait("publication")

    await c.disconnect()
    await publish_n(server, channel, 2, 5)
    await connected(c)
    ctx = await sub.rec.wait("subscribed", count=2)
    assert ctx.was_recovering is True
    assert ctx.recovered is True
    await sub.rec.wait("publication", count=6)
    await asyncio.sleep(0.3)
    assert seqs(sub) == [1, 2, 3, 4, 5, 6]
    assert [p.pub.offset for p in sub.rec.of("publication")] == [1, 2, 3, 4, 5, 6]
    await publish_n(server, channel, 7, 1)
    await sub.rec.wait("publication", count=7)
    assert sub.rec.of("publication")[6].pub.offset == 7


@async_test
async def test_recovery_after_the_socket_is_cut(server, make):
    channel = uniq("chat:cut")
    # A fixed reconnect delay (backoff min == max) leaves time to publish.
    c = await user(make, "alice", min_reconnect_delay=1.5, max_reconnect_delay=1.5)
    sub = subscription(c, channel, recoverable=True)
    await subscribed(sub)
    await publish_n(server, channel, 1, 2)
    await sub.rec.wait("publication", count=2)
    first = c.client_id

    # No close frame, like a network failure (the SDK's connection is private).
    c._conn.transport.abort()
    await c.rec.wait("connecting", count=2)
    await publish_n(server, channel, 3, 4)
    ctx = await sub.rec.wait("subscribed", count=2, timeout=8)
    assert c.client_id != first
    assert ctx.was_recovering is True
    assert ctx.recovered is True
    await sub.rec.wait("publication", count=6)
    await asyncio.sleep(0.3)
    assert seqs(sub) == [1, 2, 3, 4, 5, 6]


@async_test
async def test_subscription_tokens(server, make):
    channel = uniq("secret:doc")
    c = await user(make, "alice")
    denied = subscription(c, channel)
    await denied.subscribe()
    ctx = await denied.rec.wait("unsubscribed")
    assert ctx.code == 103
    c.remove_subscription(denied)

    asked = []

    async def get_token(ch):
        asked.append(ch)
        return sub_token("alice", ch)

    sub = subscription(c, channel, get_token=get_token)
    await subscribed(sub)
    assert asked == [channel]
    await api(server, "publish", {"channel": channel, "data": "classified"})
    assert (await sub.rec.wait("publication")).pub.data == "classified"


@async_test
async def test_expired_subscription_token_asks_get_token(server, make):
    channel = uniq("secret:exp")
    c = await user(make, "alice")
    calls = []

    async def get_token(ch):
        calls.append(ch)
        return sub_token("alice", ch)

    sub = subscription(c, channel, token=sub_token("alice", channel, ttl=-60), get_token=get_token)
    await sub.subscribe()
    await sub.ready(timeout=WAIT)
    assert sub.state == SubscriptionState.SUBSCRIBED
    assert calls == [channel]


@async_test
async def test_subscription_token_mismatch_closes_with_3500(server, make):
    # As Centrifugo: a subscription token for another channel or another user
    # is an invalid token (terminal disconnect).
    channel = uniq("secret:mine")
    for token in (sub_token("alice", channel + "-other"), sub_token("bob", channel)):
        c = await user(make, "alice")
        sub = subscription(c, channel, token=token)
        await sub.subscribe()
        ctx = await c.rec.wait("disconnected")
        assert ctx.code == 3500
        assert c.state == ClientState.DISCONNECTED


@async_test
async def test_user_limited_channel(server, make):
    channel = uniq("chat:dm") + "#alice,bob"
    alice = await user(make, "alice")
    carol = await user(make, "carol")
    await subscribed(subscription(alice, channel))
    sub = subscription(carol, channel)
    await sub.subscribe()
    assert (await sub.rec.wait("unsubscribed")).code == 103


@async_test
async def test_api_subscribe_unsubscribe_disconnect(server, make):
    channel = uniq("chat:apisub")
    c = await user(make, "frank")
    await api(server, "subscribe", {"user": "frank", "channel": channel})
    await c.rec.wait("subscribed", lambda ctx: ctx.channel == channel)
    await api(server, "publish", {"channel": channel, "data": "hello frank"})
    assert (await c.rec.wait("publication")).pub.data == "hello frank"
    await api(server, "unsubscribe", {"user": "frank", "channel": channel})
    await c.rec.wait("unsubscribed", lambda ctx: ctx.channel == channel)
    await api(server, "disconnect", {"user": "frank", "code": 4503, "reason": "kicked"})
    ctx = await c.rec.wait("disconnected")
    assert (ctx.code, ctx.reason) == (4503, "kicked")


@async_test
async def test_burst_arrives_complete_and_in_order(server, make):
    channel = uniq("chat:burst")
    alice = await user(make, "alice")
    bob = await user(make, "bob")
    sub_a = subscription(alice, channel)
    sub_b = subscription(bob, channel)
    await subscribed(sub_a)
    await subscribed(sub_b)
    await asyncio.gather(
        *(sub_b.publish({"from": "bob", "i": i}) for i in range(100)),
        *(api(server, "publish", {"channel": channel, "data": {"from": "api", "i": i}}) for i in range(100)),
    )
    await sub_a.rec.wait("publication", count=200, timeout=10)
    pubs = [p.pub for p in sub_a.rec.of("publication")]
    assert [p.offset for p in pubs] == list(range(1, 201))
    assert [p.data["i"] for p in pubs if p.data["from"] == "bob"] == list(range(100))


@async_test
async def test_api_unsubscribe_of_a_client_side_subscription(server, make):
    channel = uniq("chat:kick")
    c = await user(make, "gina")
    sub = subscription(c, channel)
    await subscribed(sub)
    await api(server, "unsubscribe", {"user": "gina", "channel": channel})
    ctx = await sub.rec.wait("unsubscribed")
    assert ctx.code < 2500, "a terminal unsubscribe: no resubscribe"
    assert sub.state == SubscriptionState.UNSUBSCRIBED
    assert c.state == ClientState.CONNECTED
