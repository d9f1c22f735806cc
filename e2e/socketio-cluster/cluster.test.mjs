// The official socket.io-client (4.8) against two duplex nodes sharing
// Redis: room broadcasts across nodes, and connection state recovery on
// another node than the one the client left (a small TCP proxy stands in
// for the load balancer that sends the reconnection elsewhere).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { io } from "socket.io-client";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const binary = path.join(root, "target/debug/examples/cluster_node");
const prefix = `sio-e2e-${process.pid}-${Date.now()}`;
const nodes = [];
const sockets = [];

function startNode() {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, [], {
      env: { ...process.env, PREFIX: prefix, REDIS_URL: process.env.REDIS_URL ?? "redis://127.0.0.1:6379" },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const m = out.match(/listening (\S+) node=(\S+)/);
      if (m) resolve({ child, url: m[1], port: Number(new URL(m[1]).port), id: m[2] });
    });
    child.on("exit", (code) => reject(new Error(`node exited with ${code}`)));
  });
}

/** A TCP proxy whose target can change, and that can drop its connections. */
function proxy(targetPort) {
  const state = { target: targetPort, accepting: true, open: new Set() };
  const server = net.createServer((client) => {
    if (!state.accepting) return client.destroy();
    const upstream = net.connect(state.target, "127.0.0.1");
    state.open.add(client);
    state.open.add(upstream);
    client.pipe(upstream).pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
      state.open.delete(client);
      state.open.delete(upstream);
    };
    client.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      state.url = `http://127.0.0.1:${server.address().port}`;
      state.close = () => server.close();
      state.cut = () => {
        for (const s of state.open) s.destroy();
      };
      resolve(state);
    });
  });
}

function once(socket, event, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    socket.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

function connect(url, opts = {}) {
  const socket = io(url, { forceNew: true, transports: ["websocket"], ...opts });
  sockets.push(socket);
  return socket;
}

async function welcomed(socket) {
  const [welcome] = await once(socket, "welcome");
  return welcome;
}

before(async () => {
  nodes.push(await startNode(), await startNode());
});

/** Deletes this run's keys (one EVAL over a raw RESP connection). */
function cleanup() {
  const script = "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end";
  const args = ["EVAL", script, "0", `${prefix}:*`];
  const command = `*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("");
  const url = new URL(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
  return new Promise((resolve) => {
    const conn = net.connect(Number(url.port || 6379), url.hostname, () => conn.write(command));
    conn.once("data", () => conn.end());
    conn.on("close", resolve).on("error", resolve);
  });
}

after(async () => {
  for (const s of sockets) s.disconnect();
  for (const n of nodes) n.child.kill();
  await new Promise((r) => setTimeout(r, 200));
  await cleanup();
});

test("a room broadcast reaches the room's clients on both nodes, once", async () => {
  const a = connect(nodes[0].url, { reconnection: false });
  const b = connect(nodes[1].url, { reconnection: false });
  const c = connect(nodes[1].url, { reconnection: false });
  await Promise.all([welcomed(a), welcomed(b), welcomed(c)]);
  assert.deepEqual(await a.emitWithAck("join", "r"), true);
  assert.deepEqual(await b.emitWithAck("join", "r"), true);
  const got = { a: [], b: [], c: [] };
  for (const [name, s] of Object.entries({ a, b, c })) s.on("room-message", (m) => got[name].push(m));
  a.emit("to-room", "r", "hello");
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(got, { a: ["hello"], b: ["hello"], c: [] });
});

test("a client that drops from node A recovers on node B: same id, rooms, missed events", async () => {
  const lb = await proxy(nodes[0].port);
  const client = connect(lb.url, { reconnectionDelay: 100, reconnectionDelayMax: 200 });
  const first = await welcomed(client);
  assert.equal(first.node, nodes[0].id);
  assert.equal(first.recovered, false);
  assert.equal(await client.emitWithAck("join", "room"), true);
  const sender = connect(nodes[1].url, { reconnection: false });
  await welcomed(sender);
  const messages = [];
  client.on("room-message", (m) => messages.push(m));
  sender.emit("to-room", "room", "before");
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(messages, ["before"]);
  const id = client.id;

  // The load balancer loses node A; the client is away for a moment.
  lb.accepting = false;
  lb.target = nodes[1].port;
  const dropped = once(client, "disconnect");
  lb.cut();
  await dropped;
  sender.emit("to-room", "room", "missed 1");
  sender.emit("to-room", "room", "missed 2");
  await new Promise((r) => setTimeout(r, 300));
  const back = once(client, "welcome", 10000);
  lb.accepting = true;
  const [welcome] = await back;
  assert.equal(welcome.node, nodes[1].id, "reconnected to node B");
  assert.equal(welcome.recovered, true);
  assert.equal(client.recovered, true);
  assert.equal(client.id, id, "same socket id");
  assert.deepEqual(messages, ["before", "missed 1", "missed 2"]);
  // Still in the room, now on node B.
  sender.emit("to-room", "room", "after");
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(messages, ["before", "missed 1", "missed 2", "after"]);
  client.disconnect();
  lb.close();
});

test("a polling client on a node that does not hold its session is told sticky sessions are needed", async () => {
  const open = await fetch(`${nodes[0].url}/socket.io/?EIO=4&transport=polling`);
  const body = await open.text();
  const sid = JSON.parse(body.slice(1)).sid;
  const wrong = await fetch(`${nodes[1].url}/socket.io/?EIO=4&transport=polling&sid=${sid}`);
  assert.equal(wrong.status, 400);
  const error = await wrong.json();
  assert.equal(error.code, 1);
  assert.match(error.message, /sticky sessions/);
});
