//! permessage-deflate (RFC 7692): extension negotiation and the per-connection
//! compression contexts.
//!
//! This module owns two things. First, the text of the
//! `Sec-WebSocket-Extensions` negotiation for `permessage-deflate`: parsing and
//! judging a client's offers on the server ([`DeflateConfig::negotiate_server`]),
//! and building the offer and validating the server's answer on the client
//! ([`DeflateConfig::client_offer`], [`DeflateConfig::accept_client_response`]).
//! Second, the [`DeflateContext`] a connection keeps for the rest of its life:
//! it compresses whole outgoing message payloads and inflates incoming ones
//! piece by piece under a hard output limit, applying the negotiated
//! context-takeover and window-size rules.
//!
//! It does not own framing: setting RSV1, deciding which messages to compress
//! (`compress_min_size` is read by the connection), fragmenting, masking and
//! UTF-8 validation belong to the connection and frame modules. It does not
//! read HTTP headers either: the handshake module collects the header values
//! and splits the offers on top-level commas before calling in here.

use std::fmt;

use bytes::BytesMut;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::Role;

/// The extension token this module negotiates.
const EXTENSION_NAME: &str = "permessage-deflate";
const SERVER_NO_CONTEXT_TAKEOVER: &str = "server_no_context_takeover";
const CLIENT_NO_CONTEXT_TAKEOVER: &str = "client_no_context_takeover";
const SERVER_MAX_WINDOW_BITS: &str = "server_max_window_bits";
const CLIENT_MAX_WINDOW_BITS: &str = "client_max_window_bits";

/// The smallest and largest LZ77 window sizes (as base-2 logarithms) RFC 7692
/// lets peers negotiate.
const MIN_WINDOW_BITS: u8 = 8;
const MAX_WINDOW_BITS: u8 = 15;

/// The smallest raw-deflate window zlib (and zlib-rs) will work with.
const ZLIB_MIN_WINDOW_BITS: u8 = 9;

/// What a sync flush leaves at the end of a compressed message, and what the
/// receiver puts back before inflating (RFC 7692 section 7.2.1 and 7.2.2).
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Bounds of the output space handed to the inflater per call (first sized at
/// four times the compressed input, then doubled): large enough to keep the
/// number of zlib calls low, small enough that a decompression bomb cannot
/// make us allocate much more than the caller's limit.
const INFLATE_MIN_STEP: usize = 64;
const INFLATE_MAX_STEP: usize = 64 * 1024;

/// Extra output space reserved beyond the payload size when compressing: a
/// sync flush adds at most a few bytes, stored blocks five bytes per 64 KiB.
const COMPRESS_SLACK: usize = 64;

/// What this endpoint would like from permessage-deflate.
///
/// The same type serves both roles: a server reads it to decide what to
/// accept and add to its response, a client to build its offer. Window sizes
/// are base-2 logarithms; values outside RFC 7692's 8..=15 are clamped into
/// that range, and `compression_level` is clamped to zlib's 0..=9.
#[derive(Clone, Debug)]
pub struct DeflateConfig {
    /// Ask that the server reset its compressor after every message. A server
    /// with this set resets even when the client did not ask for it.
    pub server_no_context_takeover: bool,
    /// Ask that the client reset its compressor after every message. A
    /// client with this set resets even when the server did not ask for it.
    pub client_no_context_takeover: bool,
    /// Largest LZ77 window the server may compress with. Below 15 a server
    /// states it in its response and a client requests it in its offer.
    pub server_max_window_bits: u8,
    /// Largest LZ77 window the client may compress with. Below 15 a server
    /// imposes it (when the client announced support) and a client uses it
    /// and announces it in its offer.
    pub client_max_window_bits: u8,
    /// zlib compression level for outgoing messages: 0 (stored) to 9.
    pub compression_level: u32,
    /// Messages shorter than this are sent uncompressed (read by the
    /// connection, not by this module).
    pub compress_min_size: usize,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        Self {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
            compression_level: 1,
            compress_min_size: 0,
        }
    }
}

/// The outcome of a successful negotiation: the rules both directions
/// follow for the lifetime of the connection.
///
/// For the local endpoint's own sending direction the values also include
/// the local [`DeflateConfig`] (a side may always reset more often or use a
/// smaller window than agreed); for the peer's direction they are exactly
/// what the peer is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message.
    pub client_no_context_takeover: bool,
    /// Largest LZ77 window (log2) the server compresses with.
    pub server_max_window_bits: u8,
    /// Largest LZ77 window (log2) the client compresses with.
    pub client_max_window_bits: u8,
}

impl Default for DeflateParams {
    /// Plain `permessage-deflate` with no parameters: context takeover in
    /// both directions and 32 KiB windows.
    fn default() -> Self {
        Self {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
        }
    }
}

/// Failures of negotiation, compression and decompression.
#[derive(Debug, thiserror::Error)]
pub enum DeflateError {
    /// The inflated message would exceed the caller's size limit.
    #[error("decompressed message exceeds the limit of {limit} bytes")]
    TooBig {
        /// The limit that was hit, in bytes.
        limit: usize,
    },
    /// The compressed data is not a valid DEFLATE stream (or, in the
    /// unreachable case of a compressor failure, the compressor's complaint).
    #[error("invalid compressed data: {0}")]
    Corrupt(String),
    /// The peer's extension negotiation is unacceptable.
    #[error("bad permessage-deflate negotiation: {0}")]
    Negotiation(String),
}

impl DeflateConfig {
    /// Server side: chooses the first acceptable `permessage-deflate` offer.
    ///
    /// `offers` are the individual extension offers from the client's
    /// `Sec-WebSocket-Extensions` header(s), already split on top-level
    /// commas, e.g. `"permessage-deflate; client_max_window_bits"` or
    /// `"x-webkit-deflate-frame"`. Offers for other extensions are skipped.
    ///
    /// Returns the negotiated parameters and the value for the response's
    /// `Sec-WebSocket-Extensions` header, e.g.
    /// `"permessage-deflate; server_no_context_takeover; client_max_window_bits=10"`,
    /// or `Ok(None)` when no offer is acceptable, in which case the server
    /// proceeds without compression.
    ///
    /// RFC 7692 section 7 tells a server to *decline* an offer with an unknown
    /// parameter, a repeated parameter or an invalid value, so such offers are
    /// skipped and the next one is tried; a malformed offer never fails the
    /// handshake. Every well-formed offer is acceptable: this implementation
    /// can honour any requested server window (8 included, see
    /// [`DeflateContext`]) and no-context-takeover in both directions. The
    /// `Result` is kept so the handshake can treat negotiation failures
    /// uniformly; this function currently never returns `Err`.
    pub fn negotiate_server<'a>(
        &self,
        offers: impl IntoIterator<Item = &'a str>,
    ) -> Result<Option<(DeflateParams, String)>, DeflateError> {
        for offer in offers {
            let Ok(element) = parse_element(offer) else {
                continue;
            };
            if !element.name.eq_ignore_ascii_case(EXTENSION_NAME) {
                continue;
            }
            let Ok(requested) = interpret(&element.params, false) else {
                continue;
            };
            return Ok(Some(self.accept_offer(&requested)));
        }
        Ok(None)
    }

    /// Builds the parameters and response text for an acceptable offer.
    fn accept_offer(&self, offer: &PdParams) -> (DeflateParams, String) {
        let config_server_bits = clamp_window_bits(self.server_max_window_bits);
        let config_client_bits = clamp_window_bits(self.client_max_window_bits);

        // Our own direction: honour the request, then add our preference.
        let server_no_context_takeover =
            offer.server_no_context_takeover || self.server_no_context_takeover;
        let server_bits = match offer.server_max_window_bits {
            Some(requested) => Some(requested.min(config_server_bits)),
            None if config_server_bits < MAX_WINDOW_BITS => Some(config_server_bits),
            None => None,
        };

        // The client's direction. Echoing an offered client_no_context_takeover
        // turns the client's hint into a binding agreement, which lets our
        // inflater reset between messages.
        let client_no_context_takeover =
            offer.client_no_context_takeover || self.client_no_context_takeover;
        // client_max_window_bits may only appear in the response when the
        // client announced support for it; its value must not exceed the
        // client's hint. Stating the hint back makes it binding.
        let client_bits = match offer.client_max_window_bits {
            Some(hint) => {
                let bits = hint.unwrap_or(MAX_WINDOW_BITS).min(config_client_bits);
                (bits < MAX_WINDOW_BITS).then_some(bits)
            }
            None => None,
        };

        let mut response = String::with_capacity(128);
        response.push_str(EXTENSION_NAME);
        if server_no_context_takeover {
            push_param(&mut response, SERVER_NO_CONTEXT_TAKEOVER, None);
        }
        if client_no_context_takeover {
            push_param(&mut response, CLIENT_NO_CONTEXT_TAKEOVER, None);
        }
        if let Some(bits) = server_bits {
            push_param(&mut response, SERVER_MAX_WINDOW_BITS, Some(bits));
        }
        if let Some(bits) = client_bits {
            push_param(&mut response, CLIENT_MAX_WINDOW_BITS, Some(bits));
        }

        let params = DeflateParams {
            server_no_context_takeover,
            client_no_context_takeover,
            server_max_window_bits: server_bits.unwrap_or(MAX_WINDOW_BITS),
            client_max_window_bits: client_bits.unwrap_or(MAX_WINDOW_BITS),
        };
        (params, response)
    }

    /// What a client offers, derived from the config. `client_offer` and
    /// `accept_client_response` both use it so they cannot disagree.
    fn client_offer_params(&self) -> ClientOffer {
        let server_bits = clamp_window_bits(self.server_max_window_bits);
        let client_bits = clamp_window_bits(self.client_max_window_bits);
        ClientOffer {
            server_no_context_takeover: self.server_no_context_takeover,
            client_no_context_takeover: self.client_no_context_takeover,
            server_max_window_bits: (server_bits < MAX_WINDOW_BITS).then_some(server_bits),
            // Always announced: it costs nothing (we can compress with any
            // window the server imposes) and lets servers save memory.
            client_max_window_bits: Some((client_bits < MAX_WINDOW_BITS).then_some(client_bits)),
        }
    }

    /// Client side: the `Sec-WebSocket-Extensions` value to offer, a single
    /// `permessage-deflate` offer such as
    /// `"permessage-deflate; client_max_window_bits"` (the default config).
    ///
    /// `client_max_window_bits` is always announced (with a value when the
    /// config is below 15); `server_max_window_bits` and the
    /// no-context-takeover parameters appear when the config asks for them.
    pub fn client_offer(&self) -> String {
        let offer = self.client_offer_params();
        let mut out = String::with_capacity(128);
        out.push_str(EXTENSION_NAME);
        if offer.server_no_context_takeover {
            push_param(&mut out, SERVER_NO_CONTEXT_TAKEOVER, None);
        }
        if offer.client_no_context_takeover {
            push_param(&mut out, CLIENT_NO_CONTEXT_TAKEOVER, None);
        }
        if let Some(bits) = offer.server_max_window_bits {
            push_param(&mut out, SERVER_MAX_WINDOW_BITS, Some(bits));
        }
        if let Some(bits) = offer.client_max_window_bits {
            push_param(&mut out, CLIENT_MAX_WINDOW_BITS, bits);
        }
        out
    }

    /// Client side: validates the server's `Sec-WebSocket-Extensions`
    /// response value against what [`client_offer`](Self::client_offer) sent.
    ///
    /// The value must hold exactly one extension, `permessage-deflate`
    /// (we offered nothing else). Its parameters must be known, not repeated
    /// and in range; `client_max_window_bits` needs a value no larger than any
    /// value we offered. Because accepting an offer means accepting all its
    /// parameters (RFC 7692 7.1.1.1 and 7.1.2.1), a response that drops a
    /// requested `server_no_context_takeover` or `server_max_window_bits`, or
    /// raises the latter, is rejected too. Any violation is
    /// [`DeflateError::Negotiation`], which must fail the connection.
    pub fn accept_client_response(
        &self,
        header_value: &str,
    ) -> Result<DeflateParams, DeflateError> {
        let offer = self.client_offer_params();
        let mut elements = split_top_level_commas(header_value).filter(|e| !e.trim().is_empty());
        let first = elements
            .next()
            .ok_or_else(|| negotiation("empty extension response"))?;
        if elements.next().is_some() {
            return Err(negotiation(
                "server accepted more than the one extension offered",
            ));
        }
        let element = parse_element(first).map_err(DeflateError::Negotiation)?;
        if !element.name.eq_ignore_ascii_case(EXTENSION_NAME) {
            return Err(DeflateError::Negotiation(format!(
                "server accepted extension {:?}, which was not offered",
                element.name
            )));
        }
        let response = interpret(&element.params, true).map_err(DeflateError::Negotiation)?;

        if offer.server_no_context_takeover && !response.server_no_context_takeover {
            return Err(negotiation(
                "server ignored the requested server_no_context_takeover",
            ));
        }
        let server_bits = match (
            offer.server_max_window_bits,
            response.server_max_window_bits,
        ) {
            (Some(offered), Some(got)) if got > offered => {
                return Err(DeflateError::Negotiation(format!(
                    "server_max_window_bits={got} exceeds the requested {offered}"
                )));
            }
            (Some(_), None) => {
                return Err(negotiation(
                    "server ignored the requested server_max_window_bits",
                ));
            }
            (_, Some(got)) => got,
            (None, None) => MAX_WINDOW_BITS,
        };
        let client_bits = match (
            offer.client_max_window_bits,
            response.client_max_window_bits,
        ) {
            (None, Some(_)) => {
                return Err(negotiation(
                    "server sent client_max_window_bits, which was not offered",
                ));
            }
            (Some(Some(offered)), Some(Some(got))) if got > offered => {
                return Err(DeflateError::Negotiation(format!(
                    "client_max_window_bits={got} exceeds the offered {offered}"
                )));
            }
            // `interpret` already insists on a value in a response.
            (_, Some(got)) => got.unwrap_or(MAX_WINDOW_BITS),
            (_, None) => MAX_WINDOW_BITS,
        };

        Ok(DeflateParams {
            server_no_context_takeover: response.server_no_context_takeover,
            client_no_context_takeover: response.client_no_context_takeover
                || self.client_no_context_takeover,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits.min(clamp_window_bits(self.client_max_window_bits)),
        })
    }
}

/// The compression state of one connection: a compressor for what we send
/// and an inflater for what we receive.
///
/// Both zlib states are allocated on first use, so a connection that never
/// sends (or never receives) a compressed message does not pay for them.
///
/// Window sizes: zlib cannot deflate with a 256-byte (8-bit) window; asked
/// for one it quietly uses 512 bytes, whose back-references a peer holding a
/// 256-byte window could not resolve. When our sending direction is limited
/// to 8 bits we therefore compress at level 0, which emits only stored
/// blocks — no back-references at all, valid for every window size.
///
/// Inflating always uses a 15-bit window, which decodes data made with any
/// smaller one (8 bits included, which flate2 would not even accept). A
/// smaller inflate window would save nothing: zlib-rs allocates 32 KiB for
/// the inflate window whatever size is asked for. The consequence is that a
/// peer overstepping its negotiated window is tolerated rather than caught.
///
/// After any error the context has been reset and the connection should be
/// failed (1009 for [`DeflateError::TooBig`], 1007 otherwise): with context
/// takeover, later messages would no longer decode.
pub struct DeflateContext {
    compressor: Option<Compress>,
    decompressor: Option<Decompress>,
    /// zlib level for our direction (0 when limited to an 8-bit window).
    level: u32,
    /// zlib window bits for our direction, 9..=15.
    compress_window_bits: u8,
    /// Our direction has no context takeover.
    reset_compressor: bool,
    /// The peer's direction has no context takeover.
    reset_decompressor: bool,
    /// The peer ended the DEFLATE stream (a block with BFINAL set) inside the
    /// current message: ignore the rest of it and start afresh afterwards.
    stream_ended: bool,
}

impl fmt::Debug for DeflateContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeflateContext")
            .field("level", &self.level)
            .field("compress_window_bits", &self.compress_window_bits)
            .field("reset_compressor", &self.reset_compressor)
            .field("reset_decompressor", &self.reset_decompressor)
            .finish_non_exhaustive()
    }
}

impl DeflateContext {
    /// Creates the context for one connection from the negotiated `params`,
    /// our `role` (which decides which half of `params` is ours) and our
    /// `config` (compression level; our direction may reset more often and use
    /// a smaller window than agreed).
    pub fn new(params: DeflateParams, role: Role, config: &DeflateConfig) -> Self {
        let (our_reset, our_bits, their_reset, config_reset, config_bits) = match role {
            Role::Server => (
                params.server_no_context_takeover,
                params.server_max_window_bits,
                params.client_no_context_takeover,
                config.server_no_context_takeover,
                config.server_max_window_bits,
            ),
            Role::Client => (
                params.client_no_context_takeover,
                params.client_max_window_bits,
                params.server_no_context_takeover,
                config.client_no_context_takeover,
                config.client_max_window_bits,
            ),
        };
        let our_bits = clamp_window_bits(our_bits).min(clamp_window_bits(config_bits));
        // See the type's documentation: an 8-bit window is honoured by
        // emitting stored blocks only, through a 9-bit zlib compressor.
        let level = if our_bits < ZLIB_MIN_WINDOW_BITS {
            0
        } else {
            config.compression_level.min(9)
        };
        Self {
            compressor: None,
            decompressor: None,
            level,
            compress_window_bits: our_bits.max(ZLIB_MIN_WINDOW_BITS),
            reset_compressor: our_reset || config_reset,
            reset_decompressor: their_reset,
            stream_ended: false,
        }
    }

    /// Compresses one whole message payload and appends the result to `out`,
    /// without the trailing `0x00 0x00 0xff 0xff` (RFC 7692 7.2.1).
    ///
    /// With context takeover the compressor keeps its window for the next
    /// message; otherwise it is reset afterwards. An empty payload becomes
    /// the single byte `0x00`. Output space is sized from the payload (about
    /// `payload.len() + 64`, spare capacity already in `out` first) and grown
    /// only for incompressible data.
    pub fn compress(&mut self, payload: &[u8], out: &mut BytesMut) -> Result<(), DeflateError> {
        if payload.is_empty() {
            // An empty stored block minus its LEN/NLEN: a valid empty message
            // at any point of the stream, since every message ends on a byte
            // boundary. zlib would refuse a second flush in a row without
            // input, so do not ask it.
            out.extend_from_slice(&[0x00]);
            return Ok(());
        }
        let (level, bits) = (self.level, self.compress_window_bits);
        let compressor = self.compressor.get_or_insert_with(|| {
            Compress::new_with_window_bits(Compression::new(level), false, bits)
        });

        let start = out.len();
        // Enough for incompressible data: stored blocks cost 5 bytes per
        // 64 KiB, the sync flush a few more.
        let wanted = payload
            .len()
            .saturating_add(payload.len() >> 12)
            .saturating_add(COMPRESS_SLACK);
        let spare = out.capacity() - out.len();
        let mut room = if spare >= COMPRESS_SLACK {
            spare.min(wanted)
        } else {
            wanted
        };
        let mut input = payload;
        loop {
            let len = out.len();
            out.resize(len + room, 0);
            let (in_before, out_before) = (compressor.total_in(), compressor.total_out());
            let status = compressor.compress(input, &mut out[len..], FlushCompress::Sync);
            let consumed = delta(in_before, compressor.total_in());
            let produced = delta(out_before, compressor.total_out());
            out.truncate(len + produced);
            if let Err(e) = status {
                out.truncate(start);
                compressor.reset();
                return Err(DeflateError::Corrupt(format!("compressor failed: {e}")));
            }
            input = input.get(consumed..).unwrap_or_default();
            if produced < room && input.is_empty() {
                break;
            }
            if produced == 0 && consumed == 0 {
                out.truncate(start);
                compressor.reset();
                return Err(DeflateError::Corrupt("compressor made no progress".into()));
            }
            // Output space ran out: what is left is about the unread input
            // plus what zlib holds back (a fraction of what it just wrote).
            room = input
                .len()
                .saturating_add(room / 8)
                .max(COMPRESS_SLACK * 16);
        }

        if !out[start..].ends_with(&SYNC_TAIL) {
            out.truncate(start);
            compressor.reset();
            return Err(DeflateError::Corrupt(
                "compressor did not end with a sync flush".into(),
            ));
        }
        out.truncate(out.len() - SYNC_TAIL.len());
        if self.reset_compressor {
            compressor.reset();
        }
        Ok(())
    }

    /// Inflates one chunk of a compressed message as it arrives and appends
    /// the output to `out`. A message may arrive in many frames and each frame
    /// in many pieces; `fin` marks the last chunk (which may be empty). At
    /// the end of the message `0x00 0x00 0xff 0xff` is fed in (RFC 7692
    /// 7.2.2) and, when the peer's direction has no context takeover, the
    /// inflater is reset.
    ///
    /// `limit` bounds `out.len()` (including whatever `out` held before the
    /// call): output is produced in bounded steps and
    /// [`DeflateError::TooBig`] is returned as soon as it would pass the limit,
    /// so a decompression bomb never makes `out` grow much beyond `limit`.
    /// The contents of `out` past its length on entry are unspecified after an
    /// error. Invalid data is [`DeflateError::Corrupt`].
    ///
    /// A peer may end a message with a DEFLATE block that has BFINAL set
    /// (RFC 7692 7.2.3.5); the bytes after it in that message are ignored and
    /// the inflater starts a new stream with the next message.
    pub fn decompress(
        &mut self,
        input: &[u8],
        fin: bool,
        out: &mut BytesMut,
        limit: usize,
    ) -> Result<(), DeflateError> {
        let result = self.decompress_inner(input, fin, out, limit);
        if result.is_err() || (fin && (self.stream_ended || self.reset_decompressor)) {
            if let Some(d) = self.decompressor.as_mut() {
                d.reset(false);
            }
            self.stream_ended = false;
        }
        result
    }

    fn decompress_inner(
        &mut self,
        input: &[u8],
        fin: bool,
        out: &mut BytesMut,
        limit: usize,
    ) -> Result<(), DeflateError> {
        if self.stream_ended || (input.is_empty() && !fin) {
            return Ok(());
        }
        let decompressor = self
            .decompressor
            .get_or_insert_with(|| Decompress::new_with_window_bits(false, MAX_WINDOW_BITS));
        if !input.is_empty() {
            self.stream_ended = inflate(decompressor, input, out, limit)?;
        }
        if fin && !self.stream_ended {
            self.stream_ended = inflate(decompressor, &SYNC_TAIL, out, limit)?;
        }
        Ok(())
    }
}

/// Feeds all of `input` to `decompressor`, appending output to `out` in
/// bounded steps and never letting `out.len()` pass `limit`. Returns whether
/// the DEFLATE stream ended (BFINAL), in which case the rest of `input` is
/// ignored.
fn inflate(
    decompressor: &mut Decompress,
    mut input: &[u8],
    out: &mut BytesMut,
    limit: usize,
) -> Result<bool, DeflateError> {
    let start = out.len();
    let estimate = input
        .len()
        .saturating_mul(4)
        .clamp(INFLATE_MIN_STEP, INFLATE_MAX_STEP);
    let spare = out.capacity() - out.len();
    // Start in the spare capacity the caller already has, to avoid
    // reallocating; grow from the estimate when it fills up.
    let mut step = if spare >= INFLATE_MIN_STEP {
        spare.min(estimate)
    } else {
        estimate
    };
    loop {
        if out.len() > limit {
            return Err(DeflateError::TooBig { limit });
        }
        // One byte past the limit is enough to learn that the limit is hit.
        let headroom = (limit - out.len()).saturating_add(1);
        let room = step.min(headroom);
        let len = out.len();
        out.resize(len + room, 0);
        let (in_before, out_before) = (decompressor.total_in(), decompressor.total_out());
        let status = decompressor.decompress(input, &mut out[len..], FlushDecompress::None);
        let consumed = delta(in_before, decompressor.total_in());
        let produced = delta(out_before, decompressor.total_out());
        out.truncate(len + produced);
        let status = match status {
            Ok(status) => status,
            Err(e) => {
                out.truncate(start);
                return Err(DeflateError::Corrupt(
                    e.message().unwrap_or("invalid deflate stream").to_owned(),
                ));
            }
        };
        if out.len() > limit {
            return Err(DeflateError::TooBig { limit });
        }
        input = input.get(consumed..).unwrap_or_default();
        if status == Status::StreamEnd {
            return Ok(true);
        }
        if produced < room {
            // Output space left over: zlib stopped for lack of input.
            if input.is_empty() {
                return Ok(false);
            }
            if consumed == 0 && produced == 0 {
                out.truncate(start);
                return Err(DeflateError::Corrupt("inflater made no progress".into()));
            }
        } else {
            step = step.max(estimate).saturating_mul(2).min(INFLATE_MAX_STEP);
        }
    }
}

/// How far a zlib byte counter moved during one call (bounded by the slice
/// lengths handed to zlib, so it always fits).
fn delta(before: u64, after: u64) -> usize {
    usize::try_from(after.saturating_sub(before)).unwrap_or(usize::MAX)
}

fn clamp_window_bits(bits: u8) -> u8 {
    bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS)
}

fn negotiation(msg: &str) -> DeflateError {
    DeflateError::Negotiation(msg.to_owned())
}

fn push_param(out: &mut String, name: &str, value: Option<u8>) {
    out.push_str("; ");
    out.push_str(name);
    if let Some(v) = value {
        out.push('=');
        out.push_str(&v.to_string());
    }
}

/// What our client offers.
struct ClientOffer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `None`: not offered; `Some(None)`: offered without a value.
    client_max_window_bits: Option<Option<u8>>,
}

/// The permessage-deflate parameters of one offer or response.
#[derive(Debug, Default, PartialEq, Eq)]
struct PdParams {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `None`: absent; `Some(None)`: present without a value (offers only).
    client_max_window_bits: Option<Option<u8>>,
}

/// Interprets the parameters of a permessage-deflate offer (`response` false)
/// or response (`response` true), rejecting unknown and repeated parameters
/// and invalid values (RFC 7692 7.1).
fn interpret(params: &[(&str, Option<String>)], response: bool) -> Result<PdParams, String> {
    let mut p = PdParams::default();
    let mut seen = [false; 4];
    for (name, value) in params {
        let value = value.as_deref();
        let index = [
            SERVER_NO_CONTEXT_TAKEOVER,
            CLIENT_NO_CONTEXT_TAKEOVER,
            SERVER_MAX_WINDOW_BITS,
            CLIENT_MAX_WINDOW_BITS,
        ]
        .iter()
        .position(|known| name.eq_ignore_ascii_case(known))
        .ok_or_else(|| format!("unknown parameter {name:?}"))?;
        if std::mem::replace(&mut seen[index], true) {
            return Err(format!("parameter {name} repeated"));
        }
        match index {
            0 | 1 => {
                if value.is_some() {
                    return Err(format!("parameter {name} takes no value"));
                }
                if index == 0 {
                    p.server_no_context_takeover = true;
                } else {
                    p.client_no_context_takeover = true;
                }
            }
            2 => {
                let v = value.ok_or_else(|| format!("parameter {name} needs a value"))?;
                p.server_max_window_bits = Some(parse_window_bits(name, v)?);
            }
            _ => {
                p.client_max_window_bits = Some(match value {
                    Some(v) => Some(parse_window_bits(name, v)?),
                    None if response => return Err(format!("parameter {name} needs a value")),
                    None => None,
                });
            }
        }
    }
    Ok(p)
}

/// A window size: a decimal integer 8..=15 without leading zeros.
fn parse_window_bits(name: &str, value: &str) -> Result<u8, String> {
    let valid = !value.is_empty()
        && value.len() <= 2
        && !value.starts_with('0')
        && value.bytes().all(|b| b.is_ascii_digit());
    match value.parse::<u8>() {
        Ok(bits) if valid && (MIN_WINDOW_BITS..=MAX_WINDOW_BITS).contains(&bits) => Ok(bits),
        _ => Err(format!("parameter {name} has invalid value {value:?}")),
    }
}

/// One extension from a `Sec-WebSocket-Extensions` list.
#[derive(Debug)]
struct Element<'a> {
    name: &'a str,
    /// Parameter names and their values, quoted values already unquoted.
    params: Vec<(&'a str, Option<String>)>,
}

/// Splits a header value on commas outside quoted strings.
fn split_top_level_commas(value: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(value);
    std::iter::from_fn(move || {
        let s = rest?;
        let (mut quoted, mut escaped) = (false, false);
        for (i, b) in s.bytes().enumerate() {
            match b {
                _ if escaped => escaped = false,
                b'\\' if quoted => escaped = true,
                b'"' => quoted = !quoted,
                b',' if !quoted => {
                    rest = Some(&s[i + 1..]);
                    return Some(&s[..i]);
                }
                _ => {}
            }
        }
        rest = None;
        Some(s)
    })
}

/// Parses `token *( OWS ";" OWS token [ OWS "=" OWS ( token / quoted-string ) ] )`
/// (RFC 6455 section 9.1), with optional whitespace around.
fn parse_element(s: &str) -> Result<Element<'_>, String> {
    let mut c = Cursor { s, pos: 0 };
    c.skip_ows();
    let name = c.token().ok_or("missing extension name")?;
    let mut params = Vec::new();
    loop {
        c.skip_ows();
        match c.peek() {
            None => break,
            Some(b';') => c.pos += 1,
            Some(_) => return Err(format!("unexpected character in extension {s:?}")),
        }
        c.skip_ows();
        let pname = c.token().ok_or("missing parameter name")?;
        c.skip_ows();
        let value = if c.peek() == Some(b'=') {
            c.pos += 1;
            c.skip_ows();
            let v = if c.peek() == Some(b'"') {
                c.quoted()
            } else {
                c.token().map(str::to_owned)
            };
            Some(v.ok_or_else(|| format!("bad value for parameter {pname}"))?)
        } else {
            None
        };
        params.push((pname, value));
    }
    Ok(Element { name, params })
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// A non-empty run of token characters (all ASCII, so slicing is safe).
    fn token(&mut self) -> Option<&'a str> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        self.s.get(start..self.pos).filter(|t| !t.is_empty())
    }

    /// A quoted string whose unescaped content is a token (RFC 6455 9.1).
    fn quoted(&mut self) -> Option<String> {
        if self.peek() != Some(b'"') {
            return None;
        }
        self.pos += 1;
        let mut value = String::new();
        loop {
            let b = self.peek()?;
            self.pos += 1;
            match b {
                b'"' => return (!value.is_empty()).then_some(value),
                b'\\' => {
                    let escaped = self.peek().filter(|&b| is_tchar(b))?;
                    self.pos += 1;
                    value.push(char::from(escaped));
                }
                b if is_tchar(b) => value.push(char::from(b)),
                _ => return None,
            }
        }
    }
}

/// RFC 7230 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(params: DeflateParams) -> DeflateContext {
        DeflateContext::new(params, Role::Server, &DeflateConfig::default())
    }

    fn client(params: DeflateParams) -> DeflateContext {
        DeflateContext::new(params, Role::Client, &DeflateConfig::default())
    }

    fn compress(ctx: &mut DeflateContext, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        ctx.compress(payload, &mut out).unwrap();
        out.to_vec()
    }

    fn decompress(ctx: &mut DeflateContext, input: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        ctx.decompress(input, true, &mut out, usize::MAX).unwrap();
        out.to_vec()
    }

    /// Deterministic pseudo-random bytes (xorshift64).
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect()
    }

    /// Compressible text built from a small vocabulary.
    fn text(seed: u64, len: usize) -> Vec<u8> {
        const WORDS: [&str; 12] = [
            "duplex ", "message ", "frame ", "socket ", "the ", "server ", "client ", "hello ",
            "deflate ", "window ", "{\"id\":", "42}, ",
        ];
        let mut out = Vec::with_capacity(len + 16);
        for b in noise(seed, len) {
            if out.len() >= len {
                break;
            }
            out.extend_from_slice(WORDS[usize::from(b) % WORDS.len()].as_bytes());
        }
        out.truncate(len);
        out
    }

    /// Data whose repeats sit at many distances, from 200 bytes to 25 KB, so
    /// a compressor using too large a window would emit references a smaller
    /// window cannot resolve.
    fn repeats(seed: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, size) in [200, 400, 700, 1500, 3000, 6000, 12000, 25000]
            .into_iter()
            .enumerate()
        {
            let chunk = noise(seed + i as u64, size);
            out.extend_from_slice(&chunk);
            out.extend_from_slice(&chunk);
        }
        out
    }

    /// A peer compressor: flate2 directly, with an exact window.
    fn peer_compress(c: &mut Compress, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(payload.len() * 2 + 64);
        let before = c.total_in();
        loop {
            let consumed = delta(before, c.total_in());
            c.compress_vec(&payload[consumed..], &mut out, FlushCompress::Sync)
                .unwrap();
            if delta(before, c.total_in()) == payload.len() && out.len() < out.capacity() {
                break;
            }
            out.reserve(out.capacity());
        }
        assert!(out.ends_with(&SYNC_TAIL));
        out.truncate(out.len() - 4);
        out
    }

    /// A peer inflater: flate2 directly, with an exact window, taking output
    /// 64 bytes at a time.
    fn peer_decompress(d: &mut Decompress, compressed: &[u8], expected_len: usize) -> Vec<u8> {
        let mut input = compressed.to_vec();
        input.extend_from_slice(&SYNC_TAIL);
        let mut out = Vec::with_capacity(expected_len + 64);
        let mut rest = &input[..];
        loop {
            let mut buf = [0u8; 64];
            let (in_before, out_before) = (d.total_in(), d.total_out());
            let status = d.decompress(rest, &mut buf, FlushDecompress::None).unwrap();
            assert_ne!(status, Status::StreamEnd);
            let produced = delta(out_before, d.total_out());
            out.extend_from_slice(&buf[..produced]);
            rest = &rest[delta(in_before, d.total_in())..];
            if rest.is_empty() && produced < buf.len() {
                return out;
            }
        }
    }

    /// Walks a raw DEFLATE stream that must consist of stored blocks only
    /// and returns their contents.
    fn stored_blocks_only(stream: &[u8]) -> Vec<u8> {
        let mut data = Vec::new();
        let mut i = 0;
        while i < stream.len() {
            let header = stream[i];
            assert_eq!(header & 0b110, 0, "block at byte {i} is not a stored block");
            let len = usize::from(u16::from_le_bytes([stream[i + 1], stream[i + 2]]));
            let nlen = u16::from_le_bytes([stream[i + 3], stream[i + 4]]);
            assert_eq!(!nlen, len as u16);
            data.extend_from_slice(&stream[i + 5..i + 5 + len]);
            i += 5 + len;
        }
        data
    }

    // ---- RFC 7692 section 7.2.3 examples ----

    const HELLO: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

    #[test]
    fn rfc_hello_compresses_to_the_example() {
        let mut ctx = server(DeflateParams::default());
        assert_eq!(compress(&mut ctx, b"Hello"), HELLO);
        // 7.2.3.2: the second message reuses the first one's window. The RFC
        // shows `f2 00 11 00 00`; zlib-rs picks an equally valid, shorter
        // encoding of the same back-reference, so check what it means.
        let second = compress(&mut ctx, b"Hello");
        assert!(second.len() <= 5, "{second:02x?}");
        let mut peer = Decompress::new_with_window_bits(false, 15);
        assert_eq!(peer_decompress(&mut peer, &HELLO, 5), b"Hello");
        assert_eq!(peer_decompress(&mut peer, &second, 5), b"Hello");
    }

    #[test]
    fn rfc_hello_without_context_takeover_repeats() {
        let params = DeflateParams {
            server_no_context_takeover: true,
            ..DeflateParams::default()
        };
        let mut ctx = server(params);
        assert_eq!(compress(&mut ctx, b"Hello"), HELLO);
        assert_eq!(compress(&mut ctx, b"Hello"), HELLO);
    }

    #[test]
    fn rfc_examples_decompress() {
        // 7.2.3.1: a single message, and the same split over two frames.
        let mut ctx = client(DeflateParams::default());
        assert_eq!(decompress(&mut ctx, &HELLO), b"Hello");
        let mut ctx = client(DeflateParams::default());
        let mut out = BytesMut::new();
        ctx.decompress(&HELLO[..3], false, &mut out, 100).unwrap();
        ctx.decompress(&HELLO[3..], true, &mut out, 100).unwrap();
        assert_eq!(&out[..], b"Hello");

        // 7.2.3.2: sharing the LZ77 window between messages.
        let mut ctx = client(DeflateParams::default());
        assert_eq!(decompress(&mut ctx, &HELLO), b"Hello");
        assert_eq!(
            decompress(&mut ctx, &[0xf2, 0x00, 0x11, 0x00, 0x00]),
            b"Hello"
        );

        // 7.2.3.3: a stored (uncompressed) block.
        let mut ctx = client(DeflateParams::default());
        let stored = [
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        assert_eq!(decompress(&mut ctx, &stored), b"Hello");

        // 7.2.3.4: two DEFLATE blocks in one message.
        let mut ctx = client(DeflateParams::default());
        let two = [
            0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
        ];
        assert_eq!(decompress(&mut ctx, &two), b"Hello");

        // 7.2.3.5: a block with BFINAL set; the next message starts afresh.
        let mut ctx = client(DeflateParams::default());
        let bfinal = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        assert_eq!(decompress(&mut ctx, &bfinal), b"Hello");
        assert_eq!(decompress(&mut ctx, &bfinal), b"Hello");
        assert_eq!(decompress(&mut ctx, &HELLO), b"Hello");
        assert_eq!(
            decompress(&mut ctx, &[0xf2, 0x00, 0x11, 0x00, 0x00]),
            b"Hello"
        );
    }

    #[test]
    fn empty_messages() {
        for takeover in [false, true] {
            let params = DeflateParams {
                client_no_context_takeover: !takeover,
                ..DeflateParams::default()
            };
            let mut tx = client(params);
            let mut rx = server(params);
            for payload in [&b""[..], b"", b"abc", b"", b"", b"abcabc", b""] {
                let wire = compress(&mut tx, payload);
                if payload.is_empty() {
                    assert_eq!(wire, [0x00]);
                }
                assert_eq!(decompress(&mut rx, &wire), payload);
            }
        }
    }

    // ---- round trips ----

    #[test]
    fn round_trips_both_roles_with_and_without_takeover() {
        for server_nct in [false, true] {
            for client_nct in [false, true] {
                let params = DeflateParams {
                    server_no_context_takeover: server_nct,
                    client_no_context_takeover: client_nct,
                    ..DeflateParams::default()
                };
                let mut s = server(params);
                let mut c = client(params);
                for i in 0..20u64 {
                    let small = text(i, 20 + (i as usize * 37) % 1000);
                    let wire = compress(&mut s, &small);
                    assert_eq!(decompress(&mut c, &wire), small);
                    let wire = compress(&mut c, &small);
                    assert_eq!(decompress(&mut s, &wire), small);
                }
                let big = text(99, 300_000);
                let wire = compress(&mut s, &big);
                assert!(wire.len() < big.len() / 2);
                assert_eq!(decompress(&mut c, &wire), big);
                let random = noise(7, 100_000);
                let wire = compress(&mut c, &random);
                assert_eq!(decompress(&mut s, &wire), random);
            }
        }
    }

    #[test]
    fn context_takeover_shrinks_repeated_messages() {
        let msg = noise(3, 500);
        let mut with = server(DeflateParams::default());
        let params = DeflateParams {
            server_no_context_takeover: true,
            ..DeflateParams::default()
        };
        let mut without = server(params);
        let first = compress(&mut with, &msg);
        assert_eq!(compress(&mut without, &msg), first);
        assert!(compress(&mut with, &msg).len() < 30);
        assert_eq!(compress(&mut without, &msg), first);
    }

    #[test]
    fn config_no_context_takeover_applies_to_own_direction() {
        // Params say takeover, but our config wants resets: the compressor
        // still produces output a takeover-expecting peer can read.
        let config = DeflateConfig {
            client_no_context_takeover: true,
            ..DeflateConfig::default()
        };
        let mut c = DeflateContext::new(DeflateParams::default(), Role::Client, &config);
        let mut s = server(DeflateParams::default());
        let msg = text(5, 400);
        let first = compress(&mut c, &msg);
        assert_eq!(compress(&mut c, &msg), first);
        assert_eq!(decompress(&mut s, &first), msg);
        assert_eq!(decompress(&mut s, &first), msg);
    }

    #[test]
    fn compression_levels() {
        let msg = text(11, 20_000);
        for level in [0, 1, 6, 9, 200] {
            let config = DeflateConfig {
                compression_level: level,
                ..DeflateConfig::default()
            };
            let mut s = DeflateContext::new(DeflateParams::default(), Role::Server, &config);
            let mut c = client(DeflateParams::default());
            let wire = compress(&mut s, &msg);
            if level == 0 {
                assert_eq!(stored_blocks_only(&[&wire[..], &SYNC_TAIL].concat()), msg);
            }
            assert_eq!(decompress(&mut c, &wire), msg);
        }
    }

    #[test]
    fn our_window_bits_are_respected() {
        for bits in 8..=15u8 {
            for role in [Role::Server, Role::Client] {
                let params = DeflateParams {
                    server_max_window_bits: bits,
                    client_max_window_bits: bits,
                    ..DeflateParams::default()
                };
                for level in [1, 6, 9] {
                    let config = DeflateConfig {
                        compression_level: level,
                        ..Default::default()
                    };
                    let mut ctx = DeflateContext::new(params, role, &config);
                    // flate2 cannot inflate with 8 bits; the reference inflater
                    // below checks every distance instead.
                    let mut peer = Decompress::new_with_window_bits(false, bits.max(9));
                    let mut stream = Vec::new();
                    let mut plain = Vec::new();
                    for i in 0..3 {
                        let msg = if i == 1 {
                            text(bits.into(), 5000)
                        } else {
                            repeats(i)
                        };
                        let wire = compress(&mut ctx, &msg);
                        assert_eq!(peer_decompress(&mut peer, &wire, msg.len()), msg);
                        if bits == 8 {
                            let blocks = [&wire[..], &SYNC_TAIL].concat();
                            assert_eq!(stored_blocks_only(&blocks), msg);
                        }
                        stream.extend_from_slice(&wire);
                        stream.extend_from_slice(&SYNC_TAIL);
                        plain.extend_from_slice(&msg);
                    }
                    let (decoded, max_distance) = reference::inflate(&stream).unwrap();
                    assert_eq!(decoded, plain);
                    assert!(
                        max_distance <= 1 << bits,
                        "bits {bits} level {level}: distance {max_distance}"
                    );
                }
            }
        }
    }

    #[test]
    fn config_window_bits_limit_our_direction() {
        let data = repeats(2);
        let config = DeflateConfig {
            server_max_window_bits: 10,
            ..DeflateConfig::default()
        };
        let mut ctx = DeflateContext::new(DeflateParams::default(), Role::Server, &config);
        let wire = compress(&mut ctx, &data);
        let (decoded, max_distance) =
            reference::inflate(&[&wire[..], &SYNC_TAIL].concat()).unwrap();
        assert_eq!(decoded, data);
        assert!(max_distance <= 1024, "{max_distance}");
    }

    #[test]
    fn a_full_window_uses_long_distances() {
        // Sanity check of the tests above: with a 15-bit window the test data
        // does produce distances no small window could resolve.
        let data = repeats(3);
        let mut ctx = server(DeflateParams::default());
        let wire = compress(&mut ctx, &data);
        let (decoded, max_distance) =
            reference::inflate(&[&wire[..], &SYNC_TAIL].concat()).unwrap();
        assert_eq!(decoded, data);
        assert!(max_distance > 16_384, "{max_distance}");
        // And the reference inflater agrees with zlib on the RFC examples.
        let stored = [
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        let stream = [
            &HELLO[..],
            &SYNC_TAIL,
            &[0xf2, 0x00, 0x11, 0x00, 0x00],
            &SYNC_TAIL,
        ]
        .concat();
        assert_eq!(
            reference::inflate(&stream).unwrap(),
            (b"HelloHello".to_vec(), 5)
        );
        let stream = [&stored[..], &SYNC_TAIL].concat();
        assert_eq!(reference::inflate(&stream).unwrap(), (b"Hello".to_vec(), 0));
    }

    /// A small, slow DEFLATE decoder (RFC 1951) for tests: it reports the
    /// longest back-reference distance, which zlib-rs cannot be made to
    /// police (its inflate window is always 32 KiB).
    mod reference {
        const LEN_BASE: [usize; 29] = [
            3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99,
            115, 131, 163, 195, 227, 258,
        ];
        const LEN_EXTRA: [u32; 29] = [
            0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
        ];
        const DIST_BASE: [usize; 30] = [
            1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025,
            1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
        ];
        const DIST_EXTRA: [u32; 30] = [
            0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12,
            12, 13, 13,
        ];
        const CODE_LENGTH_ORDER: [usize; 19] = [
            16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
        ];

        struct Bits<'a> {
            data: &'a [u8],
            pos: usize,
        }

        impl Bits<'_> {
            fn bits(&mut self, n: u32) -> Option<u32> {
                let mut v = 0;
                for i in 0..n {
                    let byte = *self.data.get(self.pos / 8)?;
                    v |= u32::from((byte >> (self.pos % 8)) & 1) << i;
                    self.pos += 1;
                }
                Some(v)
            }
        }

        /// Canonical Huffman code: symbols counted per length, in order.
        struct Huffman {
            counts: [usize; 16],
            symbols: Vec<usize>,
        }

        impl Huffman {
            fn new(lengths: &[u8]) -> Self {
                let mut counts = [0; 16];
                for &l in lengths {
                    counts[usize::from(l)] += 1;
                }
                counts[0] = 0;
                let mut symbols = Vec::new();
                for len in 1..16u8 {
                    for (sym, &l) in lengths.iter().enumerate() {
                        if l == len {
                            symbols.push(sym);
                        }
                    }
                }
                Self { counts, symbols }
            }

            fn decode(&self, bits: &mut Bits<'_>) -> Option<usize> {
                let (mut code, mut first, mut index) = (0usize, 0usize, 0usize);
                for len in 1..16 {
                    code |= bits.bits(1)? as usize;
                    let count = self.counts[len];
                    if code < first + count {
                        return self.symbols.get(index + code - first).copied();
                    }
                    index += count;
                    first = (first + count) << 1;
                    code <<= 1;
                }
                None
            }
        }

        /// Inflates a whole raw DEFLATE stream (ending at a block boundary)
        /// and returns the output and the longest distance used.
        pub(super) fn inflate(data: &[u8]) -> Option<(Vec<u8>, usize)> {
            let mut bits = Bits { data, pos: 0 };
            let mut out = Vec::new();
            let mut max_distance = 0;
            while bits.pos.div_ceil(8) < data.len() {
                let last = bits.bits(1)? == 1;
                match bits.bits(2)? {
                    0 => {
                        bits.pos = bits.pos.div_ceil(8) * 8;
                        let len = bits.bits(16)? as usize;
                        let nlen = bits.bits(16)? as usize;
                        if len != !nlen & 0xffff {
                            return None;
                        }
                        let start = bits.pos / 8;
                        out.extend_from_slice(data.get(start..start + len)?);
                        bits.pos += len * 8;
                    }
                    kind @ (1 | 2) => {
                        let (lit, dist) = if kind == 1 {
                            let mut l = [8u8; 288];
                            l[144..256].fill(9);
                            l[256..280].fill(7);
                            (Huffman::new(&l), Huffman::new(&[5; 30]))
                        } else {
                            let hlit = bits.bits(5)? as usize + 257;
                            let hdist = bits.bits(5)? as usize + 1;
                            let hclen = bits.bits(4)? as usize + 4;
                            let mut cl = [0u8; 19];
                            for &i in &CODE_LENGTH_ORDER[..hclen] {
                                cl[i] = bits.bits(3)? as u8;
                            }
                            let cl = Huffman::new(&cl);
                            let mut lengths = Vec::new();
                            while lengths.len() < hlit + hdist {
                                let sym = cl.decode(&mut bits)?;
                                let (value, repeat) = match sym {
                                    0..=15 => (sym as u8, 1),
                                    16 => (*lengths.last()?, bits.bits(2)? + 3),
                                    17 => (0, bits.bits(3)? + 3),
                                    _ => (0, bits.bits(7)? + 11),
                                };
                                for _ in 0..repeat {
                                    lengths.push(value);
                                }
                            }
                            (
                                Huffman::new(&lengths[..hlit]),
                                Huffman::new(&lengths[hlit..]),
                            )
                        };
                        loop {
                            let sym = lit.decode(&mut bits)?;
                            if sym < 256 {
                                out.push(sym as u8);
                                continue;
                            }
                            if sym == 256 {
                                break;
                            }
                            let i = sym - 257;
                            let len = LEN_BASE.get(i)? + bits.bits(LEN_EXTRA[i])? as usize;
                            let d = dist.decode(&mut bits)?;
                            let distance = DIST_BASE.get(d)? + bits.bits(DIST_EXTRA[d])? as usize;
                            if distance > out.len() {
                                return None;
                            }
                            max_distance = max_distance.max(distance);
                            for _ in 0..len {
                                out.push(out[out.len() - distance]);
                            }
                        }
                    }
                    _ => return None,
                }
                if last {
                    break;
                }
            }
            Some((out, max_distance))
        }
    }

    #[test]
    fn peer_window_bits_decode() {
        for bits in 9..=15u8 {
            for nct in [false, true] {
                let params = DeflateParams {
                    client_max_window_bits: bits,
                    client_no_context_takeover: nct,
                    ..DeflateParams::default()
                };
                let mut ctx = server(params);
                let mut peer = Compress::new_with_window_bits(Compression::new(6), false, bits);
                for i in 0..3u64 {
                    let msg = if i == 1 { text(i, 3000) } else { repeats(i) };
                    let wire = peer_compress(&mut peer, &msg);
                    if nct {
                        peer.reset();
                    }
                    assert_eq!(decompress(&mut ctx, &wire), msg, "bits {bits}");
                }
            }
        }
        // A peer limited to 8 bits is inflated with 9; zlib's own "8-bit"
        // compressor really uses 9, and that must decode too.
        let params = DeflateParams {
            server_max_window_bits: 8,
            ..DeflateParams::default()
        };
        let mut ctx = client(params);
        let mut peer = Compress::new_with_window_bits(Compression::new(6), false, 9);
        let msg = repeats(9);
        let wire = peer_compress(&mut peer, &msg);
        assert_eq!(decompress(&mut ctx, &wire), msg);
    }

    // ---- incremental input, limits, corruption ----

    #[test]
    fn one_byte_chunks_decompress_identically() {
        let messages = [
            text(1, 100_000),
            repeats(4),
            text(2, 30),
            Vec::new(),
            noise(5, 3000),
        ];
        let mut tx = server(DeflateParams::default());
        let mut whole = client(DeflateParams::default());
        let mut bytewise = client(DeflateParams::default());
        for msg in &messages {
            let wire = compress(&mut tx, msg);
            assert_eq!(decompress(&mut whole, &wire), *msg);
            let mut out = BytesMut::new();
            for (i, b) in wire.iter().enumerate() {
                let fin = i + 1 == wire.len();
                bytewise
                    .decompress(&[*b], fin, &mut out, usize::MAX)
                    .unwrap();
            }
            if wire.is_empty() {
                bytewise
                    .decompress(&[], true, &mut out, usize::MAX)
                    .unwrap();
            }
            assert_eq!(&out[..], &msg[..]);
        }
        // And with the end of the message signalled by an empty chunk.
        let msg = text(8, 2000);
        let wire = compress(&mut tx, &msg);
        let mut out = BytesMut::new();
        for b in &wire {
            bytewise
                .decompress(std::slice::from_ref(b), false, &mut out, usize::MAX)
                .unwrap();
        }
        bytewise
            .decompress(&[], true, &mut out, usize::MAX)
            .unwrap();
        assert_eq!(&out[..], &msg[..]);
    }

    #[test]
    fn decompression_bomb_is_stopped_near_the_limit() {
        let zeros = vec![0u8; 10 * 1024 * 1024];
        let mut peer = Compress::new_with_window_bits(Compression::new(9), false, 15);
        let bomb = peer_compress(&mut peer, &zeros);
        assert!(bomb.len() < 20 * 1024, "bomb is {} bytes", bomb.len());
        let limit = 64 * 1024;

        let mut ctx = server(DeflateParams::default());
        let mut out = BytesMut::new();
        let err = ctx.decompress(&bomb, true, &mut out, limit).unwrap_err();
        assert!(matches!(err, DeflateError::TooBig { limit: l } if l == limit));
        assert!(
            out.capacity() < 256 * 1024,
            "capacity grew to {}",
            out.capacity()
        );

        // Fed in pieces, the way the connection does.
        let mut ctx = server(DeflateParams::default());
        let mut out = BytesMut::new();
        let mut result = Ok(());
        for piece in bomb.chunks(1024) {
            result = ctx.decompress(piece, false, &mut out, limit);
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(result, Err(DeflateError::TooBig { .. })));
        assert!(
            out.capacity() < 256 * 1024,
            "capacity grew to {}",
            out.capacity()
        );
    }

    #[test]
    fn limit_is_exact_and_counts_existing_output() {
        let msg = text(6, 10_000);
        let mut tx = server(DeflateParams {
            server_no_context_takeover: true,
            ..Default::default()
        });
        let wire = compress(&mut tx, &msg);

        let mut rx = client(DeflateParams::default());
        let mut out = BytesMut::new();
        rx.decompress(&wire, true, &mut out, msg.len()).unwrap();
        assert_eq!(&out[..], &msg[..]);

        let mut rx = client(DeflateParams::default());
        let mut out = BytesMut::new();
        let err = rx
            .decompress(&wire, true, &mut out, msg.len() - 1)
            .unwrap_err();
        assert!(matches!(err, DeflateError::TooBig { .. }));

        let mut rx = client(DeflateParams::default());
        let mut out = BytesMut::from(&b"xy"[..]);
        let err = rx
            .decompress(&wire, true, &mut out, msg.len() + 1)
            .unwrap_err();
        assert!(matches!(err, DeflateError::TooBig { .. }));
    }

    #[test]
    fn appends_after_existing_output() {
        let mut tx = server(DeflateParams::default());
        let mut rx = client(DeflateParams::default());
        let mut wire = BytesMut::from(&b"header"[..]);
        tx.compress(b"Hello", &mut wire).unwrap();
        assert_eq!(&wire[..6], b"header");
        assert_eq!(&wire[6..], HELLO);
        let mut out = BytesMut::from(&b"prefix:"[..]);
        rx.decompress(&wire[6..], true, &mut out, 100).unwrap();
        assert_eq!(&out[..], b"prefix:Hello");
    }

    #[test]
    fn corrupt_input_is_reported() {
        let cases: [&[u8]; 4] = [
            // BTYPE 11 is reserved.
            &[0xff, 0xff, 0xff],
            // Stored block whose NLEN does not match LEN.
            &[0x00, 0x05, 0x00, 0x00, 0x00, b'H'],
            // A fixed-Huffman back-reference before any output.
            &[0x02, 0x02, 0x00],
            // A dynamic block declaring 288 literal/length codes.
            &[0xfc, 0xff, 0xff],
        ];
        for case in cases {
            let mut ctx = server(DeflateParams::default());
            let mut out = BytesMut::new();
            let err = ctx.decompress(case, true, &mut out, 1 << 20).unwrap_err();
            assert!(
                matches!(err, DeflateError::Corrupt(_)),
                "{case:02x?}: {err:?}"
            );
        }
        // After an error the context is reset and usable for a fresh stream.
        let mut ctx = server(DeflateParams::default());
        let mut out = BytesMut::new();
        assert!(ctx.decompress(&[0xff, 0xff], true, &mut out, 100).is_err());
        assert_eq!(decompress(&mut ctx, &HELLO), b"Hello");
    }

    #[test]
    fn compress_reuses_spare_capacity_and_grows_when_needed() {
        let mut tx = server(DeflateParams::default());
        let mut rx = client(DeflateParams::default());
        // Compressible: fits in what the caller reserved, no reallocation.
        let msg = text(12, 4000);
        let mut out = BytesMut::with_capacity(msg.len() / 2 + 64);
        let cap = out.capacity();
        tx.compress(&msg, &mut out).unwrap();
        assert_eq!(out.capacity(), cap);
        assert_eq!(decompress(&mut rx, &out), msg);
        // Incompressible, into a small buffer and into an empty one.
        for capacity in [100, 0] {
            let random = noise(13 + capacity as u64, 4000);
            let mut out = BytesMut::with_capacity(capacity);
            tx.compress(&random, &mut out).unwrap();
            assert_eq!(decompress(&mut rx, &out), random);
        }
    }

    #[test]
    fn large_messages_at_every_level() {
        let random = noise(14, 3 << 20);
        let plain = text(15, 3 << 20);
        for level in [0, 1, 9] {
            let config = DeflateConfig {
                compression_level: level,
                ..DeflateConfig::default()
            };
            let mut s = DeflateContext::new(DeflateParams::default(), Role::Server, &config);
            let mut c = client(DeflateParams::default());
            for msg in [&random, &plain] {
                let wire = compress(&mut s, msg);
                assert_eq!(decompress(&mut c, &wire), *msg, "level {level}");
            }
        }
    }

    // ---- negotiation ----

    fn negotiate(config: &DeflateConfig, offers: &[&str]) -> Option<(DeflateParams, String)> {
        config.negotiate_server(offers.iter().copied()).unwrap()
    }

    fn params(snct: bool, cnct: bool, sbits: u8, cbits: u8) -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: snct,
            client_no_context_takeover: cnct,
            server_max_window_bits: sbits,
            client_max_window_bits: cbits,
        }
    }

    #[test]
    fn server_negotiation_default_config() {
        let config = DeflateConfig::default();
        let accepted: &[(&[&str], DeflateParams, &str)] = &[
            (&["permessage-deflate"], params(false, false, 15, 15), "permessage-deflate"),
            (
                &["permessage-deflate; client_max_window_bits"],
                params(false, false, 15, 15),
                "permessage-deflate",
            ),
            (
                &["x-webkit-deflate-frame", "permessage-deflate; client_max_window_bits"],
                params(false, false, 15, 15),
                "permessage-deflate",
            ),
            (
                &["permessage-deflate; server_max_window_bits=10"],
                params(false, false, 10, 15),
                "permessage-deflate; server_max_window_bits=10",
            ),
            (
                &["permessage-deflate; server_max_window_bits=\"10\""],
                params(false, false, 10, 15),
                "permessage-deflate; server_max_window_bits=10",
            ),
            (
                &["permessage-deflate; server_max_window_bits=8"],
                params(false, false, 8, 15),
                "permessage-deflate; server_max_window_bits=8",
            ),
            (
                &["permessage-deflate; client_max_window_bits=\"9\""],
                params(false, false, 15, 9),
                "permessage-deflate; client_max_window_bits=9",
            ),
            (
                &["permessage-deflate; client_max_window_bits=15"],
                params(false, false, 15, 15),
                "permessage-deflate",
            ),
            (
                &["permessage-deflate; server_no_context_takeover; client_no_context_takeover"],
                params(true, true, 15, 15),
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            ),
            (
                &["PerMessage-Deflate; Server_No_Context_Takeover"],
                params(true, false, 15, 15),
                "permessage-deflate; server_no_context_takeover",
            ),
            (
                &["  permessage-deflate ;\tserver_max_window_bits = 12 ; client_max_window_bits  "],
                params(false, false, 12, 15),
                "permessage-deflate; server_max_window_bits=12",
            ),
            (
                &[
                    "permessage-deflate; server_max_window_bits=7",
                    "permessage-deflate; server_max_window_bits=16",
                    "permessage-deflate; server_max_window_bits",
                    "permessage-deflate; server_max_window_bits=010",
                    "permessage-deflate; server_max_window_bits=\"\"",
                    "permessage-deflate; server_max_window_bits=\" 10\"",
                    "permessage-deflate; server_max_window_bits=-1",
                    "permessage-deflate; server_max_window_bits=1e1",
                    "permessage-deflate; server_max_window_bits=\"10",
                    "permessage-deflate; client_max_window_bits=7",
                    "permessage-deflate; client_max_window_bits=\"\"",
                    "permessage-deflate; server_no_context_takeover=1",
                    "permessage-deflate; server_no_context_takeover=\"\"",
                    "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                    "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
                    "permessage-deflate; server_max_window_bits=9; SERVER_MAX_WINDOW_BITS=9",
                    "permessage-deflate; foo",
                    "permessage-deflate; foo=bar",
                    "permessage-deflate;",
                    "permessage-deflate; ; server_no_context_takeover",
                    "permessage-deflate server_no_context_takeover",
                    "permessage-deflate, permessage-deflate",
                    "permessage-deflate; server_max_window_bits=1\u{e9}",
                    "",
                    "permessage-deflate; client_max_window_bits=11",
                ],
                params(false, false, 15, 11),
                "permessage-deflate; client_max_window_bits=11",
            ),
        ];
        for (offers, want_params, want_response) in accepted {
            let (p, response) = negotiate(&config, offers).unwrap_or_else(|| panic!("{offers:?}"));
            assert_eq!(p, *want_params, "{offers:?}");
            assert_eq!(response, *want_response, "{offers:?}");
        }

        let declined: &[&[&str]] = &[
            &[],
            &["x-webkit-deflate-frame"],
            &["deflate-frame; server_no_context_takeover"],
            &[
                "permessage-deflate; server_max_window_bits=7",
                "permessage-deflate; foo",
            ],
            &["permessage-deflate; client_max_window_bits=16"],
            &["permessage-deflate-x"],
        ];
        for offers in declined {
            assert_eq!(negotiate(&config, offers), None, "{offers:?}");
        }
    }

    #[test]
    fn server_negotiation_with_config() {
        let config = DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 11,
            client_max_window_bits: 10,
            ..DeflateConfig::default()
        };
        let table: &[(&str, DeflateParams, &str)] = &[
            (
                "permessage-deflate; client_max_window_bits",
                params(true, true, 11, 10),
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=11; client_max_window_bits=10",
            ),
            (
                // Without client_max_window_bits in the offer the server must
                // not impose one; it can still inflate anything.
                "permessage-deflate",
                params(true, true, 11, 15),
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=11",
            ),
            (
                "permessage-deflate; server_max_window_bits=9; client_max_window_bits=12",
                params(true, true, 9, 10),
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=9; client_max_window_bits=10",
            ),
            (
                "permessage-deflate; server_max_window_bits=13; client_max_window_bits=8",
                params(true, true, 11, 8),
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=11; client_max_window_bits=8",
            ),
        ];
        for (offer, want_params, want_response) in table {
            let (p, response) = negotiate(&config, &[offer]).unwrap();
            assert_eq!(p, *want_params, "{offer}");
            assert_eq!(response, *want_response, "{offer}");
        }

        // Out-of-range config values are clamped.
        let config = DeflateConfig {
            server_max_window_bits: 3,
            client_max_window_bits: 40,
            ..DeflateConfig::default()
        };
        let (p, response) =
            negotiate(&config, &["permessage-deflate; client_max_window_bits"]).unwrap();
        assert_eq!(p, params(false, false, 8, 15));
        assert_eq!(response, "permessage-deflate; server_max_window_bits=8");
    }

    #[test]
    fn client_offers() {
        assert_eq!(
            DeflateConfig::default().client_offer(),
            "permessage-deflate; client_max_window_bits"
        );
        let config = DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 10,
            client_max_window_bits: 12,
            ..DeflateConfig::default()
        };
        assert_eq!(
            config.client_offer(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=12"
        );
    }

    #[test]
    fn client_response_validation_default_config() {
        let config = DeflateConfig::default();
        let ok: &[(&str, DeflateParams)] = &[
            ("permessage-deflate", params(false, false, 15, 15)),
            (" permessage-deflate ", params(false, false, 15, 15)),
            (
                "permessage-deflate; server_no_context_takeover",
                params(true, false, 15, 15),
            ),
            (
                "permessage-deflate; client_no_context_takeover",
                params(false, true, 15, 15),
            ),
            (
                "permessage-deflate; client_max_window_bits=10",
                params(false, false, 15, 10),
            ),
            (
                "permessage-deflate; server_max_window_bits=\"12\"",
                params(false, false, 12, 15),
            ),
            (
                "permessage-deflate; server_max_window_bits=8",
                params(false, false, 8, 15),
            ),
            (
                "Permessage-Deflate; Client_Max_Window_Bits=9; server_no_context_takeover",
                params(true, false, 15, 9),
            ),
        ];
        for (response, want) in ok {
            assert_eq!(
                config.accept_client_response(response).unwrap(),
                *want,
                "{response}"
            );
        }
        let bad = [
            "",
            " ",
            "x-webkit-deflate-frame",
            "permessage-deflate, permessage-deflate",
            "permessage-deflate, x-other",
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; client_max_window_bits=07",
            "permessage-deflate; client_max_window_bits=\"1O\"",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover=true",
            "permessage-deflate; unknown",
            "permessage-deflate;",
            "permessage-deflate; server_max_window_bits=10 x",
        ];
        for response in bad {
            let err = config.accept_client_response(response).unwrap_err();
            assert!(matches!(err, DeflateError::Negotiation(_)), "{response}");
        }
    }

    #[test]
    fn client_response_validation_against_our_offer() {
        let config = DeflateConfig {
            server_no_context_takeover: true,
            server_max_window_bits: 10,
            client_max_window_bits: 12,
            ..DeflateConfig::default()
        };
        let ok: &[(&str, DeflateParams)] = &[
            (
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=10",
                params(true, false, 10, 12),
            ),
            (
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; \
                 client_max_window_bits=11",
                params(true, false, 9, 11),
            ),
            (
                "permessage-deflate; server_max_window_bits=10; server_no_context_takeover; \
                 client_max_window_bits=12",
                params(true, false, 10, 12),
            ),
        ];
        for (response, want) in ok {
            assert_eq!(
                config.accept_client_response(response).unwrap(),
                *want,
                "{response}"
            );
        }
        let bad = [
            // Requested parameters dropped or exceeded.
            "permessage-deflate; server_max_window_bits=10",
            "permessage-deflate; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=11",
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; \
             client_max_window_bits=13",
        ];
        for response in bad {
            let err = config.accept_client_response(response).unwrap_err();
            assert!(matches!(err, DeflateError::Negotiation(_)), "{response}");
        }
    }

    #[test]
    fn client_and_server_agree() {
        let configs = [
            DeflateConfig::default(),
            DeflateConfig {
                server_no_context_takeover: true,
                ..DeflateConfig::default()
            },
            DeflateConfig {
                client_no_context_takeover: true,
                ..DeflateConfig::default()
            },
            DeflateConfig {
                server_max_window_bits: 8,
                client_max_window_bits: 9,
                ..DeflateConfig::default()
            },
            DeflateConfig {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: 12,
                client_max_window_bits: 11,
                compression_level: 9,
                ..DeflateConfig::default()
            },
        ];
        let msg = repeats(21);
        for client_config in &configs {
            for server_config in &configs {
                let offer = client_config.client_offer();
                let (server_params, response) = server_config
                    .negotiate_server(split_top_level_commas(&offer))
                    .unwrap()
                    .unwrap();
                let client_params = client_config.accept_client_response(&response).unwrap();
                assert_eq!(
                    client_params.server_no_context_takeover,
                    server_params.server_no_context_takeover
                );
                assert_eq!(
                    client_params.server_max_window_bits,
                    server_params.server_max_window_bits
                );

                let mut s = DeflateContext::new(server_params, Role::Server, server_config);
                let mut c = DeflateContext::new(client_params, Role::Client, client_config);
                for _ in 0..2 {
                    let wire = compress(&mut s, &msg);
                    assert_eq!(decompress(&mut c, &wire), msg);
                    let wire = compress(&mut c, &msg);
                    assert_eq!(decompress(&mut s, &wire), msg);
                }
            }
        }
    }

    #[test]
    fn header_list_splitting() {
        let parts: Vec<&str> = split_top_level_commas("a; x=\"1,2\", b, c; y=\"q\\\",\"").collect();
        assert_eq!(parts, ["a; x=\"1,2\"", " b", " c; y=\"q\\\",\""]);
        assert_eq!(split_top_level_commas("").collect::<Vec<_>>(), [""]);
    }
}
