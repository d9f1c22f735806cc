// socket.io-client 4.8 against duplex's /socket.io/: the handshake's
// auth.token (accepted, or refused with a connect_error saying why), --dev
// without a token, and the server API's disconnects.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";

import {
  api, call, connected, connectToken, next, publications, refused, sign, sockets, startServer,
  subscribe, uniq,
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

test("a valid token connects; the socket id is the client id, the token's sub the user", async () => {
  const token = connectToken("alice", { info: { name: "Alice" } });
  const s = pool.make({ auth: { token } });
  await connected(s);
  assert.equal(typeof s.id, "string");
  assert.ok(s.id.length > 0);
  const channel = uniq("chat:auth");
  await subscribe(s, channel);
  const { presence } = await api(server, "presence", { channel });
  assert.deepEqual(Object.keys(presence), [s.id]);
  assert.equal(presence[s.id].client, s.id);
  assert.equal(presence[s.id].user, "alice");
  assert.deepEqual(presence[s.id].conn_info, { name: "Alice" });
});

async function expectRefused(auth, pattern) {
  const s = pool.make(auth === undefined ? {} : { auth });
  const err = await refused(s);
  assert.match(err.message, pattern, `connect_error message: ${JSON.stringify(err.message)}`);
  assert.equal(s.connected, false);
  return err;
}

test("a token signed with another secret is refused: 'invalid token'", async () => {
  await expectRefused({ token: connectToken("alice", { secret: "not-the-secret" }) }, /^invalid token$/);
});

test("an alg=none token is refused: 'invalid token'", async () => {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const token = `${b64({ alg: "none", typ: "JWT" })}.${b64({ sub: "alice", exp: Math.floor(Date.now() / 1000) + 600 })}.`;
  await expectRefused({ token }, /^invalid token$/);
});

test("an HS384 token is refused: 'invalid token'", async () => {
  const token = sign({ sub: "alice", exp: Math.floor(Date.now() / 1000) + 600 }, { header: { alg: "HS384", typ: "JWT" } });
  await expectRefused({ token }, /^invalid token$/);
});

test("a malformed token is refused: 'invalid token'", async () => {
  await expectRefused({ token: "not.a.jwt" }, /^invalid token$/);
});

test("an expired token is refused: 'token expired'", async () => {
  await expectRefused({ token: connectToken("alice", { ttl: -120 }) }, /^token expired$/);
});

test("no token (not --dev) is refused: a token is required", async () => {
  const err = await expectRefused(undefined, /unauthorized.*token is required/);
  assert.ok(err.message.includes("auth: {token}"), err.message);
  await expectRefused({}, /token is required/);
  await expectRefused({ token: "" }, /token is required/);
});

test("a refused client does not count as connected; a valid one afterwards does", async () => {
  const before = (await api(server, "info", {})).nodes[0].num_clients;
  await expectRefused({ token: "garbage" }, /invalid token/);
  const s = pool.make({ auth: { token: connectToken("carol") } });
  await connected(s);
  const info = await api(server, "info", {});
  assert.equal(info.nodes[0].num_clients, before + 1);
});

test("API disconnect with a final code: 'io server disconnect', no reconnect", async () => {
  const s = pool.make({ auth: { token: connectToken("dora") }, reconnection: true, reconnectionDelay: 100 });
  await connected(s);
  const gone = next(s, "disconnect");
  await api(server, "disconnect", { user: "dora", code: 3507, reason: "go away" });
  assert.equal(await gone, "io server disconnect");
  assert.equal(s.active, false, "the client must not reconnect after an io server disconnect");
});

async function reconnectingDisconnect(transports) {
  const user = uniq("erin");
  const s = pool.make({
    auth: { token: connectToken(user) }, transports, reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 300,
  });
  await connected(s);
  const firstId = s.id;
  const gone = next(s, "disconnect");
  const back = next(s, "connect", 15000);
  await api(server, "disconnect", { user, code: 3000, reason: "reconnect please" });
  const reason = await gone;
  await back;
  assert.notEqual(s.id, firstId, "a new session after the reconnect");
  return { s, reason };
}

test("API disconnect with a reconnecting code (websocket): 'transport close', the client comes back", async () => {
  const { s, reason } = await reconnectingDisconnect(["websocket"]);
  assert.equal(reason, "transport close");
  // Still usable after the reconnect.
  const channel = uniq("chat:back");
  const pubs = publications(s, channel);
  await subscribe(s, channel);
  await api(server, "publish", { channel, data: { n: 1 } });
  await pubs.waitFor(1);
});

// A session closed by the server while no GET poll is waiting must be kept
// for the client's next poll, which gets Engine.IO's close packet ("transport
// close"), not HTTP 400 ("transport error"). Right after connecting, the next
// poll is usually not yet at the server, so this exercises that case.
test("API disconnect with a reconnecting code (polling, right after connect): 'transport close'", async () => {
  const reasons = [];
  for (let i = 0; i < 5; i++) {
    const { s, reason } = await reconnectingDisconnect(["polling"]);
    reasons.push(reason);
    s.disconnect();
  }
  assert.deepEqual(reasons, Array(5).fill("transport close"));
});

test("--dev: a client without a token connects as the anonymous user and may publish", async () => {
  const dev = await startServer({ dev: true, config: null });
  const devPool = sockets(dev);
  try {
    const s = devPool.make();
    await connected(s);
    const channel = uniq("room");
    const pubs = publications(s, channel);
    const ack = await subscribe(s, channel);
    assert.equal(typeof ack.epoch, "string");
    assert.deepEqual(await call(s, "publish", { channel, data: { text: "hi" } }), {});
    const [p] = await pubs.waitFor(1);
    assert.deepEqual(p.data, { text: "hi" });
    assert.equal(p.offset, 1);
    assert.equal(p.info.client, s.id);
    assert.ok(!p.info.user, `anonymous user, got ${JSON.stringify(p.info.user)}`);
    // A bad token is still refused in --dev.
    const bad = devPool.make({ auth: { token: "nope" } });
    assert.match((await refused(bad)).message, /invalid token/);
  } finally {
    devPool.closeAll();
    await dev.stop();
  }
});
