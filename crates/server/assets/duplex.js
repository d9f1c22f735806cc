/*
 * duplex.js: a small, dependency-free client for duplex's plain WebSocket
 * endpoint `/connection/websocket` (Centrifugo's bidirectional JSON protocol,
 * client protocol v2). A classic script, so one file works everywhere:
 *   <script src="/duplex.js"></script>                 -> window.Duplex
 *   import "/duplex.js"; const { Duplex } = globalThis; (from an ES module)
 *   const Duplex = require("./duplex.js");             (Node; before Node 22
 *                                   pass {websocket: require("ws")})
 * Client:
 *   const c = new Duplex("ws://host:8000/connection/websocket", {
 *     token: "JWT" | getToken: async () => "JWT",  // getToken: when there is
 *                         // no token, on error 109 (expired), before expiry
 *     name, data,         // sent with connect
 *     minReconnectDelay: 500, maxReconnectDelay: 20000, timeout: 10000,
 *     maxServerPingDelay: 10000, websocket: WebSocket });
 *   c.connect(); c.disconnect(); c.state: "disconnected"|"connecting"|"connected"
 *   c.on("connecting", {code, reason})    first connect and every reconnect
 *   c.on("connected", {client, data}); c.on("disconnected", {code, reason})
 *                                         (stopped for good: no reconnect)
 *   c.on("error", {type, error}); c.on("message", {data})
 *   c.publish(channel, data), c.presence(channel), c.presenceStats(channel),
 *   c.history(channel, {limit, since: {offset, epoch}, reverse}), c.rpc(method, data):
 *     Promises; calls made while connecting wait for the connection (up to
 *     `timeout`); errors are {code, message}. c.send(data) does not wait.
 * Subscription:
 *   const sub = c.subscribe("chat", {recover: true, joinLeave: true, data,
 *                                    token | getToken: async ({channel}) => "JWT"});
 *   sub.on("subscribing" | "unsubscribed", {code, reason})
 *   sub.on("subscribed", {recoverable, streamPosition: {offset, epoch},
 *                         wasRecovering, recovered, data})
 *   sub.on("publication", {channel, data, info, offset, tags, time})
 *   sub.on("join" | "leave", {channel, info: {user, client, connInfo, chanInfo}})
 *   sub.publish(data), sub.presence() -> {clients: {ID: info}}, sub.presenceStats()
 *   -> {numClients, numUsers}, sub.history(opts) -> {publications, offset, epoch},
 *   sub.unsubscribe(), sub.subscribe(), sub.state, sub.offset, sub.epoch;
 *   c.getSubscription(channel), c.removeSubscription(sub).
 * Behaviour:
 * - Reconnects after network errors and close codes 3000-3499 / 4000-4499
 *   with exponential backoff and full jitter: attempt n waits a random time in
 *   [0, min(maxReconnectDelay, minReconnectDelay * 2^n)]. Codes 3500-3999,
 *   4500-4999 and 1009 are terminal ("disconnected"). A browser `online`
 *   event cuts the wait short.
 * - On reconnect every subscription is sent again; with `recover: true` it
 *   asks for what it missed since the last offset/epoch it saw. Recovered
 *   publications come as `publication` events after `subscribed`. No offset
 *   is delivered twice: a publication not above the last offset seen in the
 *   same epoch is dropped (counted in sub.duplicatesDropped).
 * - Answers the server's ping `{}` with `{}` when told `pong: true`; reconnects
 *   when no ping comes for ping + maxServerPingDelay. Commands issued in one
 *   tick go out in one frame, separated by "\n"; frames in are split alike.
 * - Error 109 on connect or subscribe gets a new token from getToken and
 *   retries; an expiring connection token is refreshed before it expires.
 * - Our own codes beside the server's: 0 disconnect called, 1 transport
 *   closed, 2 no ping, 3 timeout, 4 unauthorized (getToken gave no token),
 *   5 connection closed (a call was in flight).
 */
(function (root) {
  "use strict";

  const VERSION = "0.1.0";
  const MAX_TIMER = 2147483647;

  /** Full-jitter exponential backoff: a random delay in [0, ceiling]. */
  function backoff(attempt, min, max, random) {
    const ceiling = Math.min(max, min * Math.pow(2, Math.min(attempt, 30)));
    return Math.floor((random || Math.random)() * ceiling);
  }

  /** The messages of a text frame: its non-empty lines. */
  const splitFrame = (text) => String(text).split("\n").filter((line) => line.trim() !== "");
  /** Splits a text frame into its JSON messages (throws on a bad one). */
  const parseFrame = (text) => splitFrame(text).map((line) => JSON.parse(line));

  /** Whether a close or disconnect code lets the client reconnect. */
  function reconnects(code) {
    return !((code >= 3500 && code < 4000) || (code >= 4500 && code < 5000) || code === 1009);
  }

  const clientInfo = (i) =>
    i && { user: i.user || "", client: i.client || "", connInfo: i.conn_info, chanInfo: i.chan_info };
  const publicationContext = (channel, p) =>
    ({ channel, data: p.data, info: clientInfo(p.info), offset: p.offset || 0, tags: p.tags, time: p.time });

  /** A tiny event emitter; a throwing handler does not stop the others. */
  class Emitter {
    constructor() { this._handlers = new Map(); }
    on(event, fn) { this._handlers.set(event, (this._handlers.get(event) || []).concat(fn)); return this; }
    off(event, fn) {
      this._handlers.set(event, fn ? (this._handlers.get(event) || []).filter((f) => f !== fn) : []);
      return this;
    }
    once(event, fn) { const w = (ctx) => { this.off(event, w); fn(ctx); }; return this.on(event, w); }
    emit(event, ctx) {
      for (const fn of this._handlers.get(event) || []) {
        try { fn(ctx); } catch (e) { setTimeout(() => { throw e; }); }
      }
    }
  }

  class Duplex extends Emitter {
    constructor(url, options) {
      super();
      this.url = url;
      this.options = Object.assign({
        name: "duplex.js", version: VERSION, minReconnectDelay: 500, maxReconnectDelay: 20000,
        timeout: 10000, maxServerPingDelay: 10000, websocket: root.WebSocket,
      }, options || {});
      this.state = "disconnected";
      this.client = null; // this connection's id, from the connect reply
      this._token = this.options.token || "";
      this._needToken = !this._token;
      this._ws = null;
      this._generation = 0; // bumped per transport, so late callbacks of old ones are ignored
      this._nextId = 1;
      this._calls = new Map(); // id -> {callback, timer}
      this._outbox = []; // messages for the next frame
      this._waiting = []; // calls made while connecting
      this._subs = new Map();
      this._attempt = 0;
      this._timers = { reconnect: null, ping: null, refresh: null, open: null };
      this._pingInterval = 0;
      this._pong = false;
      if (typeof root.addEventListener === "function") {
        root.addEventListener("online", () => {
          if (this.state === "connecting" && this._timers.reconnect !== null) {
            this._clear("reconnect");
            this._open();
          }
        });
      }
    }

    connect() {
      if (this.state !== "disconnected") return;
      this._attempt = 0;
      this._setState("connecting", { code: 0, reason: "connect called" });
      this._open();
    }

    disconnect() { if (this.state !== "disconnected") this._drop(0, "disconnect called", false); }

    subscribe(channel, options) {
      if (!this._subs.has(channel)) this._subs.set(channel, new Subscription(this, channel, options || {}));
      const sub = this._subs.get(channel);
      sub.subscribe();
      return sub;
    }

    getSubscription(channel) { return this._subs.get(channel) || null; }

    removeSubscription(sub) {
      if (sub) sub.unsubscribe();
      if (sub && this._subs.get(sub.channel) === sub) this._subs.delete(sub.channel);
    }

    publish(channel, data) { return this._call("publish", { channel, data }); }
    presence(channel) {
      return this._call("presence", { channel }).then((r) => ({
        clients: Object.fromEntries(Object.entries(r.presence || {}).map(([id, info]) => [id, clientInfo(info)])),
      }));
    }
    presenceStats(channel) {
      return this._call("presence_stats", { channel })
        .then((r) => ({ numClients: r.num_clients || 0, numUsers: r.num_users || 0 }));
    }
    history(channel, options) {
      const o = options || {};
      const req = { channel };
      if (o.limit !== undefined) req.limit = o.limit;
      if (o.since) req.since = { offset: o.since.offset || 0, epoch: o.since.epoch || "" };
      if (o.reverse) req.reverse = true;
      return this._call("history", req).then((r) => ({
        publications: (r.publications || []).map((p) => publicationContext(channel, p)),
        offset: r.offset || 0, epoch: r.epoch || "",
      }));
    }
    rpc(method, data) { return this._call("rpc", { method, data }).then((r) => ({ data: r.data })); }
    send(data) { if (this.state === "connected") this._enqueue({ send: { data } }); return this.state === "connected"; }

    _setState(state, ctx) {
      if (this.state === state) return;
      this.state = state;
      this.emit(state, ctx);
    }

    _clear(name) { clearTimeout(this._timers[name]); this._timers[name] = null; }

    /** (Re)arms timer `name`: `fn` runs after `ms` unless cleared first. */
    _after(name, ms, fn) {
      this._clear(name);
      this._timers[name] = setTimeout(() => { this._timers[name] = null; fn(); }, Math.min(ms, MAX_TIMER));
    }

    _scheduleReconnect() {
      const o = this.options;
      this._after("reconnect", backoff(this._attempt++, o.minReconnectDelay, o.maxReconnectDelay), () => {
        if (this.state === "connecting") this._open();
      });
    }

    async _open() {
      const generation = ++this._generation;
      if (this._needToken && this.options.getToken) {
        let token;
        try { token = await this.options.getToken(); } catch (error) {
          if (generation !== this._generation || this.state !== "connecting") return;
          this.emit("error", { type: "getToken", error });
          return this._scheduleReconnect();
        }
        if (generation !== this._generation || this.state !== "connecting") return;
        if (!token) { this._drop(4, "unauthorized", false); return; }
        this._token = token;
        this._needToken = false;
      }
      let ws;
      try { ws = new this.options.websocket(this.url); } catch (error) {
        this.emit("error", { type: "transport", error });
        return this._scheduleReconnect();
      }
      this._ws = ws;
      // Not open and connected within the timeout: try again.
      this._after("open", this.options.timeout, () => this._drop(3, "connect timeout", true));
      ws.onopen = () => { if (ws === this._ws) this._sendConnect(); };
      ws.onmessage = (event) => { if (ws === this._ws) this._onFrame(event.data); };
      ws.onerror = () => {}; // onclose follows with the details
      ws.onclose = (event) => {
        if (ws !== this._ws) return;
        this._ws = null;
        let code = event.code || 0;
        let reason = event.reason || "";
        const reconnect = reconnects(code);
        if (code === 1009) reason = reason || "message too big";
        else if (code < 3000) { code = 1; reason = "transport closed"; }
        if (code === 3005) this._needToken = true; // connection expired: get a new token
        this._gone(code, reason, reconnect);
      };
    }

    /** Closes the transport ourselves, then handles it as gone. */
    _drop(code, reason, reconnect) {
      const ws = this._ws;
      this._ws = null;
      this._generation++;
      if (ws) {
        ws.onopen = ws.onmessage = ws.onclose = null;
        try { ws.close(1000); } catch (e) { /* already closing */ }
      }
      this._gone(code, reason, reconnect);
    }

    /** The connection is gone: fail calls in flight, then reconnect or stop. */
    _gone(code, reason, reconnect) {
      for (const name of ["ping", "open", "refresh"]) this._clear(name);
      this._outbox = [];
      const calls = this._calls;
      this._calls = new Map();
      for (const call of calls.values()) {
        clearTimeout(call.timer);
        call.callback({ code: 5, message: "connection closed" });
      }
      for (const sub of this._subs.values()) sub._onDisconnect(code, reason);
      if (reconnect) {
        this._setState("connecting", { code, reason });
        return this._scheduleReconnect();
      }
      this._clear("reconnect");
      for (const w of this._waiting.splice(0)) { clearTimeout(w.timer); w.reject({ code, message: reason }); }
      this._setState("disconnected", { code, reason });
    }

    _sendConnect() {
      const o = this.options;
      const req = { name: o.name, version: o.version };
      if (this._token) req.token = this._token;
      if (o.data !== undefined) req.data = o.data;
      this._send({ connect: req }, (error, reply) =>
        (error ? this._onConnectError(error) : this._onConnected(reply.connect || {})));
    }

    _onConnectError(error) {
      if (this.state !== "connecting") return;
      if (error.code === 109) this._needToken = true;
      const retry = error.code === 109 || error.code < 100 || error.temporary === true;
      if (retry) this.emit("error", { type: "connect", error });
      this._drop(error.code, error.message, retry);
    }

    _onConnected(result) {
      this._clear("open");
      this._attempt = 0;
      this.client = result.client || null;
      this._pingInterval = result.ping || 0;
      this._pong = result.pong === true;
      if (result.expires) this._scheduleRefresh(result.ttl);
      this.state = "connected";
      for (const sub of this._subs.values()) sub._start(); // all in one frame
      this.emit("connected", { client: this.client, data: result.data });
      for (const w of this._waiting.splice(0)) { clearTimeout(w.timer); w.go(); }
      this._watchPing();
    }

    _watchPing() {
      this._clear("ping");
      if (this.state !== "connected" || !this._pingInterval || !this.options.maxServerPingDelay) return;
      const wait = this._pingInterval * 1000 + this.options.maxServerPingDelay;
      this._after("ping", wait, () => this._drop(2, "no ping", true));
    }

    _scheduleRefresh(ttl) { this._after("refresh", (ttl || 0) * 1000, () => this._refresh()); }

    async _refresh() {
      if (!this.options.getToken) return; // the server will close with 3005; we reconnect
      const generation = this._generation;
      const retryLater = (error, type) => {
        this.emit("error", { type, error });
        this._after("refresh", 5000 + Math.random() * 5000, () => this._refresh());
      };
      let token;
      try { token = await this.options.getToken(); } catch (error) {
        if (generation === this._generation && this.state === "connected") retryLater(error, "refreshToken");
        return;
      }
      if (generation !== this._generation || this.state !== "connected") return;
      if (!token) { this._drop(4, "unauthorized", false); return; }
      this._token = token;
      this._send({ refresh: { token } }, (error, reply) => {
        if (!error) {
          if (reply.refresh && reply.refresh.expires) this._scheduleRefresh(reply.refresh.ttl);
        } else if (error.code < 100 || error.temporary) {
          retryLater(error, "refresh");
        } else {
          this._drop(error.code, error.message, false);
        }
      });
    }

    /** Sends a command now (in this tick's frame); `callback(error, reply)`. */
    _send(message, callback) {
      const id = this._nextId++;
      const timer = setTimeout(() => {
        if (this._calls.delete(id)) callback({ code: 3, message: "timeout" });
      }, this.options.timeout);
      this._calls.set(id, { callback, timer });
      this._enqueue(Object.assign({ id }, message));
    }

    _enqueue(message) {
      this._outbox.push(message);
      if (this._outbox.length === 1) queueMicrotask(() => this._flush());
    }

    _flush() {
      const batch = this._outbox;
      this._outbox = [];
      if (batch.length === 0 || !this._ws || this._ws.readyState !== 1) return;
      try { this._ws.send(batch.map((m) => JSON.stringify(m)).join("\n")); } catch (error) {
        this._drop(1, "transport closed", true);
      }
    }

    /** A public call: waits for the connection, resolves with the result. */
    _call(method, body) {
      return new Promise((resolve, reject) => {
        const go = () => this._send({ [method]: body }, (error, reply) =>
          (error ? reject(error) : resolve(reply[method] || {})));
        if (this.state === "connected") return go();
        if (this.state === "disconnected") return reject({ code: 5, message: "disconnected" });
        const w = { go, reject, timer: null };
        w.timer = setTimeout(() => {
          this._waiting = this._waiting.filter((x) => x !== w);
          reject({ code: 3, message: "timeout" });
        }, this.options.timeout);
        this._waiting.push(w);
      });
    }

    _onFrame(text) {
      for (const line of splitFrame(text)) {
        let message;
        try { message = JSON.parse(line); } catch (error) {
          this.emit("error", { type: "protocol", error });
          continue;
        }
        this._onMessage(message);
        if (this._ws === null) return; // the message closed the connection
      }
    }

    _onMessage(m) {
      if (m.id) {
        const call = this._calls.get(m.id);
        if (!call) return;
        this._calls.delete(m.id);
        clearTimeout(call.timer);
        call.callback(m.error || null, m.error ? null : m);
      } else if (m.push) {
        this._onPush(m.push);
      } else if (Object.keys(m).length === 0) { // the server's ping
        if (this._pong) this._enqueue({});
        this._watchPing();
      }
    }

    _onPush(push) {
      const channel = push.channel || "";
      const sub = this._subs.get(channel);
      if (push.disconnect) {
        // Like the Centrifugo SDKs, the code decides (its `reconnect` agrees).
        const code = push.disconnect.code || 0;
        this._drop(code, push.disconnect.reason || "", reconnects(code));
      } else if (push.message) {
        this.emit("message", { data: push.message.data });
      } else if (push.refresh) {
        if (push.refresh.expires) this._scheduleRefresh(push.refresh.ttl);
      } else if (sub) {
        sub._onPush(push);
      }
    }
  }

  class Subscription extends Emitter {
    constructor(client, channel, options) {
      super();
      this.client = client;
      this.channel = channel;
      this.options = options;
      this.state = "unsubscribed";
      this.offset = 0; // the last offset seen in `epoch`
      this.epoch = "";
      this.recoverable = false;
      this.duplicatesDropped = 0;
      this._token = options.token || "";
      this._needToken = !this._token;
      this._attempt = 0;
      this._gen = 0;
      this._inflight = false;
      this._lost = false; // the server said our position is unrecoverable (112)
      this._timer = null;
    }

    subscribe() {
      if (this.state !== "unsubscribed") return;
      this._attempt = 0;
      this._setState("subscribing", { code: 0, reason: "subscribe called" });
      this._start();
    }

    unsubscribe() {
      if (this.state === "unsubscribed") return;
      const active = this.state === "subscribed" || this._inflight;
      this._reset();
      this._setState("unsubscribed", { code: 0, reason: "unsubscribe called" });
      if (active && this.client.state === "connected") {
        this.client._send({ unsubscribe: { channel: this.channel } }, () => {});
      }
    }

    publish(data) { return this.client.publish(this.channel, data); }
    presence() { return this.client.presence(this.channel); }
    presenceStats() { return this.client.presenceStats(this.channel); }
    history(options) { return this.client.history(this.channel, options); }

    _setState(state, ctx) {
      if (this.state === state) return;
      this.state = state;
      this.emit(state, Object.assign({ channel: this.channel }, ctx));
    }

    /** Forgets anything in flight or scheduled (the position stays). */
    _reset() {
      this._gen++;
      this._inflight = false;
      clearTimeout(this._timer);
      this._timer = null;
    }

    _onDisconnect(code, reason) {
      if (this.state !== "unsubscribed") { this._reset(); this._setState("subscribing", { code, reason }); }
    }

    /** Sends the subscribe command if subscribing and connected. */
    async _start() {
      if (this.state !== "subscribing" || this.client.state !== "connected" || this._inflight) return;
      this._inflight = true;
      const gen = ++this._gen;
      const o = this.options;
      if (o.getToken && this._needToken) {
        let token;
        try { token = await o.getToken({ channel: this.channel }); } catch (error) {
          if (gen !== this._gen) return;
          this._inflight = false;
          this.emit("error", { type: "subscribeToken", error });
          return this._scheduleResubscribe();
        }
        if (gen !== this._gen) return;
        if (!token) { this._fail({ code: 4, message: "unauthorized" }); return; }
        this._token = token;
        this._needToken = false;
        if (this.client.state !== "connected") { this._inflight = false; return; }
      }
      const req = { channel: this.channel };
      if (this._token) req.token = this._token;
      if (o.data !== undefined) req.data = o.data;
      if (o.recover) req.recoverable = true;
      if (o.joinLeave) req.join_leave = true;
      if (o.positioned) req.positioned = true;
      if (o.recover && this.recoverable && !this._lost) {
        Object.assign(req, { recover: true, offset: this.offset, epoch: this.epoch });
      }
      this.client._send({ subscribe: req }, (error, reply) => {
        if (gen !== this._gen) return;
        this._inflight = false;
        return error ? this._onError(error) : this._onSubscribed(reply.subscribe || {});
      });
    }

    _onSubscribed(r) {
      const wasRecovering = r.was_recovering === true || this._lost;
      const recovered = r.recovered === true && !this._lost;
      this._lost = false;
      this._attempt = 0;
      if (!r.epoch || r.epoch !== this.epoch) {
        // A stream we have seen nothing of yet (first subscribe, history
        // lost, or no position given): nothing in it counts as seen.
        this.epoch = r.epoch || "";
        this.offset = 0;
      }
      this.recoverable = r.recoverable === true;
      this._setState("subscribed", {
        recoverable: this.recoverable, positioned: r.positioned === true,
        streamPosition: { offset: r.offset || 0, epoch: r.epoch || "" },
        wasRecovering, recovered, data: r.data,
      });
      for (const p of r.publications || []) this._onPublication(p);
      if (r.offset && r.offset > this.offset) this.offset = r.offset;
    }

    _onError(error) {
      // Timed out: the server may still subscribe us; start afresh.
      if (error.code === 3) return this.client._drop(3, "subscribe timeout", true);
      if (error.code === 109) this._needToken = true;
      if (error.code === 112) { this._lost = true; this.offset = 0; this.epoch = ""; }
      if (error.code === 109 || error.code === 112 || error.code < 100 || error.temporary === true) {
        this.emit("error", { type: "subscribe", error });
        this._scheduleResubscribe();
      } else {
        this._fail(error);
      }
    }

    _fail(error) { this._reset(); this._setState("unsubscribed", { code: error.code, reason: error.message }); }

    _scheduleResubscribe() {
      clearTimeout(this._timer);
      this._timer = setTimeout(() => { this._timer = null; this._start(); }, backoff(this._attempt++, 500, 20000));
    }

    _onPush(push) {
      if (push.unsubscribe && this.state !== "unsubscribed") this._onUnsubscribePush(push.unsubscribe);
      if (this.state !== "subscribed") return;
      if (push.pub) this._onPublication(push.pub);
      else if (push.join) this.emit("join", { channel: this.channel, info: clientInfo(push.join.info) });
      else if (push.leave) this.emit("leave", { channel: this.channel, info: clientInfo(push.leave.info) });
    }

    _onUnsubscribePush(u) {
      const code = u.code || 0;
      if (code === 2501) this._needToken = true; // subscription token expired
      this._reset();
      if (code >= 2500) {
        this._setState("subscribing", { code, reason: u.reason || "" });
        this._start();
      } else {
        this._setState("unsubscribed", { code, reason: u.reason || "" });
      }
    }

    _onPublication(p) {
      if (p.offset && this.offset && p.offset <= this.offset) { this.duplicatesDropped++; return; }
      if (p.offset) this.offset = p.offset;
      this.emit("publication", publicationContext(this.channel, p));
    }
  }

  Duplex.Duplex = Duplex;
  Duplex.Subscription = Subscription;
  Duplex.backoff = backoff;
  Duplex.parseFrame = parseFrame;
  Duplex.reconnects = reconnects;
  Duplex.VERSION = VERSION;

  if (typeof module === "object" && module && module.exports) module.exports = Duplex;
  else root.Duplex = Duplex;
})(typeof globalThis !== "undefined" ? globalThis : this);
