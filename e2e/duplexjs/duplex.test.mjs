// Tests of crates/server/assets/duplex.js with a scripted fake WebSocket:
// the wire shapes it sends, batching, ping/pong, reconnect with recovery,
// terminal close codes, token refresh. No server needed.
import test from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import vm from "node:vm";

const require = createRequire(import.meta.url);
const DUPLEX_PATH = new URL("../../crates/server/assets/duplex.js", import.meta.url);
const Duplex = require(DUPLEX_PATH.pathname);

/** A fake WebSocket the test plays the server for. */
class FakeSocket {
  static all = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.frames = []; // text frames the client sent
    this.closedByClient = null;
    FakeSocket.all.push(this);
    setTimeout(() => {
      if (this.readyState !== 0) return;
      this.readyState = 1;
      this.onopen && this.onopen({});
    }, 0);
  }
  send(text) {
    if (this.readyState !== 1) throw new Error("send on a socket that is not open");
    this.frames.push(text);
  }
  close(code) {
    this.closedByClient = code;
    this.readyState = 3;
    setTimeout(() => this.onclose && this.onclose({ code: 1005, reason: "" }), 0);
  }
  /** The server sends one frame holding these messages. */
  push(...messages) {
    this.onmessage({ data: messages.map((m) => JSON.stringify(m)).join("\n") });
  }
  /** The server closes the connection. */
  serverClose(code, reason = "") {
    this.readyState = 3;
    this.onclose && this.onclose({ code, reason });
  }
  /** Messages in frame `i`, parsed. */
  messages(i) { return Duplex.parseFrame(this.frames[i]); }
}

const tick = () => new Promise((r) => setTimeout(r, 0));

async function until(what, check, ms = 2000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error("timed out waiting for " + what);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Waits until `ws` has sent `n` frames; returns the messages of the last. */
async function frame(ws, n) {
  await until("frame " + n, () => ws.frames.length >= n);
  return ws.messages(n - 1);
}

/** A client on fake sockets, disconnected when test `t` ends (pass or fail). */
function client(t, options = {}) {
  FakeSocket.all = [];
  const c = new Duplex("ws://test/connection/websocket", Object.assign({
    websocket: FakeSocket, minReconnectDelay: 1, maxReconnectDelay: 2, timeout: 1000,
  }, options));
  t.after(() => c.disconnect());
  return c;
}

/** Connects `c` and answers its connect; returns the socket. */
async function connected(c, result = { client: "c1", version: "1", ping: 25, pong: true }) {
  c.connect();
  const ws = await until("a socket", () => FakeSocket.all[FakeSocket.all.length - 1]);
  const [connect] = await frame(ws, 1);
  ws.push({ id: connect.id, connect: result });
  assert.equal(c.state, "connected");
  return ws;
}

test("backoff is full jitter, doubling, capped", () => {
  assert.equal(Duplex.backoff(0, 500, 20000, () => 0), 0);
  assert.equal(Duplex.backoff(0, 500, 20000, () => 0.999999), 499);
  assert.equal(Duplex.backoff(3, 500, 20000, () => 0.999999), 3999);
  assert.equal(Duplex.backoff(10, 500, 20000, () => 0.999999), 19999);
  assert.equal(Duplex.backoff(5000, 500, 20000, () => 0.5), 10000);
  for (let attempt = 0; attempt < 12; attempt++) {
    for (let i = 0; i < 50; i++) {
      const d = Duplex.backoff(attempt, 500, 20000);
      assert.ok(d >= 0 && d <= Math.min(20000, 500 * 2 ** attempt), `attempt ${attempt}: ${d}`);
    }
  }
});

test("frames split on newlines, empty lines skipped", () => {
  assert.deepEqual(Duplex.parseFrame('{"id":1,"connect":{}}\n\n{}\n{"push":{"channel":"a"}}\n'),
    [{ id: 1, connect: {} }, {}, { push: { channel: "a" } }]);
  assert.deepEqual(Duplex.parseFrame(""), []);
});

test("close codes: 3000-3499 and network errors reconnect, 3500+ do not", () => {
  for (const code of [1000, 1006, 3000, 3001, 3008, 3012, 3499, 4000]) assert.ok(Duplex.reconnects(code), code);
  for (const code of [1009, 3500, 3501, 3502, 3504, 3507, 3999, 4500]) assert.ok(!Duplex.reconnects(code), code);
});

test("loads as a plain <script>: sets globalThis.Duplex", () => {
  const sandbox = { setTimeout, clearTimeout, queueMicrotask, console };
  sandbox.globalThis = sandbox;
  vm.createContext(sandbox);
  vm.runInContext(readFileSync(DUPLEX_PATH, "utf8"), sandbox);
  assert.equal(typeof sandbox.Duplex, "function");
  assert.equal(typeof sandbox.Duplex.backoff, "function");
});

test("connect sends token, name; subscribes go out in one frame after connect", async (t) => {
  const c = client(t, { token: "T1", name: "test" });
  const events = [];
  c.on("connecting", (e) => events.push(["connecting", e.code]));
  c.on("connected", (e) => events.push(["connected", e.client]));
  c.subscribe("chat", { recover: true, joinLeave: true });
  c.subscribe("news");
  c.connect();
  const ws = await until("socket", () => FakeSocket.all[0]);
  const [connect] = await frame(ws, 1);
  assert.equal(ws.frames.length, 1);
  assert.deepEqual(connect.connect, { name: "test", version: Duplex.VERSION, token: "T1" });
  ws.push({ id: connect.id, connect: { client: "c1", version: "1", ping: 25, pong: true } });
  const subs = await frame(ws, 2);
  assert.equal(subs.length, 2);
  assert.deepEqual(subs[0].subscribe, { channel: "chat", recoverable: true, join_leave: true });
  assert.deepEqual(subs[1].subscribe, { channel: "news" });
  assert.ok(subs[0].id > connect.id && subs[1].id > subs[0].id);
  assert.deepEqual(events, [["connecting", 0], ["connected", "c1"]]);
  c.disconnect();
});

test("replies and pushes in one frame are handled in order", async (t) => {
  const c = client(t);
  const ws = await connected(c);
  const sub = c.subscribe("chat", { recover: true });
  const [s] = await frame(ws, 2);
  const seen = [];
  sub.on("subscribed", (e) => seen.push(["subscribed", e.streamPosition.offset, e.wasRecovering]));
  sub.on("publication", (e) => seen.push(["pub", e.offset, e.data.text, e.info && e.info.user]));
  sub.on("join", (e) => seen.push(["join", e.info.user, e.info.connInfo.name]));
  ws.push(
    { id: s.id, subscribe: { recoverable: true, epoch: "E", offset: 4 } },
    { push: { channel: "chat", pub: { data: { text: "hi" }, offset: 5, info: { user: "ann", client: "x" } } } },
    { push: { channel: "chat", join: { info: { user: "bob", client: "y", conn_info: { name: "Bob" } } } } },
  );
  assert.deepEqual(seen, [["subscribed", 4, false], ["pub", 5, "hi", "ann"], ["join", "bob", "Bob"]]);
  assert.equal(sub.offset, 5);
  assert.equal(sub.epoch, "E");
  c.disconnect();
});

test("commands issued in one tick share a frame; results resolve", async (t) => {
  const c = client(t);
  const ws = await connected(c);
  const p1 = c.publish("a", { n: 1 });
  const p2 = c.publish("b", { n: 2 });
  const p3 = c.history("a", { limit: 2 });
  const batch = await frame(ws, 2);
  assert.deepEqual(batch.map((m) => Object.keys(m).filter((k) => k !== "id")[0]), ["publish", "publish", "history"]);
  assert.deepEqual(batch[0].publish, { channel: "a", data: { n: 1 } });
  assert.deepEqual(batch[2].history, { channel: "a", limit: 2 });
  ws.push(
    { id: batch[0].id, publish: {} },
    { id: batch[1].id, error: { code: 103, message: "permission denied" } },
    { id: batch[2].id, history: { publications: [{ data: 1, offset: 7 }], epoch: "E", offset: 7 } },
  );
  assert.deepEqual(await p1, {});
  await assert.rejects(p2, { code: 103, message: "permission denied" });
  const h = await p3;
  assert.equal(h.epoch, "E");
  assert.equal(h.publications[0].offset, 7);
  c.disconnect();
});

test("answers ping with pong only when told pong: true", async (t) => {
  let c = client(t);
  let ws = await connected(c, { client: "c1", ping: 25, pong: true });
  ws.push({});
  assert.deepEqual(await frame(ws, 2), [{}]);
  c.disconnect();

  c = client(t);
  ws = await connected(c, { client: "c2", ping: 25 });
  ws.push({});
  await tick();
  await tick();
  assert.equal(ws.frames.length, 1);
  c.disconnect();
});

test("no ping from the server within ping + maxServerPingDelay: reconnect", async (t) => {
  const c = client(t, { maxServerPingDelay: 20 });
  const ws = await connected(c, { client: "c1", ping: 0.01, pong: true });
  const reasons = [];
  c.on("connecting", (e) => reasons.push(e.reason));
  await until("a second socket", () => FakeSocket.all.length === 2, 2000);
  assert.deepEqual(reasons, ["no ping"]);
  assert.equal(ws.closedByClient, 1000);
  c.disconnect();
});

test("reconnect after 3001 resubscribes with recover from the last position; no duplicates", async (t) => {
  const c = client(t);
  const ws = await connected(c);
  const sub = c.subscribe("chat", { recover: true });
  const [s] = await frame(ws, 2);
  ws.push({ id: s.id, subscribe: { recoverable: true, epoch: "E1", offset: 10 } });
  ws.push({ push: { channel: "chat", pub: { data: "a", offset: 11 } } });
  const states = [];
  c.on("connecting", (e) => states.push(["connecting", e.code]));
  sub.on("subscribing", (e) => states.push(["subscribing", e.code]));
  ws.serverClose(3001, "shutdown");
  assert.equal(c.state, "connecting");
  assert.equal(sub.state, "subscribing");
  assert.deepEqual(states, [["subscribing", 3001], ["connecting", 3001]]);

  const ws2 = await until("a second socket", () => FakeSocket.all[1]);
  const [connect] = await frame(ws2, 1);
  ws2.push({ id: connect.id, connect: { client: "c2" } });
  const [s2] = await frame(ws2, 2);
  assert.deepEqual(s2.subscribe, { channel: "chat", recoverable: true, recover: true, offset: 11, epoch: "E1" });

  const got = [];
  let ctx = null;
  sub.on("subscribed", (e) => { ctx = e; });
  sub.on("publication", (e) => got.push(e.offset));
  ws2.push({
    id: s2.id,
    subscribe: {
      recoverable: true, epoch: "E1", offset: 13, recovered: true, was_recovering: true,
      publications: [{ data: "a", offset: 11 }, { data: "b", offset: 12 }, { data: "c", offset: 13 }],
    },
  });
  ws2.push({ push: { channel: "chat", pub: { data: "c", offset: 13 } } });
  ws2.push({ push: { channel: "chat", pub: { data: "d", offset: 14 } } });
  assert.equal(ctx.recovered, true);
  assert.equal(ctx.wasRecovering, true);
  assert.deepEqual(got, [12, 13, 14]);
  assert.equal(sub.duplicatesDropped, 2);
  c.disconnect();
});

test("a new epoch after reconnect: offsets start over and nothing is dropped", async (t) => {
  const c = client(t);
  const ws = await connected(c);
  const sub = c.subscribe("chat", { recover: true });
  const [s] = await frame(ws, 2);
  ws.push({ id: s.id, subscribe: { recoverable: true, epoch: "OLD", offset: 50 } });
  ws.serverClose(1006);
  const ws2 = await until("a second socket", () => FakeSocket.all[1]);
  const [connect] = await frame(ws2, 1);
  ws2.push({ id: connect.id, connect: { client: "c2" } });
  const [s2] = await frame(ws2, 2);
  const got = [];
  let ctx = null;
  sub.on("subscribed", (e) => { ctx = e; });
  sub.on("publication", (e) => got.push(e.offset));
  ws2.push({ id: s2.id, subscribe: { recoverable: true, epoch: "NEW", offset: 1, was_recovering: true } });
  ws2.push({ push: { channel: "chat", pub: { data: "x", offset: 2 } } });
  assert.equal(ctx.recovered, false);
  assert.equal(ctx.wasRecovering, true);
  assert.deepEqual(got, [2]);
  assert.equal(sub.epoch, "NEW");
  c.disconnect();
});

test("terminal close codes stop for good", async (t) => {
  const c = client(t);
  const ws = await connected(c);
  const sub = c.subscribe("chat");
  let gone = null;
  c.on("disconnected", (e) => { gone = e; });
  ws.serverClose(3500, "invalid token");
  assert.equal(c.state, "disconnected");
  assert.deepEqual(gone, { code: 3500, reason: "invalid token" });
  assert.equal(sub.state, "subscribing"); // would subscribe again on connect()
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(FakeSocket.all.length, 1);
  await assert.rejects(c.publish("chat", 1), { code: 5 });
});

test("a disconnect push decides about reconnecting", async (t) => {
  const c = client(t);
  const ws = await connected(c);
  ws.push({ push: { disconnect: { code: 3507, reason: "permission denied" } } });
  assert.equal(c.state, "disconnected");
  assert.equal(ws.closedByClient, 1000);
});

test("network errors reconnect with backoff until the server is back", async (t) => {
  const c = client(t, { minReconnectDelay: 1, maxReconnectDelay: 4 });
  c.connect();
  for (let i = 0; i < 3; i++) {
    const ws = await until("socket " + i, () => FakeSocket.all[i]);
    await until("open", () => ws.readyState === 1);
    ws.serverClose(1006);
    assert.equal(c.state, "connecting");
  }
  const ws = await until("socket 3", () => FakeSocket.all[3]);
  const [connect] = await frame(ws, 1);
  ws.push({ id: connect.id, connect: { client: "c" } });
  assert.equal(c.state, "connected");
  c.disconnect();
});

test("calls made while connecting wait for the connection", async (t) => {
  const c = client(t);
  c.connect();
  const p = c.publish("chat", { text: "early" });
  const ws = await until("socket", () => FakeSocket.all[0]);
  const [connect] = await frame(ws, 1);
  assert.equal(ws.messages(0).length, 1);
  ws.push({ id: connect.id, connect: { client: "c" } });
  const [pub] = await frame(ws, 2);
  assert.deepEqual(pub.publish, { channel: "chat", data: { text: "early" } });
  ws.push({ id: pub.id, publish: {} });
  assert.deepEqual(await p, {});
  c.disconnect();
});

test("error 109 on connect gets a new token and reconnects", async (t) => {
  const tokens = ["old", "new"];
  let asked = 0;
  const c = client(t, { getToken: async () => tokens[asked++] });
  c.connect();
  const ws = await until("socket", () => FakeSocket.all[0]);
  const [connect] = await frame(ws, 1);
  assert.equal(connect.connect.token, "old");
  const errors = [];
  c.on("error", (e) => errors.push(e.error.code));
  ws.push({ id: connect.id, error: { code: 109, message: "token expired" } });
  const ws2 = await until("socket 2", () => FakeSocket.all[1]);
  const [connect2] = await frame(ws2, 1);
  assert.equal(connect2.connect.token, "new");
  assert.deepEqual(errors, [109]);
  assert.equal(asked, 2);
  c.disconnect();
});

test("an expiring connection is refreshed with getToken before it expires", async (t) => {
  let n = 0;
  const c = client(t, { getToken: async () => "tok" + ++n });
  const ws = await connected(c, { client: "c1", expires: true, ttl: 0.01 });
  const [refresh] = await frame(ws, 2);
  assert.deepEqual(refresh.refresh, { token: "tok2" });
  ws.push({ id: refresh.id, refresh: { expires: true, ttl: 3600 } });
  assert.equal(c.state, "connected");
  c.disconnect();
});

test("getToken giving no token stops with unauthorized", async (t) => {
  const c = client(t, { getToken: async () => "" });
  let gone = null;
  c.on("disconnected", (e) => { gone = e; });
  c.connect();
  await until("disconnected", () => gone);
  assert.deepEqual(gone, { code: 4, reason: "unauthorized" });
  assert.equal(FakeSocket.all.length, 0);
});

test("unsubscribe pushes: >= 2500 resubscribes, below stays unsubscribed", async (t) => {
  const c = client(t);
  const ws = await connected(c);
  const a = c.subscribe("a", { recover: true });
  const b = c.subscribe("b");
  const [sa, sb] = await frame(ws, 2);
  ws.push({ id: sa.id, subscribe: { recoverable: true, epoch: "E", offset: 3 } }, { id: sb.id, subscribe: {} });
  let unsub = null;
  b.on("unsubscribed", (e) => { unsub = e; });
  ws.push(
    { push: { channel: "a", unsubscribe: { code: 2500, reason: "insufficient state" } } },
    { push: { channel: "b", unsubscribe: { code: 2000, reason: "server unsubscribe" } } },
  );
  assert.equal(a.state, "subscribing");
  assert.equal(b.state, "unsubscribed");
  assert.deepEqual(unsub, { channel: "b", code: 2000, reason: "server unsubscribe" });
  const [again] = await frame(ws, 3);
  assert.deepEqual(again.subscribe, { channel: "a", recoverable: true, recover: true, offset: 3, epoch: "E" });
  c.disconnect();
});

test("subscribe errors: temporary ones retry, permanent ones unsubscribe", async (t) => {
  const c = client(t);
  const ws = await connected(c);
  const sub = c.subscribe("x");
  const [s] = await frame(ws, 2);
  ws.push({ id: s.id, error: { code: 100, message: "internal", temporary: true } });
  assert.equal(sub.state, "subscribing");
  const [s2] = await frame(ws, 3);
  assert.deepEqual(s2.subscribe, { channel: "x" });
  let unsub = null;
  sub.on("unsubscribed", (e) => { unsub = e; });
  ws.push({ id: s2.id, error: { code: 103, message: "permission denied" } });
  assert.equal(sub.state, "unsubscribed");
  assert.deepEqual(unsub, { channel: "x", code: 103, reason: "permission denied" });
  c.disconnect();
});

test("unrecoverable position (112): resubscribe without recover, report it lost", async (t) => {
  const c = client(t);
  const ws = await connected(c);
  const sub = c.subscribe("chat", { recover: true });
  const [s] = await frame(ws, 2);
  ws.push({ id: s.id, subscribe: { recoverable: true, epoch: "E", offset: 9 } });
  ws.serverClose(3000);
  const ws2 = await until("socket 2", () => FakeSocket.all[1]);
  const [connect] = await frame(ws2, 1);
  ws2.push({ id: connect.id, connect: { client: "c2" } });
  const [s2] = await frame(ws2, 2);
  assert.equal(s2.subscribe.recover, true);
  ws2.push({ id: s2.id, error: { code: 112, message: "unrecoverable position" } });
  const [s3] = await frame(ws2, 3);
  assert.equal(s3.subscribe.recover, undefined);
  let ctx = null;
  sub.on("subscribed", (e) => { ctx = e; });
  ws2.push({ id: s3.id, subscribe: { recoverable: true, epoch: "E2", offset: 0 } });
  assert.equal(ctx.wasRecovering, true);
  assert.equal(ctx.recovered, false);
  c.disconnect();
});

test("presence maps client infos; unsubscribe sends unsubscribe", async (t) => {
  const c = client(t);
  const ws = await connected(c);
  const sub = c.subscribe("chat");
  const [s] = await frame(ws, 2);
  ws.push({ id: s.id, subscribe: {} });
  const p = sub.presence();
  const [pr] = await frame(ws, 3);
  assert.deepEqual(pr.presence, { channel: "chat" });
  ws.push({ id: pr.id, presence: { presence: { c1: { user: "ann", client: "c1", conn_info: { name: "Ann" } } } } });
  assert.deepEqual(await p, { clients: { c1: { user: "ann", client: "c1", connInfo: { name: "Ann" }, chanInfo: undefined } } });
  sub.unsubscribe();
  const [u] = await frame(ws, 4);
  assert.deepEqual(u.unsubscribe, { channel: "chat" });
  assert.equal(sub.state, "unsubscribed");
  c.disconnect();
});

test("disconnect() closes, rejects waiting calls and does not reconnect", async (t) => {
  const c = client(t);
  const ws = await connected(c);
  const p = c.publish("chat", 1);
  await frame(ws, 2);
  let gone = null;
  c.on("disconnected", (e) => { gone = e; });
  c.disconnect();
  await assert.rejects(p, { code: 5 });
  assert.deepEqual(gone, { code: 0, reason: "disconnect called" });
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(FakeSocket.all.length, 1);
});

test("after unsubscribe(), a late unsubscribe push does not resubscribe", async (t) => {
  const c = client(t);
  const ws = await connected(c);
  const sub = c.subscribe("chat", { recover: true });
  const [s] = await frame(ws, 2);
  ws.push({ id: s.id, subscribe: { recoverable: true, epoch: "E", offset: 1 } });
  sub.unsubscribe();
  await frame(ws, 3);
  ws.push({ push: { channel: "chat", unsubscribe: { code: 2500, reason: "insufficient state" } } });
  ws.push({ push: { channel: "chat", pub: { data: "late", offset: 2 } } });
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(sub.state, "unsubscribed");
  assert.equal(ws.frames.length, 3);
});
