// One node of a Node socket.io cluster over Redis, the comparison peer of
// duplex's many-nodes benchmark (bench/run-cluster.sh): the same events
// as server.js, with @socket.io/redis-adapter on a node-redis client pair
// (one connection publishes, one subscribes), so that "bcast" on one node
// reaches the room's sockets on every node.
//
//   node cluster-server.js 127.0.0.1:0 redis://127.0.0.1:6379 [KEY_PREFIX]
//
// The library's and the adapter's defaults otherwise. Prints
// "socket.io listening on http://ADDR" once it accepts (after both Redis
// connections are up).
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

const arg = process.argv[2] || "127.0.0.1:0";
const redisUrl = process.argv[3] || "redis://127.0.0.1:6379";
const key = process.argv[4] || "socket.io";
const sep = arg.lastIndexOf(":");
const host = arg.slice(0, sep).replace(/^\[|\]$/g, "");
const port = Number(arg.slice(sep + 1));

async function main() {
  const pubClient = createClient({ url: redisUrl });
  const subClient = pubClient.duplicate();
  for (const c of [pubClient, subClient]) {
    c.on("error", (err) => console.error(`redis: ${err.message}`));
  }
  await Promise.all([pubClient.connect(), subClient.connect()]);

  const httpServer = http.createServer();
  const io = new Server(httpServer);
  io.adapter(createAdapter(pubClient, subClient, { key }));

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
  console.error(`socket.io cluster node: ${err.message}`);
  process.exit(1);
});

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => process.exit(0));
}
