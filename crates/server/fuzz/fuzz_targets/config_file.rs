//! Fuzzes the config file: TOML text (and `DUPLEX_*` variables over it)
//! assembled into the server's configuration as `duplex serve` does
//! ([`server::fuzzing::parse_config`]: no disk, key files come from a
//! fixed in-memory set).
//!
//! Input layout: `TOML [\0 ENV]`. The text before the first NUL byte is
//! the config file; after it, each line `NAME=VALUE` is an environment
//! variable (`DUPLEX_` is put in front of a name that lacks it). Input
//! that is not UTF-8 is skipped (a config file is read as UTF-8 text).
//!
//! Beyond "never panics, never hangs": a refused configuration has at least
//! one problem, and each points at its source: a line of the file within
//! the text, or one of the variables given. An accepted one renders
//! (`--print-config`) as a file that is accepted again, to the same
//! configuration (variables included, as the printout shows the result;
//! broker options only with a broker, as only then are they printed).

#![no_main]

use libfuzzer_sys::fuzz_target;
use server::config::{BrokerOptions, Origin};
use server::fuzzing::{parse_config, parse_config_text, CONFIG_PATH};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let (text, env) = input.split_once('\0').unwrap_or((input, ""));
    let env: Vec<(String, String)> = env
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| {
            let name = if name.starts_with("DUPLEX_") {
                name.to_owned()
            } else {
                format!("DUPLEX_{name}")
            };
            (name, value.to_owned())
        })
        .collect();
    match parse_config(text, &env) {
        Err(problems) => {
            assert!(!problems.is_empty(), "refused without a problem");
            let last_line = text.lines().count().max(1) + 1;
            for p in &problems {
                assert!(!p.message.is_empty(), "a problem without a message: {p:?}");
                match &p.origin {
                    Origin::File { path, line } => {
                        assert_eq!(path.to_str(), Some(CONFIG_PATH));
                        assert!(
                            (1..=last_line).contains(line),
                            "line {line} is outside the file ({last_line} lines): {p}"
                        );
                    }
                    Origin::Env(var) => assert!(
                        env.iter().any(|(name, _)| name == var),
                        "a problem in {var}, which was not given: {p}"
                    ),
                    other => panic!("a problem without a location ({other:?}): {p}"),
                }
                let _ = p.to_string();
            }
        }
        Ok(mut config) => {
            let printed = config.to_toml(false);
            // The printout leaves the broker's options out when there is no
            // broker (they do nothing then).
            if config.broker.is_none() {
                config.broker_options = BrokerOptions::default();
            }
            match parse_config_text(&printed) {
                Ok(again) => assert_eq!(
                    again, config,
                    "the printed configuration loads differently:\n{printed}"
                ),
                Err(problems) => {
                    panic!("the printed configuration is refused: {problems:?}\n{printed}")
                }
            }
        }
    }
});
