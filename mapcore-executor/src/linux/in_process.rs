//! One session inside the calling process, over any byte stream: what the binary does for its
//! controller, minus the process exit and the stats file.
//!
//! The caller plays the controller: `input` yields its frames, `output` receives the
//! executor's (Setup first, then a Result per call, and a Hangup if the stream breaks). At the
//! end every slab is released, as at the end of a real session. Calls are served on the
//! caller's thread; diagnostics go to stderr as usual, traces never.

use std::io::{Read, Write};

use mapcore_std::WxMode;

use super::dispatch;
use super::log::Log;
use super::memory::WxChoice;
use super::serve::{self, End};
use super::session::Session;
use super::stats::Shutdowns;
use super::transport::Transport;

/// How an in-process session ended, and what its shutdown found and left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionReport {
    /// `eof`, `hangup` or `broken`, as the stats file names it.
    pub end: &'static str,
    /// Why the stream broke, for `broken`.
    pub broken: Option<String>,
    /// Slabs still reserved when the stream ended (of both memory services, as all counts here).
    pub live_slabs_at_eof: usize,
    /// Regions still initialized when the stream ended.
    pub live_regions_at_eof: usize,
    /// Slabs still reserved after the shutdown (0 unless an unmap failed).
    pub live_slabs_after_shutdown: usize,
    /// Whether the map's shutdown reported an error.
    pub shutdown_failed: bool,
}

/// Serves one session over `input` and `output` on a map of the W^X mode `wx`, then releases
/// everything, and says how it went.
pub fn serve_in_process(
    input: impl Read + 'static,
    output: impl Write + 'static,
    wx: WxMode,
) -> SessionReport {
    let transport = Transport::new(input, output);
    let choice = WxChoice {
        mode: wx,
        reason: "chosen by the embedding process",
    };
    let mut session = Session::with_wx(transport, Log::default(), dispatch::route_action, choice);
    let end = serve::serve(&mut session);
    let Shutdowns {
        memory,
        shared_memory,
    } = session.shutdown();
    SessionReport {
        end: end.name(),
        broken: match end {
            End::Broken(reason) => Some(reason),
            End::Eof | End::Hangup => None,
        },
        live_slabs_at_eof: memory.live_slabs_at_eof + shared_memory.live_slabs_at_eof,
        live_regions_at_eof: memory.live_regions_at_eof + shared_memory.live_regions_at_eof,
        live_slabs_after_shutdown: memory.live_slabs_after_shutdown
            + shared_memory.live_slabs_after_shutdown,
        shutdown_failed: memory.shutdown_failed || shared_memory.shutdown_failed,
    }
}
