#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into corpus/<target>/.

Each seed is a small valid (or deliberately almost valid) input in the layout
its target documents at the top of fuzz_targets/<target>.rs. Files are named
after what they hold; rerunning the script rewrites them identically, and the
files libFuzzer adds next to them (named by content hash) are left alone.

Usage: python3 gen_corpus.py   (from anywhere)
"""

import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = bytes([0x37, 0xFA, 0x21, 0x3D])

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def frame(opcode, payload, fin=True, rsv1=False, key=KEY):
    """One frame; masked with `key` unless `key` is None."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    mask_bit = 0x80 if key is not None else 0
    n = len(payload)
    if n < 126:
        head = bytes([first, mask_bit | n])
    elif n < 1 << 16:
        head = bytes([first, mask_bit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([first, mask_bit | 127]) + struct.pack(">Q", n)
    if key is None:
        return head + payload
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


def close_payload(code, reason=b""):
    return struct.pack(">H", code) + reason


def deflate_messages(messages, level=1, takeover=True, final=False):
    """permessage-deflate payloads: sync-flushed raw DEFLATE without the
    trailing 00 00 ff ff, one compressor kept across messages when
    `takeover`. With `final`, each message ends in a BFINAL block instead."""
    out = []
    comp = zlib.compressobj(level, zlib.DEFLATED, -15)
    for m in messages:
        if not takeover:
            comp = zlib.compressobj(level, zlib.DEFLATED, -15)
        if final:
            data = comp.compress(m) + comp.flush(zlib.Z_FINISH)
            comp = zlib.compressobj(level, zlib.DEFLATED, -15)
        else:
            data = comp.compress(m) + comp.flush(zlib.Z_SYNC_FLUSH)
            assert data.endswith(b"\x00\x00\xff\xff")
            data = data[:-4]
        out.append(data)
    return out


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def frame_decoder():
    # [cfg][split lengths (cfg >> 5 of them)][wire]
    def seed(name, wire, cfg=0, splits=b""):
        assert len(splits) == cfg >> 5
        write("frame_decoder", name, bytes([cfg]) + splits + wire)

    seed("text_hello", frame(TEXT, b"Hello"))
    seed(
        "fragmented_text_ping_close",
        frame(TEXT, "caf\u00e9 ".encode(), fin=False)
        + frame(PING, b"are you there")
        + frame(CONT, "\u20ac\U0001f600".encode())
        + frame(CLOSE, close_payload(1000, b"bye")),
        cfg=3 << 5,
        splits=bytes([1, 7, 0]),
    )
    seed("binary_16bit_len", frame(BINARY, bytes(range(256)) + bytes(44)), cfg=2)
    seed(
        "binary_64bit_len_unmasked",
        bytes([0x82, 127]) + struct.pack(">Q", 10) + b"0123456789",
        cfg=1,
    )
    seed(
        "server_frames_unmasked",
        frame(TEXT, b"hi", key=None)
        + frame(PONG, b"", key=None)
        + frame(BINARY, b"\x00\x01\x02", key=None)
        + frame(CLOSE, close_payload(1001), key=None),
    )
    seed(
        "split_utf8_across_frames",
        frame(TEXT, b"\xe2\x82", fin=False) + frame(CONT, b"\xac!"),
        cfg=(2 << 5) | 4,
        splits=bytes([3, 5]),
    )
    seed("invalid_utf8", frame(TEXT, b"ok \xed\xa0\x80"))
    seed("too_big_small_limits", frame(BINARY, bytes(200)), cfg=4)
    seed("close_one_byte", frame(CLOSE, b"\x03"))


def handshake():
    def seed(name, text):
        write("handshake", name, text.replace("\n", "\r\n").encode())

    seed(
        "request_rfc6455",
        "GET /chat HTTP/1.1\n"
        "Host: server.example.com\n"
        "Upgrade: websocket\n"
        "Connection: Upgrade\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\n"
        "Origin: http://example.com\n"
        "Sec-WebSocket-Protocol: chat, superchat\n"
        "Sec-WebSocket-Version: 13\n\n",
    )
    seed(
        "request_deflate_offers",
        "GET /ws?room=1 HTTP/1.1\n"
        "Host: localhost:8080\n"
        "Upgrade: WebSocket\n"
        "Connection: keep-alive, Upgrade\n"
        "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\n"
        "Sec-WebSocket-Version: 13\n"
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits; "
        'server_max_window_bits=10, permessage-deflate; client_no_context_takeover; x="a,b"\n'
        "Sec-WebSocket-Extensions: x-webkit-deflate-frame\n\n",
    )
    write(
        "handshake",
        "request_with_trailing_frame",
        b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
        b"Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        + frame(TEXT, b"early"),
    )
    seed(
        "request_bad_version",
        "GET / HTTP/1.1\nHost: h\nUpgrade: websocket\nConnection: Upgrade\n"
        "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\nSec-WebSocket-Version: 8\n\n",
    )
    # Answers to the fuzz target's fixed client request (RFC 6455 key,
    # subprotocol "chat", default permessage-deflate offer).
    seed(
        "response_101_chat_deflate",
        "HTTP/1.1 101 Switching Protocols\n"
        "Upgrade: websocket\n"
        "Connection: Upgrade\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\n"
        "Sec-WebSocket-Protocol: chat\n"
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
        "client_max_window_bits=10\n\n",
    )
    seed(
        "response_101_plain",
        "HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\nConnection: upgrade\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\n\n",
    )
    seed(
        "response_403",
        "HTTP/1.1 403 Forbidden\nContent-Length: 9\nConnection: close\n\nforbidden",
    )


def inflate():
    # [cfg][limit/8] then records [kind][len][payload]; kind bits 0-1:
    # 0 continuation, 1 text, 2 binary, 3 control (bits 2-3: ping, pong,
    # close, ping); bit 4: not FIN; bit 5: flip the default RSV1.
    def rec(kind, payload):
        assert len(payload) < 256
        return bytes([kind, len(payload)]) + payload

    def seed(name, records, cfg=0, limit=16):
        write("inflate", name, bytes([cfg, limit]) + b"".join(records))

    # RFC 7692 7.2.3.1: "Hello" compressed.
    seed("rfc7692_hello", [rec(1, bytes([0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00]))])
    a, b = deflate_messages([b"Hello, world! " * 4, b"Hello, world! " * 5])
    seed("context_takeover_two_messages", [rec(1, a), rec(1, b)])
    a, b = deflate_messages([b"no takeover " * 6, b"no takeover " * 6], takeover=False)
    seed("no_context_takeover", [rec(2, a), rec(2, b)], cfg=0b11)
    (big,) = deflate_messages(["\u00e9t\u00e9 \u20ac ".encode() * 40])
    third = len(big) // 3
    seed(
        "fragmented_with_ping",
        [
            rec(0x11, big[:third]),
            rec(3, b"ping"),
            rec(0x10, big[third : 2 * third]),
            rec(0, big[2 * third :]),
        ],
        cfg=5 << 2,
    )
    (fin,) = deflate_messages([b"final block " * 3], final=True)
    seed("bfinal_block", [rec(1, fin)])
    (stored,) = deflate_messages([bytes(range(64))], level=0)
    seed("stored_block", [rec(2, stored)], cfg=0x40)
    (bomb,) = deflate_messages([bytes(64 * 1024)], level=9)
    seed("bomb_small_limit", [rec(2, bomb)], cfg=0x20, limit=4)
    seed(
        "uncompressed_between",
        [rec(0x22, b"plain binary"), rec(1, a), rec(3 | 2 << 2, close_payload(1000))],
    )


if __name__ == "__main__":
    frame_decoder()
    handshake()
    inflate()
