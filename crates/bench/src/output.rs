//! Where result lines go: every scenario's results are JSON objects, one
//! per line, printed on standard output and, with `--out FILE` (before the
//! subcommand), also appended to that file as they are measured.
//!
//! Owns the writing and the reading back of such a file (for the report
//! commands); what a line holds is each scenario's report type. Progress
//! and diagnostics go to standard error, never here.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use anyhow::{Context as _, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The file result lines are appended to, if one was set.
static FILE: OnceLock<Mutex<File>> = OnceLock::new();

/// Appends every later result line to `path` too (created if missing).
/// Only the first call has an effect.
pub fn set_file(path: &Path) -> Result<()> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let _ = FILE.set(Mutex::new(file));
    Ok(())
}

/// Writes one result line: `value` as JSON, on standard output and to the
/// file set by [`set_file`].
pub fn emit<T: Serialize>(value: &T) -> Result<()> {
    let line = serde_json::to_string(value)?;
    println!("{line}");
    if let Some(file) = FILE.get() {
        let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
        writeln!(file, "{line}").context("appending a result line")?;
    }
    Ok(())
}

/// [`emit`] for callbacks that cannot fail: errors are reported on
/// standard error.
pub fn emit_or_warn<T: Serialize>(value: &T) {
    if let Err(e) = emit(value) {
        eprintln!("duplex-bench: cannot write a result: {e:#}");
    }
}

/// The result lines of `jsonl` (a results file), blank lines skipped; an
/// unreadable line is an error naming its line number.
///
/// ```
/// #[derive(serde::Deserialize)]
/// struct Line { scenario: String }
/// let lines: Vec<Line> =
///     duplex_bench::output::read_lines("{\"scenario\":\"meta\"}\n\n{\"scenario\":\"echo\"}\n").unwrap();
/// assert_eq!(lines[1].scenario, "echo");
/// assert!(duplex_bench::output::read_lines::<Line>("{}\n").is_err());
/// ```
pub fn read_lines<T: DeserializeOwned>(jsonl: &str) -> Result<Vec<T>> {
    jsonl
        .lines()
        .enumerate()
        .filter(|(_, text)| !text.trim().is_empty())
        .map(|(n, text)| {
            serde_json::from_str(text).with_context(|| format!("results line {}", n + 1))
        })
        .collect()
}

/// At most `max` characters of `text`, for error messages.
pub(crate) fn clip_chars(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

/// At most 160 characters of `text`, for error messages.
pub(crate) fn clip(text: &str) -> &str {
    clip_chars(text, 160)
}
