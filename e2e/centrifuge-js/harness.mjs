// Test harness for the centrifuge-js end-to-end tests: starts `duplex serve`
// on a free port with a config made for the tests, signs tokens (HS256, with
// node's crypto), calls the server API, and waits for SDK events.
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, writeFileSync, createWriteStream, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import WebSocket from "ws";
import { Centrifuge } from "centrifuge";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");

export const API_KEY = "e2e-api-key";
export const SECRET = "e2e-token-secret";

// Namespaces the tests use. `chat`: everything a subscriber may do, with
// presence, join/leave, history and recovery. `secret`: subscribing needs a
// subscription token. Channels outside a namespace get the defaults
// (nothing allowed without a subscription token).
export const CONFIG = `
[client]
ping_interval = "2s"
pong_timeout = "4s"

[[namespaces]]
name = "chat"
presence = true
join_leave = true
history_size = 100
history_ttl = "10m"
allow_recovery = true
allow_positioning = true
allow_subscribe_for_client = true
allow_publish_for_subscriber = true
allow_presence_for_subscriber = true
allow_history_for_subscriber = true

[[namespaces]]
name = "secret"
presence = true
history_size = 10
history_ttl = "10m"
allow_recovery = true
allow_publish_for_subscriber = true
`;

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

/** Starts the server (on `port`, or a free one); resolves when GET /health answers. */
export async function startServer({ port } = {}) {
  port = port ?? (await freePort());
  const dir = mkdtempSync(path.join(tmpdir(), "duplex-e2e-js-"));
  const configPath = path.join(dir, "duplex.toml");
  writeFileSync(configPath, CONFIG);
  const bin = process.env.DUPLEX_BIN ?? path.join(root, "target/debug/duplex");
  const args = [
    "serve",
    "--config", configPath,
    "--data-dir", dir,
    "--listen", `127.0.0.1:${port}`,
    "--storage", "memory",
    "--api-key", API_KEY,
    "--token-secret", SECRET,
  ];
  const logPath = path.join(here, "server.log");
  const log = createWriteStream(logPath, { flags: "a" });
  log.write(`\n=== ${new Date().toISOString()} ${bin} ${args.join(" ")}\n`);
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "info" } });
  child.stdout.pipe(log, { end: false });
  child.stderr.pipe(log, { end: false });
  if (process.env.E2E_DEBUG === "1") child.stderr.pipe(process.stderr);
  let exited = null;
  child.on("exit", (code, signal) => {
    exited = { code, signal };
  });
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15000;
  for (;;) {
    if (exited) throw new Error(`duplex exited (${JSON.stringify(exited)}) before listening; see ${logPath}`);
    try {
      const res = await fetch(`${base}/health`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`duplex did not answer /health within 15 s; see ${logPath}`);
    }
    await sleep(100);
  }
  return {
    base,
    wsUrl: `ws://127.0.0.1:${port}/connection/websocket`,
    port,
    alive: () => exited === null,
    /** SIGTERM, SIGKILL after 15 s; resolves with {code, signal, ms}. */
    stop: async () => {
      const started = Date.now();
      if (!exited) {
        const done = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 15000);
        await done;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
      return { ...exited, ms: Date.now() - started };
    },
  };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const b64url = (s) => Buffer.from(s).toString("base64url");

/** Signs claims into an HS256 JWT (header may be overridden for bad-token tests). */
export function sign(claims, { secret = SECRET, header = { alg: "HS256", typ: "JWT" } } = {}) {
  const unsigned = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const sig = createHmac("sha256", secret).update(unsigned).digest("base64url");
  return `${unsigned}.${sig}`;
}

const now = () => Math.floor(Date.now() / 1000);

/** A connection token for `user`, valid `ttl` seconds (negative: already expired). */
export function connectToken(user, { ttl = 3600, info, channels, secret } = {}) {
  const claims = { sub: user, iat: now(), exp: now() + ttl };
  if (info !== undefined) claims.info = info;
  if (channels !== undefined) claims.channels = channels;
  return sign(claims, { secret });
}

/** A subscription token for `user` on `channel`. */
export function subToken(user, channel, { ttl = 3600, info } = {}) {
  const claims = { sub: user, channel, iat: now(), exp: now() + ttl };
  if (info !== undefined) claims.info = info;
  return sign(claims);
}

let counter = 0;
/** A channel name no other test uses. */
export function uniq(prefix) {
  counter += 1;
  return `${prefix}${process.pid}-${counter}`;
}

/** Calls `POST /api/<method>`; returns `result`, throws on an `error` or a non-200 status. */
export async function api(server, method, body) {
  const res = await fetch(`${server.base}/api/${method}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-API-Key": API_KEY },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`/api/${method}: HTTP ${res.status}: ${text}`);
  const reply = JSON.parse(text);
  if (reply.error) throw new Error(`/api/${method}: error ${JSON.stringify(reply.error)}`);
  return reply.result;
}

/** The `ws` WebSocket, remembering every socket it opens (to cut them in tests). */
export function trackedWebSocket() {
  const sockets = [];
  class Tracked extends WebSocket {
    constructor(...args) {
      super(...args);
      sockets.push(this);
    }
  }
  return { WebSocket: Tracked, sockets };
}

/** Records every `event` an emitter fires, in order. */
export function record(emitter, event) {
  const seen = [];
  emitter.on(event, (ctx) => seen.push(ctx));
  return seen;
}

/** Waits until `cond()` is true, polling every 20 ms. */
export async function until(cond, ms = 5000, what = "condition") {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** The next `event` of an emitter (matching `pred`), or a timeout error. */
export function next(emitter, event, ms = 5000, pred = () => true) {
  return new Promise((resolve, reject) => {
    const on = (ctx) => {
      if (!pred(ctx)) return;
      clearTimeout(timer);
      emitter.removeListener(event, on);
      resolve(ctx);
    };
    const timer = setTimeout(() => {
      emitter.removeListener(event, on);
      reject(new Error(`no '${event}' within ${ms} ms`));
    }, ms);
    emitter.on(event, on);
  });
}

/** Makes clients for one test file and disconnects them all at the end. */
export function clients(server) {
  const made = [];
  return {
    make(opts = {}) {
      const c = new Centrifuge(server.wsUrl, { websocket: WebSocket, timeout: 5000, ...opts });
      // The SDK's EventEmitter throws on an 'error' event nobody listens
      // to; tests that care about errors add their own listener.
      c.on("error", () => {});
      made.push(c);
      return c;
    },
    closeAll() {
      for (const c of made) c.disconnect();
    },
  };
}

/** A new subscription with a no-op 'error' listener (see `make`). */
export function newSub(c, channel, opts = {}) {
  const sub = c.newSubscription(channel, opts);
  sub.on("error", () => {});
  return sub;
}

/** Connects and resolves with the `connected` context. */
export async function connected(c, ms = 5000) {
  const p = next(c, "connected", ms);
  c.connect();
  return p;
}

/** Subscribes and resolves with the `subscribed` context. */
export async function subscribed(sub, ms = 5000) {
  const p = next(sub, "subscribed", ms);
  sub.subscribe();
  return p;
}
