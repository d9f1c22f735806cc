// centrifuge-js 5.x against duplex's /connection/websocket: connecting,
// tokens (bad, expired, refreshed), pings, server-side subscriptions.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";

import {
  api, clients, connected, connectToken, newSub, next, record, sign, sleep, startServer,
  subscribed, trackedWebSocket, uniq, until,
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

test("connects with a token and gets a client id", async () => {
  const a = pool.make({ token: connectToken("alice") });
  const b = pool.make({ token: connectToken("alice") });
  const ca = await connected(a);
  const cb = await connected(b);
  assert.equal(typeof ca.client, "string");
  assert.ok(ca.client.length > 0);
  assert.equal(ca.transport, "websocket");
  assert.notEqual(ca.client, cb.client);
  assert.equal(a.state, "connected");
});

async function expectTerminal(c, codes) {
  const connecting = record(c, "connecting");
  const ctx = await next(c, "disconnected", 5000);
  assert.ok(codes.includes(ctx.code), `disconnected with ${ctx.code} (${ctx.reason}), want one of ${codes}`);
  const attempts = connecting.length;
  await sleep(1000);
  assert.equal(c.state, "disconnected");
  assert.equal(connecting.length, attempts, "the SDK must not reconnect after a terminal close");
  return ctx;
}

test("a token signed with another secret closes with 3500 (terminal)", async () => {
  const c = pool.make({ token: connectToken("alice", { secret: "not-the-secret" }) });
  c.connect();
  await expectTerminal(c, [3500]);
});

test("an alg=none token closes with 3500", async () => {
  const claims = Buffer.from(JSON.stringify({ sub: "alice", exp: Math.floor(Date.now() / 1000) + 600 })).toString("base64url");
  const header = Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url");
  const c = pool.make({ token: `${header}.${claims}.` });
  c.connect();
  await expectTerminal(c, [3500]);
});

test("a token with HS512 instead of HS256 closes with 3500", async () => {
  // Signed with the right secret but a different algorithm name in the
  // header: must be refused, not verified with HS256.
  const token = sign({ sub: "alice" }, { header: { alg: "HS512", typ: "JWT" } });
  const c = pool.make({ token });
  c.connect();
  await expectTerminal(c, [3500]);
});

test("no token at all is refused (error 101 or close 3500) without --dev", async () => {
  const c = pool.make({});
  c.connect();
  await expectTerminal(c, [101, 3500]);
});

test("an expired token gets error 109 and the SDK fetches a fresh one with getToken", async () => {
  let calls = 0;
  const c = pool.make({
    token: connectToken("alice", { ttl: -60 }),
    getToken: async () => {
      calls += 1;
      return connectToken("alice");
    },
  });
  const errors = record(c, "error");
  const ctx = await connected(c);
  assert.ok(ctx.client);
  assert.equal(calls, 1);
  const connectErrors = errors.filter((e) => e.type === "connect");
  assert.equal(connectErrors.length, 1, JSON.stringify(errors));
  assert.equal(connectErrors[0].error.code, 109);
});

test("getToken is called when no token is set", async () => {
  let calls = 0;
  const c = pool.make({
    getToken: async () => {
      calls += 1;
      return connectToken("bob");
    },
  });
  await connected(c);
  assert.equal(calls, 1);
});

test("an expiring token is refreshed on the same connection", async () => {
  const { WebSocket, sockets } = trackedWebSocket();
  let calls = 0;
  const c = pool.make({
    websocket: WebSocket,
    token: connectToken("carol", { ttl: 2 }),
    getToken: async () => {
      calls += 1;
      return connectToken("carol", { ttl: 3600 });
    },
  });
  const ctx = await connected(c);
  const connecting = record(c, "connecting");
  const disconnected = record(c, "disconnected");
  await until(() => calls >= 1, 8000, "getToken to be called for the refresh");
  // Well past the first token's expiry: the refreshed connection stays.
  await sleep(4000);
  assert.equal(calls, 1, "one refresh for a token valid an hour");
  assert.equal(c.state, "connected");
  assert.deepEqual(connecting, [], "no reconnect");
  assert.deepEqual(disconnected, []);
  assert.equal(sockets.length, 1, "the same WebSocket");
  // And it still works.
  const channel = uniq("chat:refresh");
  const sub = newSub(c, channel);
  await subscribed(sub);
  const got = next(sub, "publication");
  await api(server, "publish", { channel, data: { after: "refresh" } });
  assert.deepEqual((await got).data, { after: "refresh" });
  assert.ok(ctx.client);
});

test("pings every 2 s are answered: the connection stays up for several intervals", async () => {
  const { WebSocket, sockets } = trackedWebSocket();
  // maxServerPingDelay 1 s: the SDK itself drops a connection that goes
  // 2 + 1 s without a frame, so the server's pings must keep coming.
  const c = pool.make({ websocket: WebSocket, token: connectToken("dave"), maxServerPingDelay: 1000 });
  await connected(c);
  const connecting = record(c, "connecting");
  const frames = [];
  sockets[0].on("message", (data) => frames.push(String(data)));
  await sleep(7000);
  assert.deepEqual(connecting, [], "no reconnect (no missing ping, no 3012 for a missing pong)");
  assert.equal(c.state, "connected");
  assert.equal(sockets.length, 1);
  const pings = frames.filter((f) => f.trim() === "{}").length;
  assert.ok(pings >= 2, `saw ${pings} pings in 7 s: ${JSON.stringify(frames)}`);
});

test("the token's channels claim makes server-side subscriptions", async () => {
  const channel = uniq("chat:srv");
  const c = pool.make({ token: connectToken("erin", { channels: [channel] }) });
  const subs = record(c, "subscribed");
  const pubs = record(c, "publication");
  await connected(c);
  await until(() => subs.some((s) => s.channel === channel), 3000, "server-side subscribed event");
  await api(server, "publish", { channel, data: { n: 1 } });
  await until(() => pubs.length === 1, 3000, "publication on the server-side subscription");
  assert.equal(pubs[0].channel, channel);
  assert.deepEqual(pubs[0].data, { n: 1 });
});

test("server API subscribe/unsubscribe reach the user's connection", async () => {
  const channel = uniq("chat:apisub");
  const c = pool.make({ token: connectToken("frank") });
  await connected(c);
  const sub = next(c, "subscribed", 3000, (ctx) => ctx.channel === channel);
  await api(server, "subscribe", { user: "frank", channel });
  await sub;
  const pub = next(c, "publication", 3000, (ctx) => ctx.channel === channel);
  await api(server, "publish", { channel, data: "hello frank" });
  assert.equal((await pub).data, "hello frank");
  const unsub = next(c, "unsubscribed", 3000, (ctx) => ctx.channel === channel);
  await api(server, "unsubscribe", { user: "frank", channel });
  await unsub;
});

test("server API disconnect closes the user's connection with the given code", async () => {
  const c = pool.make({ token: connectToken("gina") });
  await connected(c);
  const gone = next(c, "disconnected", 3000);
  await api(server, "disconnect", { user: "gina", code: 4503, reason: "kicked" });
  const ctx = await gone;
  assert.equal(ctx.code, 4503);
  assert.equal(ctx.reason, "kicked");
});

test("the server survived every test", () => {
  assert.ok(server.alive());
});
