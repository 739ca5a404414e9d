//! Diagnostics on stderr, never stdout: stdout belongs to the JIT'd program.
//!
//! Protocol errors (hostile or broken input) are always reported. Requests the map rejects are
//! not: the controller gets the message in the reply, and some controllers send rejected
//! requests on purpose (lli's release through the reserve wrapper). `MAPCORE_EXECUTOR_TRACE=1`
//! also logs every call; the session reads it once, into its [`Log`].

use std::fmt;
use std::io::Write;

/// Writes one diagnostic line. A failing stderr is ignored: diagnostics never end a session.
pub(crate) fn diag(message: fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "mapcore-executor: {message}");
}

/// Whether the session traces every call.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Log {
    trace: bool,
}

impl Log {
    /// Tracing on if `MAPCORE_EXECUTOR_TRACE` is set, non-empty and not `0`.
    pub(crate) fn from_env() -> Self {
        Self {
            trace: std::env::var_os("MAPCORE_EXECUTOR_TRACE")
                .is_some_and(|v| !v.is_empty() && v != "0"),
        }
    }

    /// Writes one trace line if tracing is on.
    pub(crate) fn trace(self, message: fmt::Arguments<'_>) {
        if self.trace {
            diag(message);
        }
    }
}
