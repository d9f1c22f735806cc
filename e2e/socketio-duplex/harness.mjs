// Test harness for the end-to-end tests of duplex's Socket.IO mapping: starts
// `duplex serve` on a free port with a config made for the tests, signs
// tokens (HS256, with node's crypto), calls the server API, makes official
// socket.io-client sockets, and speaks Centrifugo's JSON protocol over a plain
// WebSocket (`ws`) for the cross-transport tests. Waits are event-driven.
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, writeFileSync, createWriteStream, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import WebSocket from "ws";
import { io } from "socket.io-client";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");

export const API_KEY = "e2e-api-key";
export const SECRET = "e2e-token-secret";

// Namespaces the tests use.
// `chat`: subscribe without a token, presence, join/leave, history and
//   recovery, publish for subscribers.
// `pub`: like `chat`, and any connected client may publish (the plain
//   WebSocket publisher of the cross-transport tests need not subscribe).
// `locked`: subscribing needs a subscription token, nobody may publish;
//   presence for the server API only.
// `nohist`: no history (publications carry no offset).
// Channels outside a namespace get the built-in defaults.
export const CONFIG = `
[client]
ping_interval = "2s"
pong_timeout = "4s"

[[namespaces]]
name = "chat"
presence = true
join_leave = true
history_size = 200
history_ttl = "10m"
allow_recovery = true
allow_positioning = true
allow_subscribe_for_client = true
allow_publish_for_subscriber = true
allow_presence_for_subscriber = true
allow_history_for_subscriber = true

[[namespaces]]
name = "pub"
presence = true
history_size = 100
history_ttl = "10m"
allow_recovery = true
allow_subscribe_for_client = true
allow_publish_for_client = true
allow_history_for_subscriber = true

[[namespaces]]
name = "locked"
presence = true
history_size = 10
history_ttl = "10m"

[[namespaces]]
name = "nohist"
allow_subscribe_for_client = true
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

/**
 * Starts the server; resolves when GET /health answers.
 * Options: `port` (default: a free one), `dev` (add --dev), `config` (TOML
 * text, default CONFIG; null: no config file).
 */
export async function startServer({ port, dev = false, config = CONFIG } = {}) {
  port = port ?? (await freePort());
  const dir = mkdtempSync(path.join(tmpdir(), "duplex-e2e-sio-"));
  const bin = process.env.DUPLEX_BIN ?? path.join(root, "target/debug/duplex");
  const args = ["serve"];
  if (config !== null) {
    const configPath = path.join(dir, "duplex.toml");
    writeFileSync(configPath, config);
    args.push("--config", configPath);
  }
  args.push(
    "--data-dir", dir,
    "--listen", `127.0.0.1:${port}`,
    "--storage", "memory",
    "--api-key", API_KEY,
    "--token-secret", SECRET,
  );
  if (dev) args.push("--dev");
  const logPath = path.join(here, "server.log");
  const log = createWriteStream(logPath, { flags: "a" });
  log.write(`\n=== ${new Date().toISOString()} ${bin} ${args.join(" ")}\n`);
  const child = spawn(bin, args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "info" },
  });
  child.stdout.pipe(log, { end: false });
  child.stderr.pipe(log, { end: false });
  if (process.env.E2E_DEBUG === "1") child.stderr.pipe(process.stderr);
  let exited = null;
  const exit = new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    });
  });
  const base = `http://127.0.0.1:${port}`;
  // Generous: the binary may be slow to start while another build runs.
  const deadline = Date.now() + 30000;
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
      throw new Error(`duplex did not answer /health within 30 s; see ${logPath}`);
    }
    await sleep(100);
  }
  return {
    base,
    wsUrl: `ws://127.0.0.1:${port}/connection/websocket`,
    port,
    pid: child.pid,
    alive: () => exited === null,
    /** Resolves with {code, signal} when the process has exited. */
    exited: () => exit,
    /** SIGTERM, SIGKILL after 20 s; resolves with {code, signal, ms}. */
    stop: async () => {
      const started = Date.now();
      if (!exited) {
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 20000);
        await exit;
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

/** Records every `event` an emitter fires (first argument), in order. */
export function record(emitter, event) {
  const seen = [];
  emitter.on(event, (arg) => seen.push(arg));
  return seen;
}

/** The next `event` of an emitter (matching `pred`), resolving with its first argument. */
export function next(emitter, event, ms = 10000, pred = () => true) {
  return new Promise((resolve, reject) => {
    const on = (arg) => {
      if (!pred(arg)) return;
      clearTimeout(timer);
      emitter.off(event, on);
      resolve(arg);
    };
    const timer = setTimeout(() => {
      emitter.off(event, on);
      reject(new Error(`no '${event}' within ${ms} ms`));
    }, ms);
    emitter.on(event, on);
  });
}

/** Emits `event` with `arg` and resolves with the ack's first argument (10 s timeout). */
export function call(socket, event, arg, ms = 10000) {
  return socket.timeout(ms).emitWithAck(event, arg);
}

/** Makes Socket.IO sockets for one test file and closes them all at the end. */
export function sockets(server) {
  const made = [];
  return {
    /** A new socket (own Manager, no reconnection unless asked); connects unless `autoConnect: false`. */
    make(opts = {}) {
      const s = io(server.base, { forceNew: true, reconnection: false, timeout: 10000, ...opts });
      made.push(s);
      return s;
    },
    closeAll() {
      for (const s of made) s.disconnect();
    },
  };
}

/** Resolves when `socket` is connected; rejects with the `connect_error`. */
export function connected(socket, ms = 10000) {
  if (socket.connected) return Promise.resolve(socket);
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      socket.off("connect", ok);
      socket.off("connect_error", fail);
    };
    const ok = () => {
      done();
      resolve(socket);
    };
    const fail = (err) => {
      done();
      reject(err);
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`not connected within ${ms} ms`));
    }, ms);
    socket.on("connect", ok);
    socket.on("connect_error", fail);
  });
}

/** Resolves with the `connect_error` of `socket`; rejects if it connects instead. */
export function refused(socket, ms = 10000) {
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      socket.off("connect", ok);
      socket.off("connect_error", fail);
    };
    const ok = () => {
      done();
      reject(new Error("connected, expected a connect_error"));
    };
    const fail = (err) => {
      done();
      resolve(err);
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`no connect_error within ${ms} ms`));
    }, ms);
    socket.on("connect", ok);
    socket.on("connect_error", fail);
  });
}

/** Subscribes `socket` to `channel` (plus `extra` fields); resolves with the ack, throws on an error ack. */
export async function subscribe(socket, channel, extra = {}) {
  const ack = await call(socket, "subscribe", { channel, ...extra });
  if (ack && ack.error) throw new Error(`subscribe ${channel}: ${JSON.stringify(ack.error)}`);
  return ack;
}

/**
 * Publications of `socket` on `channel`, in arrival order (`list`), with
 * `waitFor(n)` resolving once `n` have arrived (event-driven).
 */
export function publications(socket, channel, event = "publication") {
  const list = [];
  const waiters = [];
  socket.on(event, (p) => {
    if (p && p.channel !== channel) return;
    list.push(p);
    for (const w of waiters.slice()) w.check();
  });
  return {
    list,
    waitFor(n, ms = 10000) {
      return new Promise((resolve, reject) => {
        const w = {
          check: () => {
            if (list.length >= n) {
              clearTimeout(timer);
              waiters.splice(waiters.indexOf(w), 1);
              resolve(list);
            }
          },
        };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`${event} on ${channel}: ${list.length} of ${n} within ${ms} ms`));
        }, ms);
        waiters.push(w);
        w.check();
      });
    },
  };
}

/**
 * A minimal client of Centrifugo's JSON protocol over a plain WebSocket
 * (`/connection/websocket`): commands with ids answered by replies, and
 * pushes recorded and emitted as "push" events.
 */
export class CentrifugoClient {
  constructor(url) {
    this.url = url;
    this.nextId = 1;
    this.pending = new Map();
    this.pushes = [];
    this.listeners = new Map();
    this.closed = null;
  }

  /** Opens the socket; resolves when open. */
  open(ms = 10000) {
    this.ws = new WebSocket(this.url);
    this.ws.on("message", (buf) => {
      for (const line of buf.toString().split("\n")) {
        if (line.trim() === "") continue;
        const msg = JSON.parse(line);
        if (msg.id !== undefined && this.pending.has(msg.id)) {
          const p = this.pending.get(msg.id);
          this.pending.delete(msg.id);
          p(msg);
        } else if (msg.push) {
          this.pushes.push(msg.push);
          this.emit("push", msg.push);
        } else if (Object.keys(msg).length === 0) {
          this.ws.send("{}"); // ping -> pong
        }
      }
    });
    this.ws.on("close", (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.emit("close", this.closed);
    });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`WebSocket not open within ${ms} ms`)), ms);
      this.ws.once("open", () => {
        clearTimeout(timer);
        resolve(this);
      });
      this.ws.once("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  on(event, fn) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(fn);
    return this;
  }

  off(event, fn) {
    this.listeners.get(event)?.delete(fn);
    return this;
  }

  emit(event, arg) {
    for (const fn of [...(this.listeners.get(event) ?? [])]) fn(arg);
  }

  /** Sends `{id, <method>: body}`; resolves with the whole reply (`{id, <method>}` or `{id, error}`). */
  command(method, body, ms = 10000) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no reply to ${method} (id ${id}) within ${ms} ms`));
      }, ms);
      this.pending.set(id, (msg) => {
        clearTimeout(timer);
        resolve(msg);
      });
      this.ws.send(JSON.stringify({ id, [method]: body }));
    });
  }

  /** Like `command`, but returns the result and throws on an error reply. */
  async ok(method, body) {
    const reply = await this.command(method, body);
    if (reply.error) throw new Error(`${method}: ${JSON.stringify(reply.error)}`);
    return reply[method];
  }

  close() {
    this.ws?.close();
  }
}
