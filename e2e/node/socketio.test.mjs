// The official socket.io-client (4.8) against duplex's Socket.IO server.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startServer } from "./server.mjs";

let server;
const sockets = [];

before(async () => {
  server = await startServer();
});

after(() => {
  for (const s of sockets) s.disconnect();
  server?.stop();
});

function connect(nsp = "/", opts = {}) {
  const socket = io(server.url + nsp, { forceNew: true, reconnection: false, ...opts });
  sockets.push(socket);
  return socket;
}

function once(socket, event, ms = 3000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    socket.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

async function connected(socket) {
  if (!socket.connected) await once(socket, "connect");
  return socket;
}

test("connects to / and to a custom namespace, with the handshake auth", async () => {
  const main = connect("/", { auth: { user: "ada" } });
  const [id, auth] = await once(main, "welcome");
  await connected(main);
  assert.equal(id, main.id);
  assert.deepEqual(auth, { user: "ada" });
  const custom = connect("/custom");
  await connected(custom);
  assert.ok(custom.id);
  assert.notEqual(custom.id, main.id);
});

test("middleware accepts a good token and refuses a bad one", async () => {
  const ok = connect("/private", { auth: { token: "secret" } });
  await connected(ok);
  const bad = connect("/private", { auth: { token: "wrong" } });
  const [err] = await once(bad, "connect_error");
  assert.equal(err.message, "invalid token");
  assert.equal(bad.connected, false);
});

test("events both ways with JSON arguments", async () => {
  const s = await connected(connect());
  s.emit("echo", "text", 42, { nested: [1, 2, { deep: true }] }, null);
  const args = await once(s, "echo");
  assert.deepEqual(args, ["text", 42, { nested: [1, 2, { deep: true }] }, null]);
});

test("acks both ways", async () => {
  const s = await connected(connect());
  const reply = await s.timeout(2000).emitWithAck("echo-ack", { n: 1 }, "two");
  assert.deepEqual(reply, { n: 1 });
  s.on("server-ack", (question, cb) => cb(`answer to ${question}`));
  s.emit("request-ack");
  const [result] = await once(s, "ack-result");
  assert.deepEqual(result, { ok: ["answer to question"] });
});

test("emitWithAck times out when nobody answers, on either side", async () => {
  const s = await connected(connect());
  await assert.rejects(s.timeout(200).emitWithAck("no-answer", 1), /timed out/);
  s.on("server-ack", () => {}); // never calls back
  s.emit("request-ack");
  const [result] = await once(s, "ack-result");
  assert.match(result.error, /timed out/);
});

test("binary both ways", async () => {
  const s = await connected(connect());
  const payload = Buffer.from([0, 1, 2, 253, 254, 255]);
  s.emit("echo", { file: payload, name: "bytes" }, Buffer.from("second"));
  const [obj, second] = await once(s, "echo");
  assert.equal(obj.name, "bytes");
  assert.deepEqual(Buffer.from(obj.file), payload);
  assert.equal(Buffer.from(second).toString(), "second");
  const acked = await s.timeout(2000).emitWithAck("echo-ack", Buffer.from([9, 8, 7]));
  assert.deepEqual(Buffer.from(acked), Buffer.from([9, 8, 7]));
});

test("a room broadcast reaches the room's sockets only", async () => {
  const [a, b, c] = await Promise.all([connect(), connect(), connect()].map(connected));
  await a.timeout(2000).emitWithAck("join", "blue");
  await b.timeout(2000).emitWithAck("join", "blue");
  const got = { a: [], b: [], c: [] };
  a.on("room-message", (m) => got.a.push(m));
  b.on("room-message", (m) => got.b.push(m));
  c.on("room-message", (m) => got.c.push(m));
  c.emit("to-room", "blue", { hello: "blue" });
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(got.a, [{ hello: "blue" }]);
  assert.deepEqual(got.b, [{ hello: "blue" }]);
  assert.deepEqual(got.c, []);
});

for (const [name, opts, expected] of [
  ["polling only", { transports: ["polling"] }, "polling"],
  ["websocket only", { transports: ["websocket"] }, "websocket"],
  ["polling upgraded to websocket", {}, "websocket"],
]) {
  test(`transport: ${name}`, async () => {
    const s = connect("/", opts);
    await connected(s);
    if (expected === "websocket" && s.io.engine.transport.name !== "websocket") {
      await once(s.io.engine, "upgrade");
    }
    assert.equal(s.io.engine.transport.name, expected);
    s.emit("echo", name, Buffer.from([1, 2, 3]));
    const [text, bin] = await once(s, "echo");
    assert.equal(text, name);
    assert.deepEqual(Buffer.from(bin), Buffer.from([1, 2, 3]));
    const reply = await s.timeout(2000).emitWithAck("echo-ack", name);
    assert.equal(reply, name);
  });
}

test("connection state recovery: same id, rooms kept, missed events replayed", async (t) => {
  const rec = await startServer(["--recovery"]);
  t.after(() => rec.stop());
  const open = (opts = {}) => {
    const socket = io(rec.url, { forceNew: true, reconnection: false, ...opts });
    sockets.push(socket);
    return socket;
  };
  const a = await connected(open({ reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 200 }));
  const b = await connected(open());
  await a.timeout(2000).emitWithAck("join", "green");
  const got = [];
  a.on("room-message", (m) => got.push(m));
  b.emit("to-room", "green", "before");
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(got, ["before"]);
  const firstId = a.id;
  assert.equal(a.recovered, false);

  const dropped = once(a, "disconnect");
  a.io.engine.close(); // the connection drops; the client reconnects
  await dropped;
  await new Promise((r) => setTimeout(r, 50));
  b.emit("to-room", "green", "missed-1");
  b.emit("to-room", "green", "missed-2");
  await once(a, "connect", 5000);
  assert.equal(a.recovered, true);
  assert.equal(a.id, firstId);
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(got, ["before", "missed-1", "missed-2"]);
  b.emit("to-room", "green", "after"); // still in the room
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(got, ["before", "missed-1", "missed-2", "after"]);
});

test("a fresh socket is not recovered", async (t) => {
  const rec = await startServer(["--recovery"]);
  t.after(() => rec.stop());
  const s = io(rec.url, { forceNew: true, reconnection: false });
  sockets.push(s);
  const [, , recovered] = await once(s, "welcome");
  await connected(s);
  assert.equal(recovered, false);
  assert.equal(s.recovered, false);
});
