// SIGTERM with socket.io-client 4.8 sockets connected: every socket gets a
// disconnect with "io server disconnect" (so it does not reconnect by
// itself), and the process exits 0. Each test starts its own server.
import { test, afterEach } from "node:test";
import assert from "node:assert/strict";

import {
  api, connected, connectToken, next, publications, sockets, startServer, subscribe, uniq,
} from "./harness.mjs";

let server;
let pool;

afterEach(async () => {
  pool?.closeAll();
  await server?.stop();
  server = null;
  pool = null;
});

/**
 * Starts a server, connects one subscribed socket per entry of `kinds`
 * (name -> transports option, undefined: the default, waited until
 * upgraded), checks they all receive a publication, stops the server with
 * SIGTERM, and returns each socket's disconnect reason.
 */
async function shutdownWith(kinds) {
  server = await startServer();
  pool = sockets(server);
  const channel = uniq("chat:shutdown");
  const all = {};
  for (const [kind, transports] of Object.entries(kinds)) {
    const s = pool.make({
      auth: { token: connectToken(kind) },
      reconnection: true,
      reconnectionDelay: 100,
      ...(transports ? { transports } : {}),
    });
    const upgraded = transports ? null : new Promise((resolve) => {
      s.io.once("open", () => s.io.engine.once("upgrade", resolve));
    });
    await connected(s);
    if (upgraded) await upgraded;
    const pubs = publications(s, channel);
    await subscribe(s, channel);
    all[kind] = { s, pubs };
  }
  // Everyone is live before the shutdown.
  await api(server, "publish", { channel, data: { before: true } });
  await Promise.all(Object.values(all).map(({ pubs }) => pubs.waitFor(1)));
  for (const [kind, transports] of Object.entries(kinds)) {
    assert.equal(all[kind].s.io.engine.transport.name, transports ? transports[0] : "websocket", kind);
  }
  const reasons = Object.fromEntries(
    Object.entries(all).map(([kind, { s }]) => [kind, next(s, "disconnect", 20000)]),
  );
  const exit = await server.stop();
  assert.equal(exit.code, 0, `exit status ${JSON.stringify(exit)}`);
  assert.equal(exit.signal, null);
  const got = {};
  for (const [kind, reason] of Object.entries(reasons)) {
    got[kind] = { reason: await reason, active: all[kind].s.active };
  }
  return got;
}

test("SIGTERM: 'io server disconnect' on websocket and upgraded sockets; exit 0", async () => {
  const got = await shutdownWith({ websocket: ["websocket"], upgraded: undefined });
  assert.deepEqual(got, {
    websocket: { reason: "io server disconnect", active: false },
    upgraded: { reason: "io server disconnect", active: false },
  });
});

// At shutdown the Socket.IO DISCONNECT packet is queued and the Engine.IO
// session closed right after; the client's poll (waiting or next) must get
// the DISCONNECT before the close packet, so it sees "io server disconnect"
// and does not reconnect.
test("SIGTERM: 'io server disconnect' on a polling socket; exit 0", async () => {
  const got = await shutdownWith({ polling: ["polling"] });
  assert.deepEqual(got, { polling: { reason: "io server disconnect", active: false } });
});
