// centrifuge-js 5.x against duplex's /connection/websocket: subscriptions,
// publications from the API and from clients, join/leave, presence, history,
// recovery of what was missed while disconnected, subscription tokens.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";

import {
  api, clients, connected, connectToken, newSub, next, record, sleep, startServer,
  subToken, subscribed, trackedWebSocket, uniq, until,
} from "./harness.mjs";

let server;
let pool;

before(async () => {
  server = await startServer();
  pool = clients(server);
});

after(async () => {
  pool?.closeAll();
  await server?.stop();
});

async function user(name, opts = {}) {
  const c = pool.make({ token: connectToken(name, { info: { name } }), ...opts });
  const ctx = await connected(c);
  return { c, id: ctx.client };
}

test("publications from the API and from a client reach every subscriber, in order, with offsets", async () => {
  const channel = uniq("chat:room");
  const alice = await user("alice");
  const bob = await user("bob");
  const subA = newSub(alice.c, channel, { recoverable: true });
  const subB = newSub(bob.c, channel);
  const ctxA = await subscribed(subA);
  await subscribed(subB);
  assert.equal(ctxA.recoverable, true);
  assert.equal(ctxA.wasRecovering, false);
  assert.equal(typeof ctxA.streamPosition?.epoch, "string");
  assert.ok(ctxA.streamPosition.epoch.length > 0, "a non-empty epoch");
  assert.equal(ctxA.streamPosition.offset, 0);
  const pubsA = record(subA, "publication");
  const pubsB = record(subB, "publication");

  const res = await api(server, "publish", { channel, data: { text: "from the api" } });
  assert.equal(res.offset, 1);
  assert.equal(res.epoch, ctxA.streamPosition.epoch);
  await subB.publish({ text: "from bob" });
  await until(() => pubsA.length === 2 && pubsB.length === 2, 3000, "2 publications on both");

  for (const pubs of [pubsA, pubsB]) {
    assert.deepEqual(pubs.map((p) => p.data), [{ text: "from the api" }, { text: "from bob" }]);
    assert.deepEqual(pubs.map((p) => p.offset), [1, 2]);
    assert.equal(pubs[0].info, undefined, "an API publication has no client info");
    assert.equal(pubs[1].info.user, "bob");
    assert.equal(pubs[1].info.client, bob.id);
    assert.deepEqual(pubs[1].info.connInfo, { name: "bob" });
  }
  await sleep(200);
  assert.equal(pubsA.length, 2, "no duplicates");
});

test("subscriptions made before connect() go out in the connect frame and all succeed", async () => {
  // centrifuge-js sends connect and these subscribes in one WebSocket frame,
  // before the connect reply.
  const channels = [uniq("chat:early"), uniq("chat:early"), uniq("chat:early")];
  const c = pool.make({ token: connectToken("alice") });
  const subs = channels.map((ch) => newSub(c, ch));
  const done = subs.map((s) => next(s, "subscribed"));
  for (const s of subs) s.subscribe();
  await connected(c);
  await Promise.all(done);
  const pubs = subs.map((s) => record(s, "publication"));
  for (const ch of channels) await api(server, "publish", { channel: ch, data: ch });
  await until(() => pubs.every((p) => p.length === 1), 3000, "one publication per channel");
  assert.deepEqual(pubs.map((p) => p[0].data), channels);
});

test("a burst of 200 publications (API and client) arrives complete and in order", async () => {
  const channel = uniq("chat:burst");
  const alice = await user("alice");
  const bob = await user("bob");
  const subA = newSub(alice.c, channel);
  const subB = newSub(bob.c, channel);
  await subscribed(subA);
  await subscribed(subB);
  const pubs = record(subA, "publication");
  // 100 from bob without waiting for replies, 100 from the API in parallel.
  const fromBob = Array.from({ length: 100 }, (_, i) => subB.publish({ from: "bob", i }));
  const fromApi = Array.from({ length: 100 }, (_, i) => api(server, "publish", { channel, data: { from: "api", i } }));
  await Promise.all([...fromBob, ...fromApi]);
  await until(() => pubs.length >= 200, 10000, "200 publications");
  assert.equal(pubs.length, 200);
  assert.deepEqual(pubs.map((p) => p.offset), Array.from({ length: 200 }, (_, i) => i + 1));
  const bobs = pubs.filter((p) => p.data.from === "bob").map((p) => p.data.i);
  assert.deepEqual(bobs, Array.from({ length: 100 }, (_, i) => i), "one client's publications keep their order");
});

test("after unsubscribe no more publications arrive", async () => {
  const channel = uniq("chat:unsub");
  const { c } = await user("alice");
  const sub = newSub(c, channel);
  await subscribed(sub);
  const pubs = record(sub, "publication");
  await api(server, "publish", { channel, data: 1 });
  await until(() => pubs.length === 1, 3000, "the first publication");
  sub.unsubscribe();
  // A round trip on the same connection: the server has handled the
  // unsubscribe once this (rpc, answered with 104) comes back.
  await c.rpc("ping", {}).catch(() => {});
  await api(server, "publish", { channel, data: 2 });
  // Resubscribing shows the server really dropped the old subscription
  // (no "already subscribed") and delivers again.
  await subscribed(sub);
  await api(server, "publish", { channel, data: 3 });
  await until(() => pubs.length === 2, 3000, "the publication after resubscribing");
  assert.deepEqual(pubs.map((p) => p.data), [1, 3]);
});

test("client publish is refused with 103 for a non-subscriber", async () => {
  const channel = uniq("chat:nopub");
  const { c } = await user("mallory");
  await assert.rejects(c.publish(channel, { x: 1 }), (err) => err.code === 103);
});

test("join and leave events between two clients", async () => {
  const channel = uniq("chat:jl");
  const alice = await user("alice");
  const bob = await user("bob");
  const subA = newSub(alice.c, channel, { joinLeave: true });
  await subscribed(subA);
  const joins = record(subA, "join");
  const leaves = record(subA, "leave");

  const subB = newSub(bob.c, channel);
  await subscribed(subB);
  await until(() => joins.some((j) => j.info.user === "bob"), 3000, "bob's join");
  const join = joins.find((j) => j.info.user === "bob");
  assert.equal(join.channel, channel);
  assert.equal(join.info.client, bob.id);
  assert.deepEqual(join.info.connInfo, { name: "bob" });

  subB.unsubscribe();
  await until(() => leaves.some((l) => l.info.user === "bob"), 3000, "bob's leave on unsubscribe");
  assert.equal(leaves.find((l) => l.info.user === "bob").info.client, bob.id);

  // A leave also comes when the client goes away without unsubscribing.
  subB.subscribe();
  await until(() => joins.filter((j) => j.info.user === "bob").length === 2, 3000, "bob's second join");
  bob.c.disconnect();
  await until(() => leaves.filter((l) => l.info.user === "bob").length === 2, 3000, "bob's leave on disconnect");
});

test("presence and presence stats", async () => {
  const channel = uniq("chat:pres");
  const alice1 = await user("alice");
  const alice2 = await user("alice");
  const bob = await user("bob");
  const subs = [];
  for (const u of [alice1, alice2, bob]) {
    const s = newSub(u.c, channel);
    await subscribed(s);
    subs.push(s);
  }
  const { clients } = await subs[0].presence();
  assert.deepEqual(Object.keys(clients).sort(), [alice1.id, alice2.id, bob.id].sort());
  assert.equal(clients[bob.id].user, "bob");
  assert.equal(clients[bob.id].client, bob.id);
  assert.deepEqual(clients[alice1.id].connInfo, { name: "alice" });
  assert.deepEqual(await subs[2].presenceStats(), { numClients: 3, numUsers: 2 });
  // The client-level call sends the same command.
  assert.deepEqual(await alice1.c.presenceStats(channel), { numClients: 3, numUsers: 2 });

  bob.c.disconnect();
  let stats;
  const deadline = Date.now() + 3000;
  do {
    stats = await subs[0].presenceStats();
    if (stats.numClients === 2) break;
    await sleep(50);
  } while (Date.now() < deadline);
  assert.deepEqual(stats, { numClients: 2, numUsers: 1 });
  const after = await subs[1].presence();
  assert.deepEqual(Object.keys(after.clients).sort(), [alice1.id, alice2.id].sort());
});

test("history: limit, reverse, since, and the bare stream position", async () => {
  const channel = uniq("chat:hist");
  let epoch;
  for (let i = 1; i <= 5; i++) {
    const r = await api(server, "publish", { channel, data: { i } });
    assert.equal(r.offset, i);
    epoch = r.epoch;
  }
  const { c } = await user("alice");
  const sub = newSub(c, channel);
  await subscribed(sub);

  const all = await sub.history({ limit: 10 });
  assert.equal(all.epoch, epoch);
  assert.equal(all.offset, 5);
  assert.deepEqual(all.publications.map((p) => p.data.i), [1, 2, 3, 4, 5]);
  assert.deepEqual(all.publications.map((p) => p.offset), [1, 2, 3, 4, 5]);

  const last2 = await sub.history({ limit: 2, reverse: true });
  assert.deepEqual(last2.publications.map((p) => p.data.i), [5, 4]);

  const first2 = await sub.history({ limit: 2 });
  assert.deepEqual(first2.publications.map((p) => p.data.i), [1, 2]);

  const since = await c.history(channel, { since: { offset: 3, epoch }, limit: 10 });
  assert.deepEqual(since.publications.map((p) => p.data.i), [4, 5]);

  // Without a limit the SDK asks for the stream position only (Centrifugo:
  // limit 0 returns no publications).
  const pos = await sub.history();
  assert.deepEqual(pos, { publications: [], epoch, offset: 5 });
});

async function publishN(channel, from, n) {
  for (let i = from; i < from + n; i++) {
    await api(server, "publish", { channel, data: { seq: i } });
  }
}

test("disconnect(), miss 5 publications, connect(): exactly those are recovered, once, in order", async () => {
  const channel = uniq("chat:recover");
  const { c } = await user("alice");
  const sub = newSub(c, channel, { recoverable: true });
  const subs = record(sub, "subscribed");
  const pubs = record(sub, "publication");
  await subscribed(sub);
  await publishN(channel, 1, 1);
  await until(() => pubs.length === 1, 3000, "the first publication");

  c.disconnect();
  await publishN(channel, 2, 5);
  await connected(c);
  await until(() => subs.length === 2, 5000, "the resubscribe");
  assert.equal(subs[1].wasRecovering, true);
  assert.equal(subs[1].recovered, true);
  assert.equal(subs[1].hasRecoveredPublications, true);
  await until(() => pubs.length >= 6, 3000, "the missed publications");
  await sleep(300);
  assert.deepEqual(pubs.map((p) => p.data.seq), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(pubs.map((p) => p.offset), [1, 2, 3, 4, 5, 6]);

  // Live publications continue after the recovered ones.
  await publishN(channel, 7, 1);
  await until(() => pubs.length === 7, 3000, "a live publication after recovery");
  assert.equal(pubs[6].offset, 7);
});

test("a cut socket: the SDK reconnects by itself and recovers what was published meanwhile", async () => {
  const channel = uniq("chat:cut");
  const { WebSocket, sockets } = trackedWebSocket();
  // A fixed reconnect delay of 1.5 s (backoff min == max) leaves time to
  // publish while the client is away.
  const { c } = await user("alice", { websocket: WebSocket, minReconnectDelay: 1500, maxReconnectDelay: 1500 });
  const sub = newSub(c, channel, { recoverable: true });
  const subs = record(sub, "subscribed");
  const pubs = record(sub, "publication");
  await subscribed(sub);
  await publishN(channel, 1, 2);
  await until(() => pubs.length === 2, 3000, "the first publications");

  const away = next(c, "connecting", 3000);
  sockets[0].terminate(); // no close frame: like a network failure
  await away;
  await publishN(channel, 3, 4);
  await until(() => subs.length === 2, 6000, "the automatic resubscribe");
  assert.equal(sockets.length, 2, "one new WebSocket");
  assert.equal(subs[1].wasRecovering, true);
  assert.equal(subs[1].recovered, true);
  await until(() => pubs.length >= 6, 3000, "the missed publications");
  await sleep(300);
  assert.deepEqual(pubs.map((p) => p.data.seq), [1, 2, 3, 4, 5, 6]);
});

test("subscribe with since: recovers after the given position", async () => {
  const channel = uniq("chat:since");
  let epoch;
  for (let i = 1; i <= 3; i++) epoch = (await api(server, "publish", { channel, data: { i } })).epoch;
  const { c } = await user("alice");
  const sub = newSub(c, channel, { since: { offset: 1, epoch } });
  const pubs = record(sub, "publication");
  const ctx = await subscribed(sub);
  assert.equal(ctx.wasRecovering, true);
  assert.equal(ctx.recovered, true);
  await until(() => pubs.length === 2, 3000, "publications 2 and 3");
  assert.deepEqual(pubs.map((p) => p.data.i), [2, 3]);
});

test("subscribe with since and a wrong epoch: not recovered", async () => {
  const channel = uniq("chat:badepoch");
  await api(server, "publish", { channel, data: { i: 1 } });
  const { c } = await user("alice");
  const sub = newSub(c, channel, { since: { offset: 0, epoch: "not-the-epoch" } });
  const pubs = record(sub, "publication");
  const ctx = await subscribed(sub);
  assert.equal(ctx.wasRecovering, true);
  assert.equal(ctx.recovered, false);
  await sleep(300);
  assert.deepEqual(pubs, []);
});

test("a protected namespace: no token is refused with 103, getToken's subscription token is accepted", async () => {
  const channel = uniq("secret:doc");
  const { c } = await user("alice");
  const denied = newSub(c, channel);
  const gone = next(denied, "unsubscribed", 3000);
  denied.subscribe();
  assert.equal((await gone).code, 103);
  c.removeSubscription(denied);

  const asked = [];
  const sub = newSub(c, channel, {
    getToken: async (ctx) => {
      asked.push(ctx.channel);
      return subToken("alice", ctx.channel);
    },
  });
  await subscribed(sub);
  assert.deepEqual(asked, [channel]);
  const got = next(sub, "publication");
  await api(server, "publish", { channel, data: "classified" });
  assert.equal((await got).data, "classified");
});

test("an expired subscription token gets 109 and getToken is asked for a fresh one", async () => {
  const channel = uniq("secret:exp");
  const { c } = await user("alice");
  let calls = 0;
  const sub = newSub(c, channel, {
    token: subToken("alice", channel, { ttl: -60 }),
    getToken: async () => {
      calls += 1;
      return subToken("alice", channel);
    },
  });
  await subscribed(sub);
  assert.equal(calls, 1);
});

test("a subscription token for another channel or another user closes the connection with 3500", async () => {
  // As Centrifugo: a subscription token that does not match the channel or
  // the connection's user is an invalid token (terminal disconnect).
  const channel = uniq("secret:mine");
  for (const token of [subToken("alice", `${channel}-other`), subToken("bob", channel)]) {
    const { c } = await user("alice");
    const sub = newSub(c, channel, { token });
    const gone = next(c, "disconnected", 3000);
    sub.subscribe();
    assert.equal((await gone).code, 3500);
  }
});

test("a user-limited channel admits only the listed users", async () => {
  const channel = `chat:dm-${process.pid}#alice,bob`;
  const alice = await user("alice");
  const carol = await user("carol");
  await subscribed(newSub(alice.c, channel));
  const sub = newSub(carol.c, channel);
  const gone = next(sub, "unsubscribed", 3000);
  sub.subscribe();
  assert.equal((await gone).code, 103);
});

test("the server survived every test", () => {
  assert.ok(server.alive());
});
