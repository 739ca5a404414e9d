//! Counters, written as `key=value` lines to the file named by `MAPCORE_EXECUTOR_STATS` when
//! the session ends.
//!
//! They are process-wide atomics because alloc actions (EH-frame registration) run inside the
//! map through a plain `fn(&[u8])` that has no context to carry them.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::dispatch::{Kind, SYMBOLS, SYMBOL_COUNT};

/// One counter.
#[derive(Debug)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// Adds `n`.
    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one.
    pub(crate) fn bump(&self) {
        self.add(1);
    }

    /// The current value.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Calls per bootstrap symbol, indexed like [`SYMBOLS`].
pub(crate) static CALLS: [Counter; SYMBOL_COUNT] = [const { Counter::new() }; SYMBOL_COUNT];

/// Calls of the reserve wrappers (both name sets).
pub(crate) static RESERVE_CALLS: Counter = Counter::new();
/// Bytes of successful reservations.
pub(crate) static RESERVE_BYTES: Counter = Counter::new();
/// Successful reservations.
pub(crate) static SLABS_RESERVED: Counter = Counter::new();
/// Calls of the initialize wrappers.
pub(crate) static INITIALIZE_CALLS: Counter = Counter::new();
/// Segments of successful initialize calls.
pub(crate) static SEGMENTS_INITIALIZED: Counter = Counter::new();
/// Calls of the deinitialize wrappers.
pub(crate) static DEINITIALIZE_CALLS: Counter = Counter::new();
/// Regions deinitialized by the controller.
pub(crate) static REGIONS_DEINITIALIZED: Counter = Counter::new();
/// Calls of the release wrappers.
pub(crate) static RELEASE_CALLS: Counter = Counter::new();
/// Slabs released by the controller.
pub(crate) static SLABS_RELEASED: Counter = Counter::new();
/// Slabs released at the end of the session.
pub(crate) static SLABS_RELEASED_AT_SHUTDOWN: Counter = Counter::new();
/// Successful EH-frame registrations.
pub(crate) static EH_REGISTER: Counter = Counter::new();
/// Successful EH-frame deregistrations.
pub(crate) static EH_DEREGISTER: Counter = Counter::new();
/// Alloc actions (finalize or dealloc) that failed.
pub(crate) static ACTION_FAILURES: Counter = Counter::new();
/// Replies that carried an error.
pub(crate) static ERROR_REPLIES: Counter = Counter::new();
/// Malformed frames, unknown tags or opcodes, wrong instances, undecodable arguments.
pub(crate) static PROTOCOL_ERRORS: Counter = Counter::new();

/// What the end of the session found, for the stats file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shutdown {
    /// Slabs still reserved when the session ended.
    pub(crate) live_slabs_at_eof: usize,
    /// Regions still initialized when the session ended.
    pub(crate) live_regions_at_eof: usize,
    /// Slabs still reserved after the map's shutdown (0 unless an unmap failed).
    pub(crate) live_slabs_after_shutdown: usize,
    /// Whether the map's shutdown reported an error.
    pub(crate) shutdown_failed: bool,
}

/// The stats text.
pub(crate) fn render(session_end: &str, shutdown: &Shutdown) -> String {
    let mut out = String::new();
    let mut line = |key: &str, value: &dyn std::fmt::Display| {
        let _ = writeln!(out, "{key}={value}");
    };
    line("session_end", &session_end);
    let mut total = 0;
    for (symbol, calls) in SYMBOLS.iter().zip(&CALLS) {
        if !matches!(symbol.kind, Kind::Data(_)) {
            line(&format!("calls.{}", symbol.name), &calls.get());
            total += calls.get();
        }
    }
    line("calls_total", &total);
    let counters: [(&str, &Counter); 15] = [
        ("reserve_calls", &RESERVE_CALLS),
        ("reserve_bytes", &RESERVE_BYTES),
        ("slabs_reserved", &SLABS_RESERVED),
        ("initialize_calls", &INITIALIZE_CALLS),
        ("segments_initialized", &SEGMENTS_INITIALIZED),
        ("deinitialize_calls", &DEINITIALIZE_CALLS),
        ("regions_deinitialized", &REGIONS_DEINITIALIZED),
        ("release_calls", &RELEASE_CALLS),
        ("slabs_released", &SLABS_RELEASED),
        ("slabs_released_at_shutdown", &SLABS_RELEASED_AT_SHUTDOWN),
        ("eh_register", &EH_REGISTER),
        ("eh_deregister", &EH_DEREGISTER),
        ("action_failures", &ACTION_FAILURES),
        ("error_replies", &ERROR_REPLIES),
        ("protocol_errors", &PROTOCOL_ERRORS),
    ];
    for (key, counter) in counters {
        line(key, &counter.get());
    }
    line(
        "eh_frames_registered_after_shutdown",
        &crate::eh_frame::registered_count(),
    );
    line("live_slabs_at_eof", &shutdown.live_slabs_at_eof);
    line("live_regions_at_eof", &shutdown.live_regions_at_eof);
    line(
        "live_slabs_after_shutdown",
        &shutdown.live_slabs_after_shutdown,
    );
    line("shutdown_failed", &u8::from(shutdown.shutdown_failed));
    out
}

/// Writes the stats to `path`.
///
/// # Errors
///
/// The file cannot be written.
pub(crate) fn write(path: &Path, session_end: &str, shutdown: &Shutdown) -> std::io::Result<()> {
    std::fs::write(path, render(session_end, shutdown))
}
