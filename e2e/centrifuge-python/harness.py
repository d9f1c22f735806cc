"""Test harness for the centrifuge-python end-to-end tests: starts
``duplex serve`` on a free port with a config made for the tests, signs
tokens (HS256 with hmac), calls the server API, records SDK events.

The SDK is asyncio-only; each test runs its coroutine with ``asyncio.run``
(see ``run`` below), so no pytest plugin is needed.
"""

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from centrifuge import Client, ClientEventHandler, SubscriptionEventHandler

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
API_KEY = "e2e-api-key"
SECRET = "e2e-token-secret"
WAIT = 5.0  # seconds to wait for an expected event

# The same namespaces as e2e/centrifuge-js/harness.mjs: `chat` allows a
# subscriber everything (presence, join/leave, history, recovery); `secret`
# needs a subscription token.
CONFIG = """
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
"""

# No proxy from the environment for the API calls (the SDK gets proxy=None).
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, proc, port, log, tmp):
        self.proc = proc
        self.tmp = tmp
        self.port = port
        self.log = log
        self.base = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/connection/websocket"

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """SIGTERM (SIGKILL after 15 s); returns the exit status."""
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.log.closed:
            self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        return self.proc.returncode


def start_server(port=None):
    """Starts `duplex serve` (on `port`, or a free one); returns when /health answers."""
    port = port or free_port()
    tmp = Path(tempfile.mkdtemp(prefix="duplex-e2e-py-"))
    config = tmp / "duplex.toml"
    config.write_text(CONFIG)
    binary = os.environ.get("DUPLEX_BIN") or str(ROOT / "target/debug/duplex")
    args = [
        binary, "serve",
        "--config", str(config),
        "--data-dir", str(tmp),
        "--listen", f"127.0.0.1:{port}",
        "--storage", "memory",
        "--api-key", API_KEY,
        "--token-secret", SECRET,
    ]
    log = open(HERE / "server.log", "a")
    log.write(f"\n=== {time.ctime()} {' '.join(args)}\n")
    log.flush()
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    server = Server(proc, port, log, tmp)
    deadline = time.monotonic() + 15
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"duplex exited with {proc.returncode} before listening; see server.log")
        try:
            with _opener.open(f"{server.base}/health", timeout=1) as res:
                if res.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("duplex did not answer /health within 15 s; see server.log")
        time.sleep(0.1)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(claims, secret=SECRET, header=None):
    header = header or {"alg": "HS256", "typ": "JWT"}
    unsigned = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
    sig = hmac.new(secret.encode(), unsigned.encode(), hashlib.sha256).digest()
    return f"{unsigned}.{_b64url(sig)}"


def connect_token(user, ttl=3600, info=None, channels=None, secret=SECRET):
    now = int(time.time())
    claims = {"sub": user, "iat": now, "exp": now + ttl}
    if info is not None:
        claims["info"] = info
    if channels is not None:
        claims["channels"] = channels
    return sign(claims, secret=secret)


def sub_token(user, channel, ttl=3600):
    now = int(time.time())
    return sign({"sub": user, "channel": channel, "iat": now, "exp": now + ttl})


_counter = itertools.count(1)


def uniq(prefix):
    """A channel name no other test uses."""
    return f"{prefix}{os.getpid()}-{next(_counter)}"


def _api_sync(server, method, body):
    req = urllib.request.Request(
        f"{server.base}/api/{method}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-API-Key": API_KEY},
        method="POST",
    )
    try:
        with _opener.open(req, timeout=5) as res:
            text = res.read().decode()
    except urllib.error.HTTPError as e:
        raise AssertionError(f"/api/{method}: HTTP {e.code}: {e.read().decode()}") from e
    reply = json.loads(text)
    if "error" in reply:
        raise AssertionError(f"/api/{method}: error {reply['error']}")
    return reply["result"]


async def api(server, method, body):
    """POST /api/<method>; returns `result` (in a thread: urllib blocks)."""
    return await asyncio.to_thread(_api_sync, server, method, body)


class Recorder:
    """Every event of a client or a subscription, in order: (name, ctx)."""

    def __init__(self):
        self.events = []

    def of(self, name):
        return [ctx for n, ctx in self.events if n == name]

    async def wait(self, name, pred=lambda ctx: True, count=1, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while True:
            got = [ctx for ctx in self.of(name) if pred(ctx)]
            if len(got) >= count:
                return got[count - 1]
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {count} '{name}' "
                    f"(events so far: {[n for n, _ in self.events]})"
                )
            await asyncio.sleep(0.02)


def _recording(base):
    def method(name):
        async def handler(self, ctx):
            self.recorder.events.append((name, ctx))

        return handler

    attrs = {n: method(n[3:]) for n in dir(base) if n.startswith("on_")}
    return type(f"Recording{base.__name__}", (base,), attrs)


_ClientEvents = _recording(ClientEventHandler)
_SubEvents = _recording(SubscriptionEventHandler)


def client(server, token="", get_token=None, **kwargs):
    """A Client with a Recorder as `client.rec`."""
    rec = Recorder()
    events = _ClientEvents()
    events.recorder = rec
    c = Client(server.ws_url, events=events, token=token, get_token=get_token, proxy=None, **kwargs)
    c.rec = rec
    return c


def subscription(c, channel, **kwargs):
    """A Subscription with a Recorder as `sub.rec`."""
    rec = Recorder()
    events = _SubEvents()
    events.recorder = rec
    sub = c.new_subscription(channel, events=events, **kwargs)
    sub.rec = rec
    return sub
