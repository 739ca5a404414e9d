//! The `mapcore-executor` binary's code as a library, so that a session can also run inside
//! another process: [`main`] is the binary's whole body, and [`serve_in_process`] serves one
//! session over any byte stream (the fuzz target `executor_session` drives it through an
//! in-memory controller). Everything but these is private to the executor.
//!
//! The executor exists for Linux only; this file is the one place that says so.

#[cfg(target_os = "linux")]
mod linux;

#[cfg(target_os = "linux")]
pub use linux::{main, serve_in_process, SessionReport};
pub use mapcore_std::WxMode;

/// The command line, for usage errors.
const USAGE: &str =
    "usage: mapcore-executor filedescs=<in-fd>,<out-fd> | <in-fd> <out-fd> | listen=<host>:<port>";

/// The binary's body on systems other than Linux: a usage error.
#[cfg(not(target_os = "linux"))]
pub fn main() -> std::process::ExitCode {
    eprintln!("mapcore-executor: only Linux is supported\n{USAGE}");
    std::process::ExitCode::from(2)
}
