//! A progress bar on standard error while connections open and while a
//! measurement runs (indicatif). Nothing is drawn when standard error is
//! not a terminal, so runner scripts and logs stay clean.
//!
//! Owns only the display; the scenarios decide what to count.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Set in client processes ([`crate::workers`]): no bars at all.
static HIDDEN: AtomicBool = AtomicBool::new(false);

/// Draws no bar from now on (a child process shares its parent's terminal).
pub fn hide_all() {
    HIDDEN.store(true, Ordering::Relaxed);
}

/// A bar of `len`, or a hidden one after [`hide_all`].
fn new_bar(len: u64) -> ProgressBar {
    if HIDDEN.load(Ordering::Relaxed) {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(len)
    }
}

/// One bar; hidden when standard error is not a terminal.
#[derive(Clone, Debug)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar counting to `len`, labelled `what`.
    pub fn count(len: u64, what: &str) -> Self {
        let bar = new_bar(len);
        if let Ok(style) =
            ProgressStyle::with_template("{prefix:>12} [{bar:40}] {pos}/{len} {msg} ({elapsed})")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(what.to_owned());
        Self { bar }
    }

    /// A bar over `duration`, labelled `what`, ticking by itself; the
    /// message can carry a live figure.
    pub fn timed(duration: Duration, what: &str) -> Self {
        let millis = duration.as_millis().min(u128::from(u64::MAX)) as u64;
        let bar = new_bar(millis.max(1));
        if let Ok(style) =
            ProgressStyle::with_template("{prefix:>12} [{bar:40}] {msg} ({elapsed}/{duration})")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(what.to_owned());
        Self { bar }
    }

    /// Advances by `n`.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    /// Sets the position.
    pub fn set(&self, pos: u64) {
        self.bar.set_position(pos);
    }

    /// Sets the message shown after the bar.
    pub fn message(&self, msg: String) {
        self.bar.set_message(msg);
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
