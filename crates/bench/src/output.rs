//! Where result lines go: every scenario's results are JSON objects, one
//! per line, printed on standard output and, with `--out FILE` (before the
//! subcommand), also appended to that file as they are measured.
//!
//! Owns only the writing; what a line holds is each scenario's report
//! type. Progress and diagnostics go to standard error, never here.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use anyhow::{Context as _, Result};
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
