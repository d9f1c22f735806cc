// socket.io-client 4.8 and duplex's channel events: subscribe (ack with the
// stream position), publications from the server API exactly once and in
// offset order, errors in the ack, unsubscribe, presence, join/leave,
// history, and recovery after a reconnect.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";

import {
  api, call, connected, connectToken, next, publications, record, sockets, startServer, subscribe,
  subToken, uniq,
} from "./harness.mjs";

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

async function client(user, opts = {}) {
  const s = pool.make({ auth: { token: connectToken(user, opts.token) }, ...opts.io });
  await connected(s);
  return s;
}

/** Publishes a sentinel on `channel` and waits until every `pubs` has it: no duplicate of earlier ones came before. */
async function settle(channel, expected, ...all) {
  await api(server, "publish", { channel, data: { sentinel: true } });
  for (const pubs of all) {
    await pubs.waitFor(expected + 1);
    assert.deepEqual(pubs.list[expected].data, { sentinel: true }, "nothing extra before the sentinel");
    assert.equal(pubs.list.length, expected + 1);
    pubs.list.pop();
  }
}

test("subscribe acks the stream position; 100 quick API publications arrive exactly once, in offset order", async () => {
  const s = await client("alice");
  const channel = uniq("chat:hundred");
  // Give the channel a history first, so the ack's offset is not zero.
  const first = await api(server, "publish", { channel, data: { before: true } });
  assert.equal(first.offset, 1);
  const pubs = publications(s, channel);
  const ack = await subscribe(s, channel);
  assert.equal(ack.recoverable, true);
  assert.equal(typeof ack.epoch, "string");
  assert.ok(ack.epoch.length > 0);
  assert.equal(ack.epoch, first.epoch);
  assert.equal(ack.offset, 1);
  assert.equal(ack.error, undefined);

  const n = 100;
  const results = await Promise.all(
    Array.from({ length: n }, (_, k) => api(server, "publish", { channel, data: { k } })),
  );
  const offsets = results.map((r) => r.offset);
  assert.deepEqual([...offsets].sort((a, b) => a - b), Array.from({ length: n }, (_, k) => k + 2));
  await pubs.waitFor(n);
  await settle(channel, n, pubs);
  // Offsets 2..101 in order; each publication carries the data the API call
  // that got that offset sent.
  const byOffset = new Map(results.map((r, k) => [r.offset, k]));
  pubs.list.forEach((p, i) => {
    assert.equal(p.channel, channel);
    assert.equal(p.offset, i + 2, `publication ${i}`);
    assert.deepEqual(p.data, { k: byOffset.get(p.offset) });
    assert.equal(p.info, undefined, "API publications carry no info");
  });
});

test("a subscribe to a fresh channel acks its epoch and no offset (zero is left out)", async () => {
  const s = await client("alice");
  const ack = await subscribe(s, uniq("chat:fresh"));
  assert.equal(ack.recoverable, true);
  assert.equal(typeof ack.epoch, "string");
  assert.equal(ack.offset, undefined);
});

test("errors come back in the ack as {error: {code, message}}", async () => {
  const s = await client("bob");
  const errorOf = async (event, arg) => {
    const ack = await call(s, event, arg);
    assert.ok(ack && ack.error, `${event} ${JSON.stringify(arg)}: expected an error, got ${JSON.stringify(ack)}`);
    assert.equal(typeof ack.error.code, "number");
    assert.equal(typeof ack.error.message, "string");
    assert.ok(ack.error.message.length > 0);
    return ack.error.code;
  };
  // 102: the namespace is not configured.
  assert.equal(await errorOf("subscribe", { channel: "nosuchns:room" }), 102);
  assert.equal(await errorOf("publish", { channel: "nosuchns:room", data: {} }), 102);
  // 103: `locked` needs a subscription token; nobody may publish there.
  const locked = uniq("locked:room");
  assert.equal(await errorOf("subscribe", { channel: locked }), 103);
  assert.equal(await errorOf("publish", { channel: locked, data: { x: 1 } }), 103);
  // 103: a user-limited channel of someone else.
  assert.equal(await errorOf("subscribe", { channel: uniq("chat:notes#zed") }), 103);
  // 103: publish in `chat` without being subscribed (allowed for subscribers only).
  const chat = uniq("chat:pub");
  assert.equal(await errorOf("publish", { channel: chat, data: { x: 1 } }), 103);
  // 105: already subscribed.
  await subscribe(s, chat);
  assert.equal(await errorOf("subscribe", { channel: chat }), 105);
  // 107: an argument that does not fit; a malformed channel name.
  assert.equal(await errorOf("subscribe", { nochannel: true }), 107);
  assert.equal(await errorOf("subscribe", "just a string"), 107);
  assert.equal(await errorOf("subscribe", { channel: "bad name with spaces" }), 107);
  // 108: presence is off in `nohist`.
  const nohist = uniq("nohist:x");
  await subscribe(s, nohist);
  assert.equal(await errorOf("presence", { channel: nohist }), 108);
  // The socket is still usable after all of this.
  assert.equal(s.connected, true);
  assert.deepEqual(await call(s, "publish", { channel: chat, data: { ok: true } }), {});
});

test("a subscription token opens a `locked` channel; its info becomes chan_info", async () => {
  const s = await client("carl");
  const channel = uniq("locked:room");
  const ack = await subscribe(s, channel, { token: subToken("carl", channel, { info: { role: "guest" } }) });
  assert.equal(ack.error, undefined);
  assert.equal(ack.epoch, undefined, "`locked` allows neither recovery nor positioning");
  const { presence } = await api(server, "presence", { channel });
  assert.deepEqual(presence[s.id].chan_info, { role: "guest" });
  assert.equal(presence[s.id].user, "carl");
  const pubs = publications(s, channel);
  await api(server, "publish", { channel, data: { hi: 1 } });
  const [p] = await pubs.waitFor(1);
  assert.deepEqual(p.data, { hi: 1 });
  assert.equal(p.offset, 1);
  // Another user's subscription token: refused (3500 in the ack), then the
  // socket is disconnected by the server.
  const other = uniq("locked:room");
  const gone = next(s, "disconnect");
  const bad = await call(s, "subscribe", { channel: other, token: subToken("someone-else", other) });
  assert.equal(bad.error.code, 3500);
  assert.equal(await gone, "io server disconnect");
});

test("publications of a channel without history have no offset", async () => {
  const s = await client("nora");
  const channel = uniq("nohist:feed");
  const pubs = publications(s, channel);
  const ack = await subscribe(s, channel);
  assert.equal(ack.epoch, undefined);
  await api(server, "publish", { channel, data: { a: 1 } });
  const [p] = await pubs.waitFor(1);
  assert.equal(p.offset, undefined);
  assert.deepEqual(p.data, { a: 1 });
});

test("unsubscribe stops publications (acked with {}); other subscribers keep getting them", async () => {
  const a = await client("ann");
  const b = await client("ben");
  const channel = uniq("chat:unsub");
  const pa = publications(a, channel);
  const pb = publications(b, channel);
  await subscribe(a, channel);
  await subscribe(b, channel);
  await api(server, "publish", { channel, data: { n: 1 } });
  await Promise.all([pa.waitFor(1), pb.waitFor(1)]);
  assert.deepEqual(await call(a, "unsubscribe", { channel }), {});
  await api(server, "publish", { channel, data: { n: 2 } });
  await api(server, "publish", { channel, data: { n: 3 } });
  await pb.waitFor(3);
  // The API reply came after the hub delivered; a's publications would be
  // queued ahead of this round trip's ack.
  await call(a, "presence_stats", { channel });
  assert.deepEqual(pa.list.map((p) => p.data.n), [1]);
  assert.deepEqual(pb.list.map((p) => p.data.n), [1, 2, 3]);
  // Unsubscribing again is fine; subscribing again works, with the position.
  assert.deepEqual(await call(a, "unsubscribe", { channel }), {});
  const again = await subscribe(a, channel);
  assert.equal(again.offset, 3);
  await api(server, "publish", { channel, data: { n: 4 } });
  await pa.waitFor(2);
  assert.deepEqual(pa.list.map((p) => p.data.n), [1, 4]);
});

test("presence, presence_stats and join/leave between two Socket.IO clients", async () => {
  const channel = uniq("chat:presence");
  const a = await client("amy", { token: { info: { name: "Amy" } } });
  const b = await client("bill", { token: { info: { name: "Bill" } } });
  const joinsA = record(a, "join");
  const leavesA = record(a, "leave");
  const aJoined = next(a, "join", 10000, (e) => e.channel === channel && e.info.client === a.id);
  await subscribe(a, channel);
  // A client receives its own join too.
  const own = await aJoined;
  assert.equal(own.info.user, "amy");
  assert.deepEqual(own.info.conn_info, { name: "Amy" });

  const bJoin = next(a, "join", 10000, (e) => e.channel === channel && e.info.client === b.id);
  await subscribe(b, channel);
  const j = await bJoin;
  assert.deepEqual(j, { channel, info: { user: "bill", client: b.id, conn_info: { name: "Bill" } } });

  const pres = await call(a, "presence", { channel });
  assert.deepEqual(Object.keys(pres.presence).sort(), [a.id, b.id].sort());
  assert.equal(pres.presence[a.id].user, "amy");
  assert.equal(pres.presence[b.id].user, "bill");
  assert.deepEqual(pres.presence[b.id].conn_info, { name: "Bill" });
  assert.deepEqual(await call(b, "presence_stats", { channel }), { num_clients: 2, num_users: 2 });

  // b unsubscribes: a sees b leave.
  const bLeave = next(a, "leave", 10000, (e) => e.channel === channel && e.info.client === b.id);
  await call(b, "unsubscribe", { channel });
  const l = await bLeave;
  assert.equal(l.info.user, "bill");
  assert.deepEqual(Object.keys((await call(a, "presence", { channel })).presence), [a.id]);

  // b comes back and then disconnects: a sees the join and then the leave.
  const bBack = next(a, "join", 10000, (e) => e.channel === channel && e.info.client === b.id);
  await subscribe(b, channel);
  await bBack;
  const bId = b.id; // socket.io-client forgets its id on disconnect
  const bGone = next(a, "leave", 10000, (e) => e.channel === channel && e.info.client === bId);
  b.disconnect();
  await bGone;
  assert.deepEqual(await call(a, "presence_stats", { channel }), { num_clients: 1, num_users: 1 });
  const forChannel = (list) => list.filter((e) => e.channel === channel).map((e) => e.info.client);
  assert.deepEqual(forChannel(joinsA), [a.id, bId, bId]);
  assert.deepEqual(forChannel(leavesA), [bId, bId]);
});

test("join_leave: false: no join/leave events for that subscriber", async () => {
  const channel = uniq("chat:quiet");
  const a = await client("quinn");
  const b = await client("rita");
  const joinsA = record(a, "join");
  await subscribe(a, channel, { join_leave: false });
  const bOwn = next(b, "join", 10000, (e) => e.channel === channel && e.info.client === b.id);
  await subscribe(b, channel);
  await bOwn;
  // b's own join went out after a's subscription existed: a round trip of a
  // after it shows a would have had it by now.
  const pubs = publications(a, channel);
  await api(server, "publish", { channel, data: { x: 1 } });
  await pubs.waitFor(1);
  assert.deepEqual(joinsA.filter((e) => e.channel === channel), []);
});

test("history: everything kept without limit, limit, reverse, since", async () => {
  const s = await client("hal");
  const channel = uniq("chat:history");
  const sub = await subscribe(s, channel);
  const results = [];
  for (let i = 1; i <= 5; i++) results.push(await api(server, "publish", { channel, data: { i } }));
  const epoch = results[0].epoch;
  assert.equal(epoch, sub.epoch);

  const all = await call(s, "history", { channel });
  assert.equal(all.epoch, epoch);
  assert.equal(all.offset, 5);
  assert.deepEqual(all.publications.map((p) => [p.offset, p.data.i]), [[1, 1], [2, 2], [3, 3], [4, 4], [5, 5]]);

  const two = await call(s, "history", { channel, limit: 2 });
  assert.deepEqual(two.publications.map((p) => p.offset), [1, 2]);
  const rev = await call(s, "history", { channel, limit: 2, reverse: true });
  assert.deepEqual(rev.publications.map((p) => p.offset), [5, 4]);
  const since = await call(s, "history", { channel, since: { offset: 3, epoch } });
  assert.deepEqual(since.publications.map((p) => p.offset), [4, 5]);
  const wrongEpoch = await call(s, "history", { channel, since: { offset: 3, epoch: "not-the-epoch" } });
  assert.equal(wrongEpoch.error?.code, 112, JSON.stringify(wrongEpoch));
  // Client publications are kept with the publisher's info.
  assert.deepEqual(await call(s, "publish", { channel, data: { i: 6 } }), {});
  const last = await call(s, "history", { channel, limit: 1, reverse: true });
  assert.equal(last.publications[0].offset, 6);
  assert.equal(last.publications[0].info.client, s.id);
  assert.equal(last.publications[0].info.user, "hal");
  // History needs a subscription in `chat` (allow_history_for_subscriber).
  const t = await client("ted");
  assert.equal((await call(t, "history", { channel })).error?.code, 103);
});

test("recovery: after a reconnect, subscribe {recover, epoch, offset} gets exactly the missed publications", async () => {
  const channel = uniq("chat:recover");
  const s = await client("rex", { io: { reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 300, transports: ["websocket"] } });
  const pubs = publications(s, channel);
  const ack = await subscribe(s, channel);
  await api(server, "publish", { channel, data: { n: 1 } });
  await api(server, "publish", { channel, data: { n: 2 } });
  await pubs.waitFor(2);
  const epoch = ack.epoch;
  const seen = pubs.list.at(-1).offset;
  assert.equal(seen, 2);

  // The server drops the connection (a reconnecting code); the client comes
  // back by itself with a new session and no subscriptions.
  const gone = next(s, "disconnect");
  const back = next(s, "connect", 15000);
  await api(server, "disconnect", { user: "rex", code: 3000, reason: "bye for now" });
  assert.equal(await gone, "transport close");
  for (let n = 3; n <= 5; n++) await api(server, "publish", { channel, data: { n } });
  await back;

  const rec = await subscribe(s, channel, { recover: true, epoch, offset: seen });
  assert.equal(rec.was_recovering, true);
  assert.equal(rec.recovered, true);
  assert.equal(rec.epoch, epoch);
  assert.equal(rec.offset, 5);
  assert.deepEqual(rec.publications.map((p) => [p.offset, p.data.n]), [[3, 3], [4, 4], [5, 5]]);
  // Live publications continue right after, without duplicates.
  await api(server, "publish", { channel, data: { n: 6 } });
  await pubs.waitFor(3);
  await settle(channel, 3, pubs);
  assert.deepEqual(pubs.list.map((p) => p.offset), [1, 2, 6]);
});

test("recovery with a wrong epoch: was_recovering, not recovered, no publications, the current position", async () => {
  const channel = uniq("chat:norecover");
  const s = await client("sam");
  await api(server, "publish", { channel, data: { n: 1 } });
  await api(server, "publish", { channel, data: { n: 2 } });
  const rec = await subscribe(s, channel, { recover: true, epoch: "some-other-epoch", offset: 1 });
  assert.equal(rec.was_recovering, true);
  assert.ok(!rec.recovered, JSON.stringify(rec));
  assert.ok(!rec.publications || rec.publications.length === 0, JSON.stringify(rec));
  assert.equal(rec.offset, 2);
});

test("server API subscribe/unsubscribe: `subscribe` and `unsubscribe` (2000) events", async () => {
  const s = await client("uli");
  const channel = uniq("chat:serverside");
  const subEv = next(s, "subscribe", 10000, (e) => e.channel === channel);
  await api(server, "subscribe", { user: "uli", channel });
  const ev = await subEv;
  assert.equal(typeof ev.epoch, "string");
  const pubs = publications(s, channel);
  await api(server, "publish", { channel, data: { x: 1 } });
  await pubs.waitFor(1);
  const unsubEv = next(s, "unsubscribe", 10000, (e) => e.channel === channel);
  await api(server, "unsubscribe", { user: "uli", channel });
  const u = await unsubEv;
  assert.equal(u.code, 2000);
  assert.equal(typeof u.reason, "string");
  await api(server, "publish", { channel, data: { x: 2 } });
  // Subscribed again by the client: the next publication it gets is x=3.
  await subscribe(s, channel);
  await api(server, "publish", { channel, data: { x: 3 } });
  await pubs.waitFor(2);
  assert.deepEqual(pubs.list.map((p) => p.data.x), [1, 3]);
});

test("events without an acknowledgement are handled too (subscribe, publish)", async () => {
  const s = await client("vic");
  const channel = uniq("chat:noack");
  const pubs = publications(s, channel);
  // The own join shows the subscription exists.
  const own = next(s, "join", 10000, (e) => e.channel === channel && e.info.client === s.id);
  s.emit("subscribe", { channel });
  await own;
  s.emit("publish", { channel, data: { via: "no ack" } });
  const [p] = await pubs.waitFor(1);
  assert.deepEqual(p.data, { via: "no ack" });
  assert.equal(p.info.client, s.id);
});

// Channels carry JSON: a publish whose data holds a Buffer must not publish
// Socket.IO's internal placeholder `{"_placeholder":true,"num":0}`.
test("a publish with binary data does not publish Socket.IO's placeholder", async () => {
  const s = await client("bea");
  const channel = uniq("chat:binary");
  await subscribe(s, channel);
  const ack = await call(s, "publish", { channel, data: { blob: Buffer.from([1, 2, 3]) } });
  if (ack.error) {
    assert.equal(ack.error.code, 107);
    return;
  }
  const hist = await call(s, "history", { channel });
  const text = JSON.stringify(hist.publications.at(-1).data);
  assert.ok(!text.includes("_placeholder"), `published ${text}`);
});

test("an unknown event is answered with 104 in its ack", async () => {
  const s = await client("una");
  const ack = await call(s, "rpc", { method: "x" });
  assert.equal(ack.error?.code, 104, JSON.stringify(ack));
});
