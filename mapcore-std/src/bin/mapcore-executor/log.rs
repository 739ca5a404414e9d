//! Diagnostics on stderr, never stdout: stdout belongs to the JIT'd program.
//!
//! Protocol errors (hostile or broken input) are always reported. Requests the map rejects are
//! not: the controller gets the message in the reply, and some controllers send rejected
//! requests on purpose (lli's release through the reserve wrapper). `MAPCORE_EXECUTOR_TRACE=1`
//! also logs every call.

use std::fmt;
use std::io::Write;
use std::sync::OnceLock;

/// Writes one diagnostic line. A failing stderr is ignored: diagnostics never end a session.
pub(crate) fn diag(message: fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "mapcore-executor: {message}");
}

/// Whether `MAPCORE_EXECUTOR_TRACE` asks for a line per call.
pub(crate) fn tracing() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| {
        std::env::var_os("MAPCORE_EXECUTOR_TRACE").is_some_and(|v| !v.is_empty() && v != "0")
    })
}

/// Writes one trace line if tracing is on.
pub(crate) fn trace(message: fmt::Arguments<'_>) {
    if tracing() {
        diag(message);
    }
}
