// centrifuge-js 5.x and a server that stops and starts again on the same
// port: SIGTERM closes clients with 3001 (the SDK reconnects), the process
// exits 0, and once a new server is up the SDK is back by itself. With memory
// storage the new server has new epochs, so recovery reports recovered=false.
import { test, after } from "node:test";
import assert from "node:assert/strict";

import {
  api, clients, connected, connectToken, newSub, next, record, startServer, subscribed, uniq, until,
} from "./harness.mjs";

let server;
let pool;

after(async () => {
  pool?.closeAll();
  await server?.stop();
});

test("SIGTERM: 3001 to clients, exit 0; the SDK reconnects to the next server and resubscribes", async () => {
  server = await startServer();
  pool = clients(server);
  const channel = uniq("chat:restart");
  const c = pool.make({ token: connectToken("alice"), minReconnectDelay: 200, maxReconnectDelay: 500 });
  const sub = newSub(c, channel, { recoverable: true });
  const subs = record(sub, "subscribed");
  const pubs = record(sub, "publication");
  await connected(c);
  await subscribed(sub);
  const epoch1 = subs[0].streamPosition.epoch;
  await api(server, "publish", { channel, data: { n: 1 } });
  await until(() => pubs.length === 1, 3000, "a publication before the restart");

  const away = next(c, "connecting", 5000);
  const exit = await server.stop();
  assert.equal(exit.code, 0, `exit status ${JSON.stringify(exit)}`);
  const ctx = await away;
  assert.equal(ctx.code, 3001, `connecting because of ${ctx.code} ${ctx.reason}`);

  server = await startServer({ port: server.port });
  await next(c, "connected", 10000);
  await until(() => subs.length === 2, 5000, "the resubscribe");
  assert.equal(subs[1].wasRecovering, true);
  assert.equal(subs[1].recovered, false, "memory storage: a new epoch, nothing to recover");
  assert.notEqual(subs[1].streamPosition.epoch, epoch1);

  await api(server, "publish", { channel, data: { n: 2 } });
  await until(() => pubs.length === 2, 3000, "a publication after the restart");
  assert.deepEqual(pubs[1].data, { n: 2 });
});
