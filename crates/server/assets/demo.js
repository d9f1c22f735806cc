// The demo page served at `/` by `duplex serve --dev`: a chat room on the
// channel `chat` (messages, who is online from presence + join/leave) and a
// notifications panel on `notifications` that shows what a backend publishes
// through the server API. Uses window.Duplex from /duplex.js.
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const NICK_KEY = "duplex-demo-nick";
  const wsUrl = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/connection/websocket";
  const state = { client: null, nick: "", chat: null, notifications: null, online: new Map() };
  window.demo = state; // for the browser test and for poking around in the console

  // ---- small helpers ----

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k.startsWith("data-")) node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  function clock(ms) {
    return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  function nameOf(info) {
    if (!info) return "";
    const ci = info.connInfo;
    return (ci && typeof ci.name === "string" && ci.name) || info.user || "anonymous";
  }

  function show(node, visible) { node.hidden = !visible; }

  function setStatus(kind, text) {
    $("status").dataset.state = kind;
    $("status-text").textContent = text;
  }

  async function fetchToken(user) {
    const res = await fetch("/dev/token", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user, info: { name: user } }),
    });
    if (!res.ok) throw new Error("/dev/token answered " + res.status + ": " + (await res.text()).trim());
    const body = await res.json();
    return body.token;
  }

  // ---- a feed: a subscription's publications in a list, once each, in order ----

  class Feed {
    constructor(sub, list, empty, note, render) {
      this.sub = sub;
      this.list = list;
      this.empty = empty;
      this.note = note;
      this.render = render;
      this.seen = new Set(); // "epoch:offset" of what is shown
      this.recovering = null;
      sub.on("publication", (ctx) => {
        this.add(ctx, this.sub.epoch);
        if (this.recovering) this.recovering.count++;
      });
      sub.on("subscribing", (ctx) => {
        if (ctx.code !== 0) this.setNote("waiting for the connection…", "waiting");
      });
      sub.on("subscribed", (ctx) => this.onSubscribed(ctx));
    }

    onSubscribed(ctx) {
      if (!ctx.wasRecovering) {
        this.setNote("", "live");
        this.loadHistory();
      } else if (ctx.recovered) {
        // Missed publications follow this event synchronously: count them.
        const r = (this.recovering = { count: 0 });
        queueMicrotask(() => {
          this.recovering = null;
          const what = r.count === 0 ? "nothing was missed"
            : (r.count === 1 ? "1 missed message" : r.count + " missed messages") + " recovered";
          this.setNote("reconnected: " + what, "recovered", r.count);
        });
      } else {
        this.setNote("reconnected: history was lost, reloaded what is left", "reloaded");
        this.loadHistory();
      }
    }

    setNote(text, kind, count) {
      this.note.textContent = text;
      this.note.dataset.state = kind;
      if (count !== undefined) this.note.dataset.count = String(count);
    }

    async loadHistory() {
      try {
        const h = await this.sub.history({ limit: 50 });
        for (const p of h.publications) this.add(p, h.epoch);
      } catch (e) {
        // History is off for the channel, or the connection went: live only.
      }
    }

    add(pub, epoch) {
      const key = pub.offset ? epoch + ":" + pub.offset : null;
      if (key !== null) {
        if (this.seen.has(key)) return;
        this.seen.add(key);
      }
      const item = this.render(pub);
      item.dataset.offset = String(pub.offset || 0);
      item.dataset.epoch = epoch || "";
      // Keep offset order within an epoch (history may land after live ones).
      let before = null;
      if (pub.offset) {
        for (const other of this.list.children) {
          if (other.dataset.epoch === item.dataset.epoch && Number(other.dataset.offset) > pub.offset) {
            before = other;
            break;
          }
        }
      }
      this.list.insertBefore(item, before);
      show(this.empty, false);
      if (!before) this.list.scrollTop = this.list.scrollHeight;
    }
  }

  // ---- rendering ----

  function renderMessage(pub) {
    const d = pub.data && typeof pub.data === "object" ? pub.data : { text: String(pub.data) };
    const who = nameOf(pub.info) || (typeof d.nick === "string" && d.nick) || "backend";
    const when = pub.time || (typeof d.ts === "number" ? d.ts : Date.now());
    const text = typeof d.text === "string" ? d.text : JSON.stringify(pub.data);
    const mine = pub.info && pub.info.user === state.nick;
    return el("li", { class: mine ? "msg mine" : "msg", "data-testid": "message", "data-nick": who },
      el("time", { class: "time", dateTime: new Date(when).toISOString() }, clock(when)),
      el("span", { class: "nick" }, who),
      el("span", { class: "text" }, text));
  }

  function renderNotification(pub) {
    const d = pub.data;
    let title = "";
    let text;
    if (d && typeof d === "object") {
      title = typeof d.title === "string" ? d.title : "";
      const body = d.text !== undefined ? d.text : d.body !== undefined ? d.body : d.message;
      text = typeof body === "string" ? body : title && body === undefined ? "" : JSON.stringify(d);
    } else {
      text = typeof d === "string" ? d : JSON.stringify(d);
    }
    const when = pub.time || Date.now();
    return el("li", { class: "note-item", "data-testid": "notification" },
      el("time", { class: "time", dateTime: new Date(when).toISOString() }, clock(when)),
      title ? el("strong", { class: "title" }, title) : null,
      el("span", { class: "text" }, text),
      el("span", { class: "offset", title: "offset in the channel's stream" }, "#" + (pub.offset || 0)));
  }

  function renderOnline() {
    const users = new Map(); // user -> {name, tabs}
    for (const info of state.online.values()) {
      const u = users.get(info.user) || { name: nameOf(info), tabs: 0 };
      u.tabs++;
      users.set(info.user, u);
    }
    const list = $("online");
    list.replaceChildren();
    const sorted = [...users.entries()].sort((a, b) => a[1].name.localeCompare(b[1].name));
    for (const [user, u] of sorted) {
      const me = user === state.nick;
      list.append(el("li", { class: me ? "person me" : "person", "data-testid": "online-user", "data-user": user },
        el("span", { class: "dot", ariaHidden: "true" }),
        el("span", { class: "name" }, u.name),
        me ? el("span", { class: "you" }, "you") : null,
        u.tabs > 1 ? el("span", { class: "tabs" }, u.tabs + " tabs") : null));
    }
    $("online-count").textContent = String(users.size);
  }

  async function refreshPresence() {
    try {
      const { clients } = await state.chat.presence();
      state.online = new Map(Object.entries(clients));
      renderOnline();
      $("online").classList.remove("stale");
    } catch (e) {
      // Presence is off, or the connection went; the next subscribe retries.
    }
  }

  function curlCommand() {
    const body = JSON.stringify({ channel: "notifications", data: { title: "Deploy", text: "v1.2 is live" } });
    return "curl -X POST " + location.origin + "/api/publish \\\n" +
      "  -H 'X-API-Key: YOUR_API_KEY' \\\n" +
      "  -H 'Content-Type: application/json' \\\n" +
      "  -d '" + body + "'";
  }

  // ---- wiring ----

  function start(nick) {
    state.nick = nick;
    $("me-name").textContent = nick;
    show($("me"), true);
    show($("join"), false);
    show($("app"), true);

    const client = new window.Duplex(wsUrl, { name: "duplex-demo", getToken: () => fetchToken(nick) });
    state.client = client;
    client.on("connecting", (ctx) => {
      setStatus("connecting", ctx.code === 0 ? "connecting…" : "reconnecting… (" + ctx.reason + ")");
      $("online").classList.add("stale");
    });
    client.on("connected", () => setStatus("connected", "connected"));
    client.on("disconnected", (ctx) => setStatus("disconnected", "disconnected: " + (ctx.reason || ctx.code)));
    client.on("error", (ctx) => {
      if (ctx.type === "getToken") setStatus("connecting", "cannot get a token, retrying…");
    });

    state.chat = client.subscribe("chat", { recover: true, joinLeave: true });
    new Feed(state.chat, $("messages"), $("messages-empty"), $("chat-note"), renderMessage);
    state.chat.on("subscribed", refreshPresence);
    state.chat.on("join", ({ info }) => { state.online.set(info.client, info); renderOnline(); });
    state.chat.on("leave", ({ info }) => { state.online.delete(info.client); renderOnline(); });

    state.notifications = client.subscribe("notifications", { recover: true });
    new Feed(state.notifications, $("notifications"), $("notifications-empty"), $("notifications-note"),
      renderNotification);

    client.connect();
    $("message").focus();
  }

  $("join-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const nick = $("nick").value.trim();
    if (!nick) return;
    const error = $("join-error");
    show(error, false);
    try {
      await fetchToken(nick); // fail here, on the form, if tokens cannot be had
    } catch (e) {
      error.textContent = "Cannot join: " + e.message;
      show(error, true);
      return;
    }
    try { localStorage.setItem(NICK_KEY, nick); } catch (e) { /* storage may be off */ }
    start(nick);
  });

  $("send-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("message");
    const text = input.value.trim();
    if (!text || !state.chat) return;
    input.value = "";
    show($("send-error"), false);
    try {
      await state.chat.publish({ text, nick: state.nick, ts: Date.now() });
    } catch (e) {
      input.value = input.value || text;
      $("send-error").textContent = "Not sent: " + (e.message || "error " + e.code);
      show($("send-error"), true);
    }
  });

  $("leave").addEventListener("click", () => {
    if (state.client) state.client.disconnect();
    try { localStorage.removeItem(NICK_KEY); } catch (e) { /* ignore */ }
    location.reload();
  });

  $("copy-curl").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText($("curl").textContent);
      $("copy-curl").textContent = "copied";
    } catch (e) {
      window.getSelection().selectAllChildren($("curl"));
    }
    setTimeout(() => { $("copy-curl").textContent = "copy"; }, 1500);
  });

  $("curl").textContent = curlCommand();
  try { $("nick").value = localStorage.getItem(NICK_KEY) || ""; } catch (e) { /* ignore */ }
  $("nick").focus();
})();
