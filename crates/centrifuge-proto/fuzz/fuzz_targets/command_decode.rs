//! Feeds arbitrary text to `decode_frame`, checking that nothing panics,
//! that every error has an action, and that every command that decodes
//! re-encodes to text that decodes to the same command.

#![no_main]

use centrifuge_proto::{decode_command, decode_frame, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let limits = Limits {
        max_commands: 64,
        max_depth: 32,
        ..Limits::default()
    };
    let Ok(commands) = decode_frame(&text, &limits) else {
        return;
    };
    for result in commands {
        match result {
            Ok(command) => {
                let again = decode_command(&command.to_json(), usize::MAX)
                    .expect("a decoded command re-encodes to a valid one");
                assert_eq!(again, command);
            }
            Err(e) => {
                let _ = (e.action(), e.command_id(), e.to_string());
            }
        }
    }
});
