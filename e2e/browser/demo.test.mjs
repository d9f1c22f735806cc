// Browser end-to-end test of the demo page (`duplex serve --dev`) and
// duplex.js, in Debian's chromium driven by playwright-core.
//
// One scenario, in steps that run in order (a step after a failed one is
// skipped, so the report says exactly what ran):
//   two people join the chat and see each other's messages and presence;
//   a backend's publication through POST /api/publish shows in the
//   notifications panel; one page loses its connection (offline + the API
//   disconnects it) while the other and the backend publish, and recovers
//   what it missed when back; the server is stopped with SIGTERM and started
//   again on the same data dir, both pages reconnect by themselves, and what
//   was published through the API and by the other page while they were
//   away shows up exactly once.
//
// Environment (run.sh sets it): DUPLEX_BIN (the server binary),
// DUPLEX_E2E_STORAGE (`sqlite`, the default, or `memory`: then the server
// forgets history on restart, and the restart step checks that the pages
// notice and reload it instead of recovering), CHROMIUM (default
// /usr/bin/chromium), DUPLEX_E2E_OUTPUT (screenshots and server logs).
import test from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, openSync, readFileSync, rmSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BIN = process.env.DUPLEX_BIN || path.join(HERE, "../../target/debug/duplex");
const STORAGE = process.env.DUPLEX_E2E_STORAGE || "sqlite";
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const OUTPUT = process.env.DUPLEX_E2E_OUTPUT || path.join(HERE, "output");
const API_KEY = "e2e-api-key";
const TOKEN_SECRET = "e2e-token-secret-e2e-token-secret";
const WAIT = 20000; // ms for anything the page should show
const RECONNECT_WAIT = 40000; // ms for a page to come back (backoff is capped at 20 s)
const PING_INTERVAL_S = 2; // the server pings this often here (default 25 s) ...
const PONG_TIMEOUT_S = 1; // ... and closes with 3012 without a pong within this

// ---------------------------------------------------------------- the server

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

class Server {
  constructor(port, dataDir) {
    this.port = port;
    this.dataDir = dataDir;
    this.base = `http://127.0.0.1:${port}`;
    this.proc = null;
    this.starts = 0;
  }

  async start() {
    this.starts++;
    const storage = STORAGE === "memory" ? "memory" : `sqlite:${path.join(this.dataDir, "db.sqlite3")}`;
    const args = ["serve", "--dev", "--listen", `127.0.0.1:${this.port}`, "--data-dir", this.dataDir,
      "--storage", storage, "--api-key", API_KEY, "--token-secret", TOKEN_SECRET];
    this.log = path.join(OUTPUT, `server-${this.starts}.log`);
    const out = openSync(this.log, "w");
    // Our DUPLEX_* settings are not the server's (it warns about unknown ones).
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("DUPLEX_")));
    env.DUPLEX_CLIENT_PING_INTERVAL = `${PING_INTERVAL_S}s`;
    env.DUPLEX_CLIENT_PONG_TIMEOUT = `${PONG_TIMEOUT_S}s`;
    this.proc = spawn(BIN, args, { stdio: ["ignore", out, out], env });
    this.exited = new Promise((resolve) => this.proc.once("exit", (code, signal) => resolve({ code, signal })));
    const deadline = Date.now() + 20000;
    for (;;) {
      const gone = await Promise.race([this.exited, new Promise((r) => setTimeout(() => r(null), 100))]);
      if (gone) {
        const tail = readFileSync(this.log, "utf8").trim().split("\n").slice(-5).join("\n    ");
        throw new Error(`duplex exited at start (code ${gone.code}); ${this.log} ends with:\n    ${tail}`);
      }
      try {
        const res = await fetch(`${this.base}/health`);
        if (res.status === 200) return;
      } catch (e) { /* not listening yet */ }
      if (Date.now() > deadline) throw new Error(`duplex did not answer /health within 20 s; see ${this.log}`);
    }
  }

  /** SIGTERM; resolves with the exit status. */
  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return { code: this.proc && this.proc.exitCode };
    this.proc.kill("SIGTERM");
    const timer = new Promise((r) => setTimeout(() => r(null), 20000));
    const status = await Promise.race([this.exited, timer]);
    if (!status) {
      this.proc.kill("SIGKILL");
      throw new Error(`duplex did not exit within 20 s of SIGTERM; see ${this.log}`);
    }
    return status;
  }

  async api(method, body) {
    const res = await fetch(`${this.base}/api/${method}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-API-Key": API_KEY },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    assert.equal(res.status, 200, `POST /api/${method} answered ${res.status}: ${text}`);
    const reply = JSON.parse(text);
    assert.ok(!reply.error, `POST /api/${method} gave an error: ${text}`);
    return reply.result;
  }
}

// ---------------------------------------------------------------- the pages

class Person {
  constructor(name, context, page) {
    this.name = name;
    this.context = context;
    this.page = page;
    this.errors = [];
    page.on("pageerror", (e) => this.errors.push(`page error: ${e.message}`));
    page.on("console", (m) => {
      // Chromium logs failed WebSocket handshakes while the server is down: expected.
      if (m.type() === "error" && !/WebSocket connection to .* failed/.test(m.text())) {
        this.errors.push(`console error: ${m.text()}`);
      }
    });
  }

  status() { return this.page.getAttribute("[data-testid=status]", "data-state"); }

  async waitStatus(state, timeout = WAIT) {
    await this.page.waitForSelector(`[data-testid=status][data-state="${state}"]`, { timeout })
      .catch(async () => {
        throw new Error(`${this.name}: status is "${await this.status()}" ` +
          `("${await this.page.textContent("[data-testid=status-text]")}"), wanted "${state}" within ${timeout} ms`);
      });
  }

  /** Texts of the chat messages shown, in order. */
  messages() {
    return this.page.$$eval("[data-testid=message] .text", (els) => els.map((e) => e.textContent));
  }

  notifications() {
    return this.page.$$eval("[data-testid=notification] .text", (els) => els.map((e) => e.textContent));
  }

  online() {
    return this.page.$$eval("[data-testid=online-user]", (els) => els.map((e) => e.dataset.user).sort());
  }

  async waitFor(what, read, check, timeout = WAIT) {
    const deadline = Date.now() + timeout;
    let last;
    for (;;) {
      last = await read();
      if (check(last)) return last;
      if (Date.now() > deadline) {
        throw new Error(`${this.name}: ${what} not seen within ${timeout} ms; last seen: ${JSON.stringify(last)}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  waitMessage(text, timeout) {
    return this.waitFor(`message "${text}"`, () => this.messages(), (m) => m.includes(text), timeout);
  }

  waitNotification(text, timeout) {
    return this.waitFor(`notification "${text}"`, () => this.notifications(), (n) => n.includes(text), timeout);
  }

  async say(text) {
    await this.page.fill("[data-testid=message-input]", text);
    await this.page.click("[data-testid=send-button]");
  }

  note(panel) {
    const id = panel === "chat" ? "chat-recovery" : "notifications-recovery";
    return this.page.$eval(`[data-testid=${id}]`,
      (e) => ({ state: e.dataset.state || "", count: e.dataset.count, text: e.textContent }));
  }
}

function count(list, text) { return list.filter((t) => t === text).length; }

function assertOnce(person, list, texts, where) {
  for (const t of texts) {
    assert.equal(count(list, t), 1, `${person.name}: "${t}" should be shown once in ${where}, ` +
      `is shown ${count(list, t)} times; all: ${JSON.stringify(list)}`);
  }
}

// ---------------------------------------------------------------- the scenario

test("demo page: chat, presence, notifications, reconnect and recovery", { timeout: 300000 }, async (t) => {
  mkdirSync(OUTPUT, { recursive: true });
  assert.ok(existsSync(BIN), `no server binary at ${BIN} (build it, or set DUPLEX_BIN)`);
  assert.ok(existsSync(CHROMIUM), `no chromium at ${CHROMIUM} (apt-get install -y chromium)`);
  const dataDir = mkdtempSync(path.join(tmpdir(), "duplex-e2e-browser-"));
  const server = new Server(await freePort(), dataDir);
  let browser = null;
  const people = {};
  let failed = false;
  const step = (name, fn) => t.test(name, async (s) => {
    if (failed) { s.skip("an earlier step failed"); return; }
    try { await fn(); } catch (e) { failed = true; throw e; }
  });
  t.after(async () => {
    if (browser) await browser.close().catch(() => {});
    await server.stop().catch(() => {});
    rmSync(dataDir, { recursive: true, force: true });
  });

  await step(`server starts (--dev, storage ${STORAGE}) and serves the page and duplex.js`, async () => {
    await server.start();
    const page = await fetch(`${server.base}/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /data-testid="join"/);
    const js = await fetch(`${server.base}/duplex.js`);
    assert.equal(js.status, 200);
    assert.match(js.headers.get("content-type") || "", /javascript/);
  });

  await step("two people join with their nicknames and get connected", async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      // playwright-core gives every launch a fresh, empty --user-data-dir itself.
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    for (const name of ["alice", "bob"]) {
      const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
      const page = await context.newPage();
      const person = new Person(name, context, page);
      people[name] = person;
      await page.goto(`${server.base}/`);
      await page.fill("[data-testid=nick-input]", name);
      await page.click("[data-testid=join-button]");
      await person.waitStatus("connected");
      assert.equal(await page.textContent("[data-testid=me-name]"), name);
      // Count reconnects from here on.
      await page.evaluate(() => {
        window.reconnects = 0;
        window.demo.client.on("connecting", () => { window.reconnects++; });
      });
    }
  });

  await step("each sees both in the who-is-online list", async () => {
    for (const p of [people.alice, people.bob]) {
      await p.waitFor("alice and bob online", () => p.online(), (o) => o.join() === "alice,bob");
      assert.equal(await p.page.textContent("[data-testid=online-count]"), "2");
    }
  });

  await step("each sees the other's messages, with nickname and time", async () => {
    const { alice, bob } = people;
    await alice.say("hello from alice");
    await bob.waitMessage("hello from alice");
    await alice.waitMessage("hello from alice");
    await bob.say("hi alice, bob here");
    await alice.waitMessage("hi alice, bob here");
    const row = await alice.page.$eval("[data-testid=message]:last-child", (li) => ({
      nick: li.querySelector(".nick").textContent, time: li.querySelector(".time").textContent,
    }));
    assert.equal(row.nick, "bob");
    assert.match(row.time, /\d{1,2}:\d{2}/);
  });

  await step("connections stay up across server pings (duplex.js answers them)", async () => {
    await new Promise((r) => setTimeout(r, (3 * PING_INTERVAL_S + PONG_TIMEOUT_S) * 1000));
    for (const p of [people.alice, people.bob]) {
      assert.equal(await p.status(), "connected", `${p.name} should still be connected`);
      assert.equal(await p.page.evaluate(() => window.reconnects), 0, `${p.name} reconnected: pings not answered?`);
    }
  });

  await step("a publication through POST /api/publish appears in the notifications panel", async () => {
    const curl = await people.alice.page.textContent("[data-testid=curl-command]");
    assert.match(curl, /curl -X POST http:\/\/127\.0\.0\.1:\d+\/api\/publish/);
    assert.match(curl, /X-API-Key: YOUR_API_KEY/);
    assert.match(curl, /"channel":"notifications"/);
    const result = await server.api("publish", { channel: "notifications", data: { title: "Deploy", text: "build 1 is live" } });
    assert.ok(result.offset >= 1, `publish result has an offset: ${JSON.stringify(result)}`);
    for (const p of [people.alice, people.bob]) await p.waitNotification("build 1 is live");
  });

  await step("bob loses his connection; what alice and the backend publish meanwhile is recovered once", async () => {
    const { alice, bob } = people;
    await bob.context.setOffline(true);
    await server.api("disconnect", { user: "bob", code: 3011, reason: "force reconnect" });
    await bob.waitStatus("connecting");
    await alice.waitFor("bob gone from the online list", () => alice.online(), (o) => o.join() === "alice");
    await alice.say("while bob was offline");
    await alice.waitMessage("while bob was offline");
    await server.api("publish", { channel: "chat", data: { text: "backend to chat while bob was offline", nick: "backend" } });
    await server.api("publish", { channel: "notifications", data: { text: "notification while bob was offline" } });
    await alice.waitNotification("notification while bob was offline");
    // Still away: nothing new on bob's page.
    assert.equal(await bob.status(), "connecting");
    assert.equal(count(await bob.messages(), "while bob was offline"), 0);
    await bob.context.setOffline(false);
    await bob.waitStatus("connected", RECONNECT_WAIT);
    await bob.waitMessage("backend to chat while bob was offline");
    await bob.waitNotification("notification while bob was offline");
    const chatNote = await bob.note("chat");
    assert.equal(chatNote.state, "recovered", `bob's chat says: ${chatNote.text}`);
    assert.equal(chatNote.count, "2", `bob's chat says: ${chatNote.text}`);
    const notesNote = await bob.note("notifications");
    assert.equal(notesNote.state, "recovered", `bob's notifications say: ${notesNote.text}`);
    assert.equal(notesNote.count, "1", `bob's notifications say: ${notesNote.text}`);
    const messages = await bob.messages();
    assertOnce(bob, messages, ["hello from alice", "hi alice, bob here", "while bob was offline",
      "backend to chat while bob was offline"], "the chat");
    assertOnce(bob, await bob.notifications(), ["build 1 is live", "notification while bob was offline"], "notifications");
    await alice.waitFor("bob back in the online list", () => alice.online(), (o) => o.join() === "alice,bob");
  });

  await step("server stops with SIGTERM (exit 0) and both pages start reconnecting", async () => {
    const status = await server.stop();
    assert.equal(status.code, 0, `duplex exit status after SIGTERM: ${JSON.stringify(status)}; see ${server.log}`);
    for (const p of [people.alice, people.bob]) await p.waitStatus("connecting");
    // Keep them away until the server has had publications they did not see.
    for (const p of [people.alice, people.bob]) await p.context.setOffline(true);
  });

  await step("server restarts on the same data dir; pages come back by themselves and show what they missed once", async () => {
    const { alice, bob } = people;
    await server.start();
    await server.api("publish", { channel: "notifications", data: { title: "Restart", text: "published while everyone was away" } });
    await server.api("publish", { channel: "chat", data: { text: "backend to chat after the restart", nick: "backend" } });
    // They were away for these (offline since before the restart).
    for (const p of [alice, bob]) assert.equal(await p.status(), "connecting", `${p.name} should still be away`);
    await alice.context.setOffline(false);
    await alice.waitStatus("connected", RECONNECT_WAIT);
    await alice.waitNotification("published while everyone was away");
    await alice.waitMessage("backend to chat after the restart");
    await alice.say("alice is back after the restart");
    await alice.waitMessage("alice is back after the restart");
    assert.equal(await bob.status(), "connecting", "bob should still be away");
    await bob.context.setOffline(false);
    await bob.waitStatus("connected", RECONNECT_WAIT);
    await bob.waitMessage("alice is back after the restart");
    await bob.waitNotification("published while everyone was away");
    const expectNote = STORAGE === "memory" ? "reloaded" : "recovered";
    for (const p of [alice, bob]) {
      for (const panel of ["chat", "notifications"]) {
        const note = await p.note(panel);
        assert.equal(note.state, expectNote, `${p.name}'s ${panel} panel says "${note.text}"`);
        if (expectNote === "recovered") {
          // alice missed 1 chat message and 1 notification, bob 2 and 1.
          const missed = panel === "notifications" ? 1 : p === alice ? 1 : 2;
          assert.equal(note.count, String(missed), `${p.name}'s ${panel} panel says "${note.text}"`);
        }
      }
      assertOnce(p, await p.messages(), ["hello from alice", "hi alice, bob here", "while bob was offline",
        "backend to chat while bob was offline", "backend to chat after the restart",
        "alice is back after the restart"], "the chat");
      assertOnce(p, await p.notifications(), ["build 1 is live", "notification while bob was offline",
        "published while everyone was away"], "notifications");
      await p.waitFor("alice and bob online again", () => p.online(), (o) => o.join() === "alice,bob");
    }
  });

  await step("server restarts once more; pages reconnect on their backoff alone and chat goes on", async () => {
    const { alice, bob } = people;
    const status = await server.stop();
    assert.equal(status.code, 0, `duplex exit status after SIGTERM: ${JSON.stringify(status)}; see ${server.log}`);
    for (const p of [alice, bob]) await p.waitStatus("connecting");
    await new Promise((r) => setTimeout(r, 1500)); // a few failed attempts while it is down
    await server.start();
    for (const p of [alice, bob]) await p.waitStatus("connected", RECONNECT_WAIT);
    await bob.say("bob after the second restart");
    await alice.waitMessage("bob after the second restart");
    for (const p of [alice, bob]) {
      await p.waitFor("alice and bob online again", () => p.online(), (o) => o.join() === "alice,bob");
      assertOnce(p, await p.messages(), ["hello from alice", "alice is back after the restart",
        "bob after the second restart"], "the chat");
    }
  });

  await step("duplex.js also loads from an ES module (import sets globalThis.Duplex)", async () => {
    const page = await people.alice.context.newPage();
    await page.goto(`${server.base}/health`);
    const kind = await page.evaluate(async () => {
      await import("/duplex.js");
      return typeof globalThis.Duplex === "function" && typeof globalThis.Duplex.backoff;
    });
    assert.equal(kind, "function");
    await page.close();
  });

  await step("no script errors on the pages; screenshot saved", async () => {
    const shot = path.join(OUTPUT, "demo-bob.png");
    await people.bob.page.screenshot({ path: shot, fullPage: true });
    await people.alice.page.screenshot({ path: path.join(OUTPUT, "demo-alice.png"), fullPage: true });
    console.log(`screenshot: ${shot}`);
    for (const p of [people.alice, people.bob]) {
      const dropped = await p.page.evaluate(() =>
        window.demo.chat.duplicatesDropped + window.demo.notifications.duplicatesDropped);
      if (dropped > 0) console.log(`note: ${p.name}'s duplex.js dropped ${dropped} duplicate publication(s) from the server`);
      assert.deepEqual(p.errors, [], `${p.name}'s page logged errors`);
    }
  });
});
