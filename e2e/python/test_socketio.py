"""The official Python client (python-socketio 5.x, synchronous ``Client``)
against duplex's Socket.IO server, crates/socketio/examples/e2e_server.rs.

Mirrors e2e/node/socketio.test.mjs. Run through run.sh, which installs the
client and builds the server. E2E_DEBUG=1 turns on the client's packet logs.

python-socketio runs every incoming Engine.IO message's handler in a thread
of its own, so events are recorded into queues and awaited with a timeout.
"""

import os
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import socketio

ROOT = Path(__file__).resolve().parents[2]
DEBUG = os.environ.get("E2E_DEBUG") == "1"
WAIT = 3.0  # seconds to wait for an expected event or ack


# --- the server ---------------------------------------------------------------


class Server:
    def __init__(self, proc, url):
        self.proc = proc
        self.url = url

    def alive(self):
        return self.proc.poll() is None


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server():
    binary = os.environ.get("DUPLEX_E2E_SERVER") or str(
        ROOT / "target/release/examples/e2e_server"
    )
    port = free_port()
    proc = subprocess.Popen(
        [binary, f"127.0.0.1:{port}"],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    listening = threading.Event()

    def pump_stderr():
        for line in proc.stderr:
            sys.stderr.write("[e2e_server] " + line)
            if "listening" in line:
                listening.set()

    threading.Thread(target=pump_stderr, daemon=True).start()
    deadline = time.monotonic() + 10
    while not listening.wait(0.1):
        if proc.poll() is not None:
            pytest.fail(f"e2e_server exited with {proc.returncode} before listening")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("e2e_server did not print 'listening' within 10 s")
    yield Server(proc, f"http://127.0.0.1:{port}")
    proc.kill()
    proc.wait()


@pytest.fixture(autouse=True)
def server_survives(server):
    yield
    assert server.alive(), f"e2e_server died (exit status {server.proc.returncode})"


# --- clients ------------------------------------------------------------------


@pytest.fixture
def new_client():
    """Makes clients (no reconnection) and disconnects them after the test."""
    clients = []

    def make(**options):
        options.setdefault("reconnection", False)
        client = socketio.Client(logger=DEBUG, engineio_logger=DEBUG, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.disconnect()


@pytest.fixture
def connect(server, new_client):
    """connect(namespace="/", events=(), **connect_kwargs) -> (client, recorded)

    `events` are recorded (see record) from before the connection, so that
    events the server sends right away (`welcome`) are not missed.
    """

    def _connect(namespace="/", events=(), **kwargs):
        client = new_client()
        recorded = {name: record(client, name, namespace) for name in events}
        kwargs.setdefault("wait_timeout", 5)
        client.connect(server.url, namespaces=[namespace], **kwargs)
        return client, recorded

    return _connect


def record(client, event, namespace="/"):
    """A queue that gets the argument tuple of each `event` the client gets."""
    q = queue.Queue()
    client.on(event, lambda *args: q.put(args), namespace=namespace)
    return q


def next_event(q, timeout=WAIT):
    try:
        return q.get(timeout=timeout)
    except queue.Empty:
        pytest.fail(f"no event within {timeout} s")


def drained(q):
    items = []
    while True:
        try:
            items.append(q.get_nowait())
        except queue.Empty:
            return items


# --- the cases ----------------------------------------------------------------


def test_connects_to_root_and_custom_namespace_with_handshake_auth(connect):
    # welcome: (socket id, handshake auth, recovered)
    main, ev = connect("/", events=["welcome"], auth={"user": "ada"})
    sid, auth, recovered = next_event(ev["welcome"])
    assert main.connected
    assert sid == main.get_sid("/")
    assert auth == {"user": "ada"}
    assert recovered is False

    custom, ev = connect("/custom", events=["welcome"], auth={"user": "grace"})
    sid2, auth2, recovered2 = next_event(ev["welcome"])
    assert sid2 == custom.get_sid("/custom")
    assert sid2 and sid2 != sid
    assert auth2 == {"user": "grace"}
    assert recovered2 is False


def test_two_namespaces_multiplexed_on_one_connection(server, new_client):
    client = new_client()
    welcome = {ns: record(client, "welcome", ns) for ns in ("/", "/custom")}
    echo = {ns: record(client, "echo", ns) for ns in ("/", "/custom")}
    client.connect(
        server.url, namespaces=["/", "/custom"], auth={"user": "ada"}, wait_timeout=5
    )
    for ns in ("/", "/custom"):
        assert next_event(welcome[ns]) == (client.get_sid(ns), {"user": "ada"}, False)
    assert client.get_sid("/") != client.get_sid("/custom")

    client.emit("echo", "to custom", namespace="/custom")
    assert next_event(echo["/custom"]) == ("to custom",)
    assert client.call("echo-ack", "via root", timeout=WAIT) == "via root"
    time.sleep(0.2)
    assert drained(echo["/"]) == []


def test_middleware_accepts_a_good_token_and_refuses_others(connect, new_client, server):
    ok, _ = connect("/private", auth={"token": "secret"})
    assert ok.connected
    assert ok.call("echo-ack", "inside", namespace="/private", timeout=WAIT) == "inside"

    for auth in ({"token": "wrong"}, None):
        bad = new_client()
        errors = record(bad, "connect_error", "/private")
        # python-socketio raises a generic "One or more namespaces failed to
        # connect" error; the server's reason goes to the connect_error handler.
        with pytest.raises(socketio.exceptions.ConnectionError, match="/private"):
            bad.connect(server.url, namespaces=["/private"], auth=auth, wait_timeout=5)
        assert next_event(errors) == ({"message": "invalid token"},)
        assert not bad.connected


def test_events_both_ways_with_json_arguments(connect):
    client, ev = connect(events=["echo"])
    args = ("text", 42, {"nested": [1, 2, {"deep": True}]}, None, 1.5, "héllo ✓")
    client.emit("echo", args)
    assert next_event(ev["echo"]) == args


def test_acks_both_ways(connect):
    client, ev = connect(events=["ack-result"])
    # the server acknowledges with all the arguments; call() returns them as a
    # tuple when there are several
    assert client.call("echo-ack", ({"n": 1}, "two"), timeout=WAIT) == ({"n": 1}, "two")
    assert client.call("echo-ack", {"n": 1}, timeout=WAIT) == {"n": 1}

    acked = queue.Queue()
    client.emit("echo-ack", ("cb", 2), callback=lambda *args: acked.put(args))
    assert next_event(acked) == ("cb", 2)

    # server -> client: the handler's return value is the ack
    client.on("server-ack", lambda question: f"answer to {question}")
    client.emit("request-ack")
    assert next_event(ev["ack-result"]) == ({"ok": ["answer to question"]},)


def test_server_ack_with_several_or_no_arguments(connect):
    client, ev = connect(events=["ack-result"])
    replies = iter([("one", 2, {"three": 3}), None])
    client.on("server-ack", lambda question: next(replies))
    client.emit("request-ack")
    assert next_event(ev["ack-result"]) == ({"ok": ["one", 2, {"three": 3}]},)
    # returning None acknowledges with no arguments
    client.emit("request-ack")
    assert next_event(ev["ack-result"]) == ({"ok": []},)


def test_acks_time_out_when_nobody_answers_on_either_side(connect):
    client, ev = connect(events=["ack-result"])
    started = time.monotonic()
    with pytest.raises(socketio.exceptions.TimeoutError):
        client.call("no-answer", 1, timeout=0.2)
    assert time.monotonic() - started < 1

    # python-socketio always acknowledges (with the handler's return value) an
    # event the server wants an ack for, so answer only after the server's
    # 500 ms timeout; the late ack must be ignored.
    late = threading.Event()

    def slow(question):
        time.sleep(1.0)
        late.set()
        return "too late"

    client.on("server-ack", slow)
    client.emit("request-ack")
    (result,) = next_event(ev["ack-result"])
    assert "timed out" in result["error"]
    assert late.wait(WAIT)
    time.sleep(0.2)  # let the late ack reach the server
    assert client.call("echo-ack", "still connected", timeout=WAIT) == "still connected"
    assert drained(ev["ack-result"]) == []


def test_binary_both_ways(connect):
    client, ev = connect(events=["echo"])
    payload = bytes([0, 1, 2, 253, 254, 255])
    client.emit("echo", ({"file": payload, "name": "bytes"}, b"second"))
    obj, second = next_event(ev["echo"])
    assert obj == {"file": payload, "name": "bytes"}
    assert second == b"second"

    nested = {"parts": [b"a", {"deep": b"\x00" * 1000}, "text"], "n": 3}
    client.emit("echo", (nested, 7))
    assert next_event(ev["echo"]) == (nested, 7)

    assert client.call("echo-ack", bytes([9, 8, 7]), timeout=WAIT) == bytes([9, 8, 7])
    assert client.call("echo-ack", ({"b": b"\xff"}, [b"x", b"y"]), timeout=WAIT) == (
        {"b": b"\xff"},
        [b"x", b"y"],
    )


def test_room_broadcast_reaches_the_room_sockets_only(connect):
    a, ev_a = connect(events=["room-message"])
    b, ev_b = connect(events=["room-message"])
    c, ev_c = connect(events=["room-message"])
    assert a.call("join", "blue", timeout=WAIT) is True
    assert b.call("join", "blue", timeout=WAIT) is True
    c.emit("to-room", ("blue", {"hello": "blue"}))
    assert next_event(ev_a["room-message"]) == ({"hello": "blue"},)
    assert next_event(ev_b["room-message"]) == ({"hello": "blue"},)
    time.sleep(0.3)
    assert drained(ev_a["room-message"]) == []
    assert drained(ev_b["room-message"]) == []
    assert drained(ev_c["room-message"]) == []


@pytest.mark.parametrize(
    "transports, expected",
    [(["polling"], "polling"), (["websocket"], "websocket"), (None, "websocket")],
    ids=["polling-only", "websocket-only", "polling-upgraded-to-websocket"],
)
def test_transport(connect, transports, expected):
    client, ev = connect(events=["echo", "ack-result"], transports=transports)
    deadline = time.monotonic() + 5
    while client.transport() != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.transport() == expected

    name = f"over {expected}"
    client.emit("echo", (name, bytes([1, 2, 3])))
    assert next_event(ev["echo"]) == (name, bytes([1, 2, 3]))
    assert client.call("echo-ack", name, timeout=WAIT) == name
    client.on("server-ack", lambda question: f"{question} {name}")
    client.emit("request-ack")
    assert next_event(ev["ack-result"]) == ({"ok": [f"question {name}"]},)
    assert client.transport() == expected


def test_reconnecting_without_recovery_support_gives_a_fresh_socket(server, new_client, connect):
    # python-socketio ignores the recovery session id (pid) and never sends
    # it back, so after a dropped connection it must get a new socket, which
    # is not in the old socket's rooms.
    client = new_client(
        reconnection=True, reconnection_delay=0.1, reconnection_delay_max=0.2
    )
    welcome = record(client, "welcome")
    rooms = record(client, "room-message")
    client.connect(server.url, namespaces=["/"], transports=["websocket"], wait_timeout=5)
    first_sid, _, _ = next_event(welcome)
    assert client.call("join", "green", timeout=WAIT) is True
    other, _ = connect()
    other.emit("to-room", ("green", "before"))
    assert next_event(rooms)[0] == "before"

    client.eio.ws.close()  # the transport drops; python-socketio reconnects
    sid, auth, recovered = next_event(welcome, timeout=10)
    assert recovered is False
    assert sid != first_sid
    deadline = time.monotonic() + 5
    while not client.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.get_sid("/") == sid

    other.emit("to-room", ("green", "after"))
    assert client.call("echo-ack", "reconnected", timeout=WAIT) == "reconnected"
    time.sleep(0.3)
    assert drained(rooms) == []
