// Node socket.io server, the comparison peer for duplex's Socket.IO
// benchmarks (bench/run-socketio.sh).
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
//
// Node runs the event loop on one thread; the runner pins the process to
// one core like the other servers. Prints
// "socket.io listening on http://ADDR" once it accepts.
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");

const arg = process.argv[2] || "127.0.0.1:9105";
const sep = arg.lastIndexOf(":");
const host = arg.slice(0, sep).replace(/^\[|\]$/g, "");
const port = Number(arg.slice(sep + 1));

const httpServer = http.createServer();
const io = new Server(httpServer);

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

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => process.exit(0));
}
