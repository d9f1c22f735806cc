//! Fuzzes the frame decoder: arbitrary bytes into a server and a client
//! [`Connection`], fed in pieces whose sizes the input chooses.
//!
//! Input layout: `[cfg] [split lengths ...] [wire bytes ...]`.
//!
//! * `cfg` bit 0: `accept_unmasked_frames`; bit 1: `auto_pong` off;
//!   bit 2: small limits (100-byte frames, 300-byte messages);
//!   bits 5-7: how many split-length bytes follow (0-7).
//! * split lengths: piece sizes, cycled (0 = the rest of the input).
//!
//! Each role decodes the wire three times: in one piece, in the input's
//! pieces and one byte at a time. Beyond "never panics" and the per-call
//! invariants checked by [`drive`], the three runs must agree: the same
//! messages, the same error (or none) and the same end state, and for the
//! server byte-identical output (the client masks with random keys, so only
//! its output length is compared).

#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_proto::{Config, Connection, Role};
use ws_proto_fuzz::{drive, Outcome, Splits};

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, rest)) = data.split_first() else {
        return;
    };
    let n_splits = usize::from(cfg >> 5).min(rest.len());
    let (split_lens, wire) = rest.split_at(n_splits);

    let mut config = Config::default()
        .accept_unmasked_frames(cfg & 1 != 0)
        .auto_pong(cfg & 2 == 0);
    if cfg & 4 != 0 {
        config = config.max_frame_size(100).max_message_size(300);
    }

    for role in [Role::Server, Role::Client] {
        let run = |splits| drive(Connection::new(role, config.clone()), &config, wire, splits);
        let whole = run(Splits::new(&[]));
        let split = run(Splits::new(split_lens));
        let bytewise = run(Splits::new(&[1]));
        same(&whole, &split, role, "input's pieces");
        same(&whole, &bytewise, role, "single bytes");
    }
});

/// Two runs over the same bytes must not differ because of split points.
fn same(a: &Outcome, b: &Outcome, role: Role, how: &str) {
    assert_eq!(a.messages, b.messages, "{role:?}: messages differ ({how})");
    assert_eq!(a.error, b.error, "{role:?}: errors differ ({how})");
    assert_eq!(
        a.close_code, b.close_code,
        "{role:?}: close codes differ ({how})"
    );
    assert_eq!(a.closed, b.closed, "{role:?}: is_closed differs ({how})");
    // After a failure `is_mid_message` reflects leftovers that `fail` does
    // not clear (a stashed header, the message opcode); compare it only for
    // runs that did not fail.
    if a.error.is_none() {
        assert_eq!(
            a.mid_message, b.mid_message,
            "{role:?}: is_mid_message differs ({how})"
        );
    }
    match role {
        Role::Server => assert_eq!(a.output, b.output, "server output differs ({how})"),
        Role::Client => assert_eq!(
            a.output.len(),
            b.output.len(),
            "client output length differs ({how})"
        ),
    }
}
