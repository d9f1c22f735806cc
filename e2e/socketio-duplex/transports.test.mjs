// socket.io-client 4.8 on each Engine.IO transport: polling only, websocket
// only, and the default (polling, then the upgrade to websocket). Each gets
// every publication exactly once, in offset order.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";

import {
  api, call, connected, connectToken, next, publications, sockets, startServer, subscribe, uniq,
} from "./harness.mjs";
import { NodeWebSocket, NodeXHR } from "socket.io-client";

let server;
let pool;

before(async () => {
  server = await startServer();
  pool = sockets(server);
});

after(async () => {
  pool?.closeAll();
  await server?.stop();
});

/** Publishes `n` publications one after another; returns their offsets. */
async function publishSeq(channel, n, tag) {
  const offsets = [];
  for (let i = 1; i <= n; i++) {
    const r = await api(server, "publish", { channel, data: { tag, i } });
    offsets.push(r.offset);
  }
  return offsets;
}

function assertInOrder(list, n, tag, startOffset = 1) {
  assert.equal(list.length, n, `${list.length} publications, want ${n}`);
  list.forEach((p, k) => {
    assert.deepEqual(p.data, { tag, i: k + 1 }, `publication ${k}`);
    assert.equal(p.offset, startOffset + k, `offset of publication ${k}`);
  });
}

/** Publishes a sentinel and waits for it: anything duplicated before it would have shown by then. */
async function settle(channel, expected, ...all) {
  await api(server, "publish", { channel, data: { sentinel: true } });
  for (const pubs of all) {
    await pubs.waitFor(expected + 1);
    assert.deepEqual(pubs.list[expected].data, { sentinel: true }, "no duplicates before the sentinel");
    assert.equal(pubs.list.length, expected + 1);
    pubs.list.pop();
  }
}

test("polling only: connects over polling, stays there, gets publications (batched polls) in order", async () => {
  const s = pool.make({ auth: { token: connectToken("pat") }, transports: ["polling"] });
  let upgraded = false;
  s.io.on("open", () => s.io.engine.on("upgrade", () => { upgraded = true; }));
  await connected(s);
  assert.equal(s.io.engine.transport.name, "polling");
  const channel = uniq("chat:poll");
  const pubs = publications(s, channel);
  await subscribe(s, channel);
  // Fired at once: several are waiting when the next poll comes, so they
  // travel in one payload.
  const n = 60;
  await Promise.all(Array.from({ length: n }, (_, k) => api(server, "publish", { channel, data: { k } })));
  await pubs.waitFor(n);
  assert.deepEqual(pubs.list.map((p) => p.offset), Array.from({ length: n }, (_, k) => k + 1));
  assert.deepEqual(new Set(pubs.list.map((p) => p.data.k)).size, n);
  // A client-side round trip over polling too.
  assert.ok(Array.isArray((await call(s, "history", { channel })).publications));
  await publishSeq(channel, 5, "seq").then(() => pubs.waitFor(n + 5));
  assert.equal(s.io.engine.transport.name, "polling");
  assert.equal(upgraded, false);
});

test("websocket only: connects over websocket and gets publications in order", async () => {
  const s = pool.make({ auth: { token: connectToken("wes") }, transports: ["websocket"] });
  await connected(s);
  assert.equal(s.io.engine.transport.name, "websocket");
  const channel = uniq("chat:ws");
  const pubs = publications(s, channel);
  const ack = await subscribe(s, channel);
  assert.equal(typeof ack.epoch, "string");
  await publishSeq(channel, 30, "ws");
  await pubs.waitFor(30);
  await settle(channel, 30, pubs);
  assertInOrder(pubs.list, 30, "ws");
});

/**
 * A socket with the default transports (polling, then websocket), whose
 * token subscribes it to `channel` on connect. `probeDelay` holds back the
 * WebSocket probe, so that publications travel over polling first.
 */
function upgradingSocket(channel, probeDelay = 0) {
  let transports;
  if (probeDelay > 0) {
    class SlowProbe extends NodeWebSocket {
      doOpen() {
        setTimeout(() => {
          if (this.readyState === "opening") super.doOpen();
        }, probeDelay);
      }
    }
    transports = [NodeXHR, SlowProbe];
  }
  const s = pool.make({
    auth: { token: connectToken("uma", { channels: [channel] }) }, autoConnect: false, ...(transports ? { transports } : {}),
  });
  const subscribed = next(s, "subscribe", 10000, (e) => e.channel === channel);
  const firstTransport = new Promise((resolve) => s.io.once("open", () => resolve(s.io.engine.transport.name)));
  const upgraded = new Promise((resolve) => {
    s.io.once("open", () => s.io.engine.once("upgrade", (t) => resolve(t.name)));
  });
  s.connect();
  return { s, subscribed, firstTransport, upgraded };
}

test("default transports: polling first, then the upgrade to websocket; publications after it", async () => {
  const channel = uniq("chat:up");
  const { s, subscribed, firstTransport, upgraded } = upgradingSocket(channel);
  const pubs = publications(s, channel);
  await connected(s);
  assert.equal(await firstTransport, "polling", "the default starts with polling");
  assert.equal((await subscribed).channel, channel);
  assert.equal(await upgraded, "websocket");
  assert.equal(s.io.engine.transport.name, "websocket");
  await publishSeq(channel, 20, "up");
  await pubs.waitFor(20);
  await settle(channel, 20, pubs);
  assertInOrder(pubs.list, 20, "up");
  assert.deepEqual(await call(s, "publish", { channel, data: { tag: "up", i: 21 } }), {});
  await pubs.waitFor(21);
});

test("publications published during the upgrade arrive once, in order (over polling, then websocket)", async (t) => {
  const channel = uniq("chat:during");
  const { s, subscribed, firstTransport, upgraded } = upgradingSocket(channel, 500);
  const pubs = publications(s, channel);
  const seenOn = [];
  s.on("publication", () => seenOn.push(s.io.engine.transport.name));
  await connected(s);
  assert.equal(await firstTransport, "polling");
  await subscribed;
  let done = false;
  upgraded.then(() => { done = true; });
  // Publish until the upgrade is done, and some more after it.
  let sent = 0;
  let after = 0;
  while (after < 20) {
    if (done) after += 1;
    sent += 1;
    await api(server, "publish", { channel, data: { tag: "during", i: sent } });
    if (sent > 5000) throw new Error("no upgrade after 5000 publications");
  }
  assert.equal(await upgraded, "websocket");
  await pubs.waitFor(sent);
  await settle(channel, sent, pubs);
  assertInOrder(pubs.list, sent, "during");
  const overPolling = seenOn.filter((n) => n === "polling").length;
  t.diagnostic(`${overPolling} of ${sent} publications arrived over polling`);
  assert.ok(overPolling > 0, "some publications before the upgrade");
  assert.equal(seenOn.at(-1), "websocket");
});

test("a polling client and a websocket client on one channel get the same publications", async () => {
  const channel = uniq("chat:mix");
  const p = pool.make({ auth: { token: connectToken("pol") }, transports: ["polling"] });
  const w = pool.make({ auth: { token: connectToken("web") }, transports: ["websocket"] });
  await Promise.all([connected(p), connected(w)]);
  const pp = publications(p, channel);
  const wp = publications(w, channel);
  await subscribe(p, channel);
  await subscribe(w, channel);
  await publishSeq(channel, 20, "mix");
  await Promise.all([pp.waitFor(20), wp.waitFor(20)]);
  await settle(channel, 20, pp, wp);
  assertInOrder(pp.list, 20, "mix");
  assertInOrder(wp.list, 20, "mix");
});
