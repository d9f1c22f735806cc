//! Codec micro-benchmarks: this crate beside tungstenite, operation by
//! operation.
//!
//! Every group measures one operation at several payload sizes, with
//! `Throughput::Bytes` set to the *payload* bytes processed per iteration
//! (frame headers are not counted), so criterion reports comparable
//! bytes/second for each implementation in the group:
//!
//! * `decode_binary`, `decode_text`: a buffer holding many masked client
//!   frames, decoded on the server side into whole messages (see
//!   [`bench_decode`] for why the comparison is set up the way it is).
//! * `encode_binary`: one server message encoded into frame bytes and
//!   delivered to an in-memory sink (see [`bench_encode`]).
//! * `mask`: XOR of a payload with a masking key. tungstenite's
//!   `apply_mask` lives in a private module (`protocol::frame::mask` is not
//!   exported in 0.27), so ours is compared with our byte-at-a-time
//!   reference `apply_mask_naive` instead.
//! * `utf8`: validation of valid mixed-script text, ours
//!   (`Utf8Validator::feed` + `finish`) beside `std::str::from_utf8`, which
//!   is what tungstenite uses for text messages.
//!
//! Run with `cargo bench -p duplex-ws-proto --bench codec` (append
//! `-- --quick` for a fast pass, or a group name to filter).

use std::hint::black_box;
use std::io::{self, IoSlice, Read, Write};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput};
use tungstenite::protocol::frame::coding::{Data as TgData, OpCode as TgOpCode};
use tungstenite::protocol::frame::Frame as TgFrame;
use tungstenite::protocol::{Role as TgRole, WebSocket};
use ws_proto::frame::encode_frame;
use ws_proto::mask::{apply_mask, apply_mask_naive};
use ws_proto::utf8::Utf8Validator;
use ws_proto::{Config, Connection, FrameHeader, Message, OpCode, Role, SharedFrame};

/// Payload sizes of the frame-level groups.
const FRAME_SIZES: [usize; 3] = [20, 1024, 16 * 1024];
/// Payload sizes of the `mask` and `utf8` groups.
const BUFFER_SIZES: [usize; 4] = [20, 1024, 16 * 1024, 1024 * 1024];
/// About this many payload bytes go into one decode buffer.
const DECODE_BATCH_BYTES: usize = 256 * 1024;
/// tungstenite's default read buffer size, also used for our read loop.
const READ_BUF_LEN: usize = 128 * 1024;

/// A deterministic xorshift generator: the same bytes on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Valid UTF-8 of exactly `len` bytes mixing 1-, 2-, 3- and 4-byte
/// characters (Latin, Greek, CJK, emoji), mostly ASCII as real text is.
fn mixed_text(len: usize, seed: u64) -> String {
    const PIECES: [&str; 8] = [
        "hello ",
        "world, ",
        "\u{e9}t\u{e9} ",
        "\u{3b1}\u{3b2}\u{3b3} ",
        "{\"k\": 42} ",
        "\u{4e2d}\u{6587} ",
        "\u{1f600} ",
        "plain ascii text ",
    ];
    let mut rng = Rng(seed | 1);
    let mut s = String::with_capacity(len);
    loop {
        let piece = PIECES[(rng.next() % PIECES.len() as u64) as usize];
        if s.len() + piece.len() > len {
            break;
        }
        s.push_str(piece);
    }
    while s.len() < len {
        s.push('.');
    }
    s
}

/// A payload of `len` bytes: random for binary, mixed text for text.
fn payload(len: usize, text: bool, seed: u64) -> Vec<u8> {
    if text {
        mixed_text(len, seed).into_bytes()
    } else {
        Rng(seed | 1).bytes(len)
    }
}

/// An in-memory transport: reads come from `input` (rewindable), writes go
/// to `output`. Both implementations read and write through the same type.
#[derive(Default)]
struct MemStream {
    input: Vec<u8>,
    pos: usize,
    output: Vec<u8>,
}

impl MemStream {
    fn rewind(&mut self) {
        self.pos = 0;
    }
}

impl Read for MemStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let rest = &self.input[self.pos..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for MemStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.output.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `count` masked client frames, each a whole message of `size` bytes, and
/// the payloads they carry.
fn client_wire(size: usize, count: usize, text: bool) -> (Vec<u8>, Vec<Vec<u8>>) {
    let opcode = if text { OpCode::Text } else { OpCode::Binary };
    let mut keys = Rng(0x5eed);
    let payloads: Vec<Vec<u8>> = (0..count as u64)
        .map(|i| payload(size, text, i + 1))
        .collect();
    let mut wire = BytesMut::new();
    for p in &payloads {
        let mut header = FrameHeader::new(opcode, 0);
        header.mask = Some((keys.next() as u32).to_ne_bytes());
        encode_frame(&mut wire, header, p);
    }
    (wire.to_vec(), payloads)
}

/// Feeds `input` to `conn` until it is consumed, handing every message to
/// `sink`. Returns how many messages completed.
fn receive_all(conn: &mut Connection, mut input: &[u8], mut sink: impl FnMut(Message)) -> usize {
    let mut messages = 0;
    while !input.is_empty() {
        let (used, message) = conn.receive(input).expect("valid input");
        input = &input[used..];
        if let Some(message) = message {
            messages += 1;
            sink(message);
        }
    }
    messages
}

/// Our decode through the same read path tungstenite has: the wire is read
/// from a [`MemStream`] into a reused 128 KiB buffer, then parsed.
fn ours_read_loop(conn: &mut Connection, stream: &mut MemStream, buf: &mut [u8]) -> usize {
    stream.rewind();
    let mut messages = 0;
    loop {
        let n = stream.read(buf).expect("in-memory read");
        if n == 0 {
            return messages;
        }
        messages += receive_all(conn, &buf[..n], |m| {
            black_box(m);
        });
    }
}

/// Server-side decode of a buffer of masked client frames into messages.
///
/// Fairness: tungstenite owns its IO, so the only whole-message path it has
/// is `WebSocket::read` over a `Read + Write` stream; it copies the stream
/// into its 128 KiB read buffer, splits each payload off, unmasks it in
/// place and (for text) validates it. Our crate is sans-IO, so the headline
/// `ours` entry does what our IO layer does: `read` the same in-memory
/// stream into a reused 128 KiB buffer and pass it to
/// `Connection::receive`, which unmasks, validates and assembles each message
/// into its own buffer. Both sides therefore pay one copy out of the
/// "socket", produce owned `Message`s, and use default limits.
/// `ours_sans_io` additionally shows `receive` fed straight from the wire
/// buffer, without that read copy (what the crate costs on top of whatever
/// IO the caller does).
fn bench_decode(c: &mut Criterion, text: bool) {
    let mut g = c.benchmark_group(if text { "decode_text" } else { "decode_binary" });
    for size in FRAME_SIZES {
        let count = (DECODE_BATCH_BYTES / size).max(16);
        let (wire, payloads) = client_wire(size, count, text);
        g.throughput(Throughput::Bytes((size * count) as u64));

        // Check once, outside the timing, that both sides decode the buffer
        // into the expected messages.
        let mut conn = Connection::new(Role::Server, Config::default());
        let mut seen = Vec::new();
        receive_all(&mut conn, &wire, |m| seen.push(m.payload().to_vec()));
        assert_eq!(seen, payloads);
        let stream = MemStream {
            input: wire.clone(),
            ..MemStream::default()
        };
        let mut ws = WebSocket::from_raw_socket(stream, TgRole::Server, None);
        for p in &payloads {
            let m = ws.read().expect("tungstenite decodes the buffer");
            assert_eq!(m.into_data().as_ref(), &p[..]);
        }

        let mut buf = vec![0u8; READ_BUF_LEN];
        let mut stream = MemStream {
            input: wire.clone(),
            ..MemStream::default()
        };
        g.bench_with_input(BenchmarkId::new("ours", size), &size, |b, _| {
            b.iter(|| {
                let n = ours_read_loop(&mut conn, &mut stream, &mut buf);
                debug_assert_eq!(n, count);
            })
        });
        g.bench_with_input(BenchmarkId::new("ours_sans_io", size), &size, |b, _| {
            b.iter(|| {
                receive_all(&mut conn, black_box(&wire), |m| {
                    black_box(m);
                })
            })
        });
        g.bench_with_input(BenchmarkId::new("tungstenite", size), &size, |b, _| {
            b.iter(|| {
                ws.get_mut().rewind();
                for _ in 0..count {
                    black_box(ws.read().expect("valid input"));
                }
            })
        });
    }
    g.finish();
}

fn decode_binary(c: &mut Criterion) {
    bench_decode(c, false);
}

fn decode_text(c: &mut Criterion) {
    bench_decode(c, true);
}

/// Writes all of `conn`'s pending output to `sink` with one vectored write,
/// as the IO layer does.
fn drain(conn: &mut Connection, sink: &mut MemStream) {
    let written = {
        let mut slices = [IoSlice::new(&[]); 8];
        let n = conn.output_slices(&mut slices);
        sink.write_vectored(&slices[..n]).expect("in-memory write")
    };
    conn.advance_output(written);
    debug_assert_eq!(conn.pending_output(), 0);
}

/// Encoding one server binary message and handing the frame bytes to an
/// in-memory sink (cleared every iteration, so its allocation is reused).
///
/// * `ours`: `Connection::send(Message::Binary)` then `output_slices` +
///   one vectored write + `advance_output` (payloads from 2 KiB on are queued
///   by reference, not copied, before that write).
/// * `ours_shared_frame`: `SharedFrame::binary` (encodes a copy of the
///   frame), then `send_shared` and the same write.
/// * `ours_send_shared_prebuilt`: `send_shared` of a frame encoded
///   beforehand, then the same write: the per-connection cost of a
///   broadcast, which pays the encode once for all its connections.
/// * `ours_encode_frame`: the frame-level `frame::encode_frame` into a reused
///   buffer, the counterpart of tungstenite's `Frame::format`.
/// * `tungstenite`: `WebSocket::send(Message::Binary)` (write + flush) over
///   the same sink type.
/// * `tungstenite_frame_format`: `Frame::message(..).format(&mut sink)`.
fn bench_encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode_binary");
    for size in FRAME_SIZES {
        let data = Bytes::from(payload(size, false, 7));
        g.throughput(Throughput::Bytes(size as u64));

        // Both sides must produce the same frame bytes.
        let mut conn = Connection::new(Role::Server, Config::default());
        let mut sink = MemStream::default();
        conn.send(Message::Binary(data.clone())).expect("open");
        drain(&mut conn, &mut sink);
        let mut ws = WebSocket::from_raw_socket(MemStream::default(), TgRole::Server, None);
        ws.send(tungstenite::Message::Binary(data.clone()))
            .expect("in-memory send");
        assert_eq!(sink.output, ws.get_ref().output);
        ws.get_mut().output.clear();

        g.bench_with_input(BenchmarkId::new("ours", size), &size, |b, _| {
            b.iter(|| {
                sink.output.clear();
                conn.send(Message::Binary(black_box(&data).clone()))
                    .expect("open");
                drain(&mut conn, &mut sink);
            })
        });
        g.bench_with_input(
            BenchmarkId::new("ours_shared_frame", size),
            &size,
            |b, _| {
                b.iter(|| {
                    sink.output.clear();
                    let frame = SharedFrame::binary(black_box(&data[..]));
                    conn.send_shared(&frame).expect("open");
                    drain(&mut conn, &mut sink);
                })
            },
        );
        let prebuilt = SharedFrame::binary(&data[..]);
        g.bench_with_input(
            BenchmarkId::new("ours_send_shared_prebuilt", size),
            &size,
            |b, _| {
                b.iter(|| {
                    sink.output.clear();
                    conn.send_shared(black_box(&prebuilt)).expect("open");
                    drain(&mut conn, &mut sink);
                })
            },
        );
        let mut out = BytesMut::new();
        g.bench_with_input(
            BenchmarkId::new("ours_encode_frame", size),
            &size,
            |b, _| {
                b.iter(|| {
                    out.clear();
                    encode_frame(
                        &mut out,
                        FrameHeader::new(OpCode::Binary, 0),
                        black_box(&data),
                    );
                })
            },
        );
        g.bench_with_input(BenchmarkId::new("tungstenite", size), &size, |b, _| {
            b.iter(|| {
                ws.get_mut().output.clear();
                ws.send(tungstenite::Message::Binary(black_box(&data).clone()))
                    .expect("in-memory send");
            })
        });
        let mut raw = Vec::new();
        g.bench_with_input(
            BenchmarkId::new("tungstenite_frame_format", size),
            &size,
            |b, _| {
                b.iter(|| {
                    raw.clear();
                    let frame = TgFrame::message(
                        black_box(&data).clone(),
                        TgOpCode::Data(TgData::Binary),
                        true,
                    );
                    frame.format(&mut raw).expect("in-memory write");
                })
            },
        );
    }
    g.finish();
}

/// Masking a payload in place: ours beside the byte-at-a-time reference
/// (tungstenite's `apply_mask` is not public, see the module docs).
fn bench_mask(c: &mut Criterion) {
    let mut g = c.benchmark_group("mask");
    let key = [0x37, 0xfa, 0x21, 0x3d];
    for size in BUFFER_SIZES {
        let mut buf = payload(size, false, 3);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("ours", size), &size, |b, _| {
            b.iter(|| apply_mask(black_box(&mut buf[..]), black_box(key)))
        });
        g.bench_with_input(BenchmarkId::new("naive_reference", size), &size, |b, _| {
            b.iter(|| apply_mask_naive(black_box(&mut buf[..]), black_box(key), 0))
        });
    }
    g.finish();
}

/// UTF-8 validation of valid mixed text: ours (whole buffer, and fed in
/// 1400-byte pieces as a payload arriving over TCP would be) beside
/// `std::str::from_utf8`.
fn bench_utf8(c: &mut Criterion) {
    let mut g = c.benchmark_group("utf8");
    for size in BUFFER_SIZES {
        let text = mixed_text(size, 11).into_bytes();
        g.throughput(Throughput::Bytes(size as u64));
        let mut v = Utf8Validator::default();
        g.bench_with_input(BenchmarkId::new("ours", size), &size, |b, _| {
            b.iter(|| {
                v.feed(black_box(&text)).expect("valid");
                v.finish().expect("valid");
            })
        });
        g.bench_with_input(
            BenchmarkId::new("ours_chunked_1400", size),
            &size,
            |b, _| {
                b.iter(|| {
                    for piece in black_box(&text).chunks(1400) {
                        v.feed(piece).expect("valid");
                    }
                    v.finish().expect("valid");
                })
            },
        );
        g.bench_with_input(BenchmarkId::new("std_from_utf8", size), &size, |b, _| {
            b.iter(|| std::str::from_utf8(black_box(&text)).is_ok())
        });
    }
    g.finish();
}

fn main() {
    // What `criterion_group!` + `criterion_main!` expand to, written out so
    // no undocumented `pub fn` is generated (the workspace warns on those).
    // Short default warm-up and measurement times: the suite has ~60
    // benchmarks. `--warm-up-time` / `--measurement-time` / `--quick` on the
    // command line override them.
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    decode_binary(&mut c);
    decode_text(&mut c);
    bench_encode(&mut c);
    bench_mask(&mut c);
    bench_utf8(&mut c);
    c.final_summary();
}
