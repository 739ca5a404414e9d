//! The session's counters, written as `key=value` lines to the file named by
//! `MAPCORE_EXECUTOR_STATS` when the session ends.

use std::fmt::Write as _;

use super::memory::WxChoice;
use super::registry::Counts;

/// Counters the router and the memory services keep, in the [`Session`](super::session::Session).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Calls per bootstrap symbol, indexed like the symbol table.
    pub(crate) calls: Vec<u64>,
    /// The memory manager's (both name sets).
    pub(crate) memory: MapCounters,
    /// The shared-memory mapper service's.
    pub(crate) shared_memory: MapCounters,
    /// Calls of wrapper functions in JIT'd code (the ORC runtime's).
    pub(crate) jit_wrapper_calls: u64,
    /// Calls from JIT'd code to the controller.
    pub(crate) controller_calls: u64,
    /// Replies that carried an error.
    pub(crate) error_replies: u64,
    /// Malformed frames, unknown tags or opcodes, wrong instances, undecodable arguments.
    pub(crate) protocol_errors: u64,
}

impl Stats {
    /// Zeroed counters for a table of `symbols` symbols.
    pub(crate) fn new(symbols: usize) -> Self {
        Self {
            calls: vec![0; symbols],
            ..Self::default()
        }
    }
}

/// What one memory service did with its map.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MapCounters {
    /// Calls of the reserve wrappers.
    pub(crate) reserve_calls: u64,
    /// Bytes of successful reservations.
    pub(crate) reserve_bytes: u64,
    /// Successful reservations.
    pub(crate) slabs_reserved: u64,
    /// Calls of the initialize wrappers.
    pub(crate) initialize_calls: u64,
    /// Segments of successful initialize calls.
    pub(crate) segments_initialized: u64,
    /// Calls of the deinitialize wrappers.
    pub(crate) deinitialize_calls: u64,
    /// Regions deinitialized by the controller.
    pub(crate) regions_deinitialized: u64,
    /// Calls of the release wrappers.
    pub(crate) release_calls: u64,
    /// Slabs released by the controller.
    pub(crate) slabs_released: u64,
    /// Reservations that got back the base of a slab the controller had released: the memory
    /// came back and was handed out again (clang-repl's `%undo` releases an input's slabs).
    pub(crate) slabs_reused: u64,
}

impl MapCounters {
    /// The counters as `(key, value)`, with what `shutdown` found.
    fn lines(&self, shutdown: &Shutdown) -> [(&'static str, u64); 15] {
        let released_at_shutdown = shutdown
            .live_slabs_at_eof
            .saturating_sub(shutdown.live_slabs_after_shutdown)
            as u64;
        [
            ("reserve_calls", self.reserve_calls),
            ("reserve_bytes", self.reserve_bytes),
            ("slabs_reserved", self.slabs_reserved),
            ("initialize_calls", self.initialize_calls),
            ("segments_initialized", self.segments_initialized),
            ("deinitialize_calls", self.deinitialize_calls),
            ("regions_deinitialized", self.regions_deinitialized),
            ("release_calls", self.release_calls),
            ("slabs_released", self.slabs_released),
            ("slabs_reused", self.slabs_reused),
            ("slabs_released_at_shutdown", released_at_shutdown),
            ("live_slabs_at_eof", shutdown.live_slabs_at_eof as u64),
            ("live_regions_at_eof", shutdown.live_regions_at_eof as u64),
            (
                "live_slabs_after_shutdown",
                shutdown.live_slabs_after_shutdown as u64,
            ),
            ("shutdown_failed", u64::from(shutdown.shutdown_failed)),
        ]
    }
}

/// Counters of the alloc actions, kept by the session's action context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ActionStats {
    /// EH-frame and debug-object registrations made and undone.
    pub(crate) registrations: Counts,
    /// Alloc actions (finalize or dealloc) that failed.
    pub(crate) action_failures: u64,
    /// EH frames registered now.
    pub(crate) eh_frames_registered: usize,
    /// Debug objects registered with the GDB JIT interface now.
    pub(crate) debug_objects_registered: usize,
}

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

/// What each memory service's map held at the end of the session, and what its shutdown did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shutdowns {
    /// The memory manager's map.
    pub(crate) memory: Shutdown,
    /// The shared-memory mapper service's map.
    pub(crate) shared_memory: Shutdown,
}

/// The stats text: `calls` has the name and call count of each callable symbol, in table
/// order; `actions` and `shutdowns` are read after the shutdown. The memory manager's counters
/// have plain keys, the shared-memory mapper's the same keys prefixed `shm_`.
pub(crate) fn render<'a>(
    session_end: &str,
    calls: impl IntoIterator<Item = (&'a str, u64)>,
    stats: &Stats,
    actions: &ActionStats,
    shutdowns: &Shutdowns,
    wx: WxChoice,
) -> String {
    let mut out = String::new();
    let mut line = |key: &str, value: &dyn std::fmt::Display| {
        let _ = writeln!(out, "{key}={value}");
    };
    line("session_end", &session_end);
    line("wx_mode", &wx.mode);
    line("wx_reason", &wx.reason);
    let mut total = 0;
    for (name, count) in calls {
        line(&format!("calls.{name}"), &count);
        total += count;
    }
    line("calls_total", &total);
    for (key, value) in stats.memory.lines(&shutdowns.memory) {
        line(key, &value);
    }
    for (key, value) in stats.shared_memory.lines(&shutdowns.shared_memory) {
        line(&format!("shm_{key}"), &value);
    }
    let counters: [(&str, u64); 9] = [
        ("eh_register", actions.registrations.eh_register),
        ("eh_deregister", actions.registrations.eh_deregister),
        ("debug_register", actions.registrations.debug_register),
        ("debug_deregister", actions.registrations.debug_deregister),
        ("action_failures", actions.action_failures),
        ("jit_wrapper_calls", stats.jit_wrapper_calls),
        ("controller_calls", stats.controller_calls),
        ("error_replies", stats.error_replies),
        ("protocol_errors", stats.protocol_errors),
    ];
    for (key, value) in counters {
        line(key, &value);
    }
    line(
        "eh_frames_registered_after_shutdown",
        &actions.eh_frames_registered,
    );
    line(
        "debug_objects_registered_after_shutdown",
        &actions.debug_objects_registered,
    );
    out
}
