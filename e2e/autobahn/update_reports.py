#!/usr/bin/env python3
"""Ask a running wstest fuzzingserver to write its reports for an agent.

    update_reports.py ws://127.0.0.1:9002 duplex

A client under test is supposed to open /updateReports?agent=NAME itself once
it has run every case. run.sh calls this only when the client did not, so that
the cases that did run can still be inspected. Stdlib only: it performs the
opening handshake, then waits for wstest's close frame, which wstest sends
after the reports are written.
"""
import base64
import os
import socket
import sys
import urllib.parse


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    url = urllib.parse.urlsplit(sys.argv[1])
    agent = sys.argv[2]
    if url.scheme != "ws" or not url.hostname or not url.port:
        print(f"update_reports.py: expected ws://HOST:PORT, got {sys.argv[1]}", file=sys.stderr)
        return 2
    key = base64.b64encode(os.urandom(16)).decode()
    path = "/updateReports?agent=" + urllib.parse.quote(agent, safe="")
    request = (
        f"GET {path} HTTP/1.1\r\n"
        f"Host: {url.hostname}:{url.port}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection((url.hostname, url.port), timeout=60) as sock:
        sock.sendall(request.encode())
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
        head, _, rest = received.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            print(f"update_reports.py: handshake refused: {head[:200]!r}", file=sys.stderr)
            return 1
        # The server's close frame (opcode 0x8) arrives once the reports exist.
        while not rest or (rest[0] & 0x0F) != 0x8:
            chunk = sock.recv(4096)
            if not chunk:
                break
            rest += chunk
        # Answer with a masked, empty close frame, then hang up.
        sock.sendall(b"\x88\x80" + os.urandom(4))
    return 0


if __name__ == "__main__":
    sys.exit(main())
