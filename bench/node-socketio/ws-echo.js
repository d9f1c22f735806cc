// Node `ws` echo server, the Node comparison peer of bench/run-echo.sh:
// every text or binary message is sent back as it came. Usage:
//   node ws-echo.js 127.0.0.1:0
// prints "listening on ws://HOST:PORT" once it accepts connections.
"use strict";

const { WebSocketServer } = require("ws");

const [host, port] = (process.argv[2] || "127.0.0.1:0").split(":");
const wss = new WebSocketServer({ host, port: Number(port), perMessageDeflate: false });

wss.on("connection", (socket) => {
  socket.on("message", (data, isBinary) => socket.send(data, { binary: isBinary }));
  socket.on("error", () => {});
});

wss.on("listening", () => {
  const address = wss.address();
  console.log(`listening on ws://${address.address}:${address.port}`);
});
