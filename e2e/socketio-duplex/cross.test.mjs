// Both transports on the same channels: a plain WebSocket client speaking
// Centrifugo's JSON protocol (`ws`) and socket.io-client 4.8 publish to each
// other, see the same API publications, and see each other in presence and
// join/leave.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";

import {
  api, call, CentrifugoClient, connected, connectToken, next, publications, record, sockets,
  startServer, subscribe, uniq,
} from "./harness.mjs";

let server;
let pool;
const plain = [];

before(async () => {
  server = await startServer();
  pool = sockets(server);
});

after(async () => {
  pool?.closeAll();
  for (const c of plain) c.close();
  await server?.stop();
});

/** A plain WebSocket client connected as `user`; resolves with it and its client id. */
async function plainClient(user) {
  const c = new CentrifugoClient(server.wsUrl);
  plain.push(c);
  await c.open();
  const reply = await c.command("connect", { token: connectToken(user) });
  assert.equal(reply.error, undefined, JSON.stringify(reply));
  assert.equal(typeof reply.connect.client, "string");
  return { c, id: reply.connect.client };
}

async function sioClient(user, opts = {}) {
  const s = pool.make({ auth: { token: connectToken(user) }, ...opts });
  await connected(s);
  return s;
}

/** Pushes `pub` of `channel` a plain client receives, with `waitFor(n)`. */
function plainPublications(c, channel) {
  const list = [];
  const waiters = new Set();
  c.on("push", (push) => {
    if (push.channel !== channel || !push.pub) return;
    list.push(push.pub);
    for (const w of [...waiters]) w();
  });
  return {
    list,
    waitFor(n, ms = 10000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`plain pushes on ${channel}: ${list.length} of ${n} within ${ms} ms`));
        }, ms);
        const check = () => {
          if (list.length >= n) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve(list);
          }
        };
        waiters.add(check);
        check();
      });
    },
  };
}

test("a plain WebSocket client publishes; the Socket.IO subscriber receives it with the publisher's info", async () => {
  const channel = uniq("pub:ws2sio");
  const s = await sioClient("sia");
  const pubs = publications(s, channel);
  const ack = await subscribe(s, channel);
  const { c, id } = await plainClient("wendy");
  // `pub` allows publishing for any client: no subscription needed.
  const reply = await c.command("publish", { channel, data: { text: "from ws" } });
  assert.deepEqual(reply, { id: reply.id, publish: {} });
  const [p] = await pubs.waitFor(1);
  assert.equal(p.channel, channel);
  assert.deepEqual(p.data, { text: "from ws" });
  assert.equal(p.offset, 1);
  assert.equal(p.info.client, id);
  assert.equal(p.info.user, "wendy");
  assert.equal(typeof ack.epoch, "string");
});

test("a Socket.IO client publishes; the plain WebSocket subscriber receives it with the publisher's info", async () => {
  const channel = uniq("pub:sio2ws");
  const { c } = await plainClient("walt");
  const sub = await c.command("subscribe", { channel });
  assert.equal(sub.error, undefined, JSON.stringify(sub));
  const pushes = plainPublications(c, channel);
  const s = await sioClient("sid");
  assert.deepEqual(await call(s, "publish", { channel, data: { text: "from sio" } }), {});
  const [p] = await pushes.waitFor(1);
  assert.deepEqual(p.data, { text: "from sio" });
  assert.equal(p.offset, 1);
  assert.equal(p.info.client, s.id);
  assert.equal(p.info.user, "sid");
});

test("publishing both ways in one channel: each side gets every publication once, in offset order", async () => {
  const channel = uniq("pub:both");
  const { c } = await plainClient("wade");
  const sub = await c.command("subscribe", { channel });
  assert.equal(sub.error, undefined, JSON.stringify(sub));
  const pushes = plainPublications(c, channel);
  const s = await sioClient("sue");
  const pubs = publications(s, channel);
  await subscribe(s, channel);
  const n = 30;
  // Interleaved: odd from the plain client, even from Socket.IO, all at once.
  const sends = [];
  for (let i = 1; i <= n; i++) {
    if (i % 2) sends.push(c.ok("publish", { channel, data: { i } }));
    else sends.push(call(s, "publish", { channel, data: { i } }));
  }
  await Promise.all(sends);
  await Promise.all([pushes.waitFor(n), pubs.waitFor(n)]);
  // A sentinel from the API: nothing duplicated before it.
  await api(server, "publish", { channel, data: { sentinel: true } });
  await Promise.all([pushes.waitFor(n + 1), pubs.waitFor(n + 1)]);
  assert.equal(pushes.list.length, n + 1);
  assert.equal(pubs.list.length, n + 1);
  const expected = Array.from({ length: n + 1 }, (_, k) => k + 1);
  assert.deepEqual(pushes.list.map((p) => p.offset), expected);
  assert.deepEqual(pubs.list.map((p) => p.offset), expected);
  // Same data at the same offsets on both sides; every i exactly once.
  assert.deepEqual(pubs.list.map((p) => p.data), pushes.list.map((p) => p.data));
  const is = pubs.list.slice(0, n).map((p) => p.data.i).sort((a, b) => a - b);
  assert.deepEqual(is, expected.slice(0, n));
  // Within one publisher, its own order is kept.
  const odd = pubs.list.map((p) => p.data.i).filter((i) => i % 2 === 1);
  const even = pubs.list.map((p) => p.data.i).filter((i) => i % 2 === 0);
  assert.deepEqual(odd, [...odd].sort((a, b) => a - b));
  assert.deepEqual(even, [...even].sort((a, b) => a - b));
  // History, read through Socket.IO, has them all.
  const hist = await call(s, "history", { channel });
  assert.deepEqual(hist.publications.map((p) => p.offset), expected);
});

test("presence and join/leave across transports", async () => {
  const channel = uniq("chat:mixed");
  const s = await sioClient("sol");
  const joins = record(s, "join");
  await subscribe(s, channel);
  const { c, id } = await plainClient("will");
  const wsJoin = next(s, "join", 10000, (e) => e.channel === channel && e.info.client === id);
  const sub = await c.command("subscribe", { channel, join_leave: true });
  assert.equal(sub.error, undefined, JSON.stringify(sub));
  const j = await wsJoin;
  assert.equal(j.info.user, "will");

  const pres = await call(s, "presence", { channel });
  assert.deepEqual(Object.keys(pres.presence).sort(), [id, s.id].sort());
  assert.equal(pres.presence[id].user, "will");
  const wsPres = await c.ok("presence", { channel });
  assert.deepEqual(Object.keys(wsPres.presence).sort(), [id, s.id].sort());
  assert.equal(wsPres.presence[s.id].user, "sol");

  // The Socket.IO client leaves: the plain client gets a leave push.
  const sid = s.id;
  const wsLeave = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no leave push within 10 s")), 10000);
    const on = (push) => {
      if (push.channel === channel && push.leave && push.leave.info.client === sid) {
        clearTimeout(timer);
        c.off("push", on);
        resolve(push.leave);
      }
    };
    c.on("push", on);
  });
  s.disconnect();
  const leave = await wsLeave;
  assert.equal(leave.info.user, "sol");
  assert.deepEqual(Object.keys((await c.ok("presence", { channel })).presence), [id]);
  assert.ok(joins.some((e) => e.info.client === id));
});
