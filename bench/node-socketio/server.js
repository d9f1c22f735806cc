// Node socket.io server, the comparison peer for duplex's Socket.IO
// benchmarks (bench/run-socketio.sh) and, with a Redis URL, one node of a
// Node socket.io cluster for the many-nodes benchmark (bench/run-cluster.sh).
//
// The library's defaults throughout (ping interval 25 s, timeout 20 s, both
// transports offered, no per-message compression); the benchmark client
// connects with the WebSocket transport only.
//
// Namespace "/" handles three events:
// - "echo" (args...): acknowledged with its arguments;
// - "join" (room): joins the room and acknowledges with true;
// - "bcast" (room, payload): emits "msg" (payload) to every socket in the
//   room, then acknowledges with true if the client asked for an ack.
//
//   node server.js 127.0.0.1:0
//   node server.js 127.0.0.1:0 redis://127.0.0.1:6379 [KEY_PREFIX]
//
// With a Redis URL, @socket.io/redis-adapter runs on a node-redis client
// pair (one connection publishes, one subscribes), so that "bcast" on one
// node reaches the room's sockets on every node; the adapter's defaults
// otherwise.
//
// Node runs the event loop on one thread; the runner pins the process to
// one core like the other servers. Prints
// "socket.io listening on http://ADDR" once it accepts (with Redis: once
// both Redis connections are up).
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");

const arg = process.argv[2] || "127.0.0.1:9105";
const redisUrl = process.argv[3];
const key = process.argv[4] || "socket.io";
const sep = arg.lastIndexOf(":");
const host = arg.slice(0, sep).replace(/^\[|\]$/g, "");
const port = Number(arg.slice(sep + 1));

async function main() {
  const httpServer = http.createServer();
  const io = new Server(httpServer);
  if (redisUrl) {
    const { createAdapter } = require("@socket.io/redis-adapter");
    const { createClient } = require("redis");
    const pubClient = createClient({ url: redisUrl });
    const subClient = pubClient.duplicate();
    for (const c of [pubClient, subClient]) {
      c.on("error", (err) => console.error(`redis: ${err.message}`));
    }
    await Promise.all([pubClient.connect(), subClient.connect()]);
    io.adapter(createAdapter(pubClient, subClient, { key }));
  }

  io.on("connection", (socket) => {
    socket.on("echo", (...args) => {
      const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
      if (ack) ack(...args);
    });
    socket.on("join", (room, ack) => {
      socket.join(room);
      if (typeof ack === "function") ack(true);
    });
    socket.on("bcast", (room, payload, ack) => {
      io.to(room).emit("msg", payload);
      if (typeof ack === "function") ack(true);
    });
  });

  httpServer.on("error", (err) => {
    console.error(`socket.io server: ${err.message}`);
    process.exit(1);
  });
  httpServer.listen(port, host, () => {
    const { address, port: bound } = httpServer.address();
    console.error(`socket.io listening on http://${address}:${bound}`);
  });
}

main().catch((err) => {
  console.error(`socket.io server: ${err.message}`);
  process.exit(1);
});

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => process.exit(0));
}
