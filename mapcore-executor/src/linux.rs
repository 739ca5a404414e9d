//! The executor proper, on Linux: one session over the controller's stream.
//!
//! [`serve`] runs the session: [`transport`] frames the messages, [`dispatch`] routes each call
//! through the [`symbols`] table to a service ([`memory`], [`shared_memory`], [`dylib`],
//! [`run`], [`mem_access`], the [`eh_frame`] actions, wrappers in JIT'd code), [`upcall`]
//! carries JIT'd code's calls to the controller, and the [`session`] value holds everything one
//! session owns.

mod action_context;
mod anchor;
mod cabi;
mod code_addr;
mod dispatch;
mod dylib;
mod eh_frame;
mod eh_frame_check;
mod failures;
mod gdb_jit;
mod in_process;
mod launch;
mod log;
mod mem_access;
mod memory;
mod registry;
mod reply;
mod run;
mod serve;
mod session;
mod setup;
mod shared_memory;
mod shm_guard;
mod stats;
mod symbols;
mod transport;
mod upcall;

use std::process::ExitCode;

pub use in_process::{serve_in_process, SessionReport};

use launch::Launch;
use log::Log;
use serve::End;
use session::Session;
use transport::Transport;

/// Parses the arguments, serves one session, releases everything, writes the stats file and
/// exits the process.
pub fn main() -> ExitCode {
    let log = Log::from_env();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(launch) = Launch::parse(&args) else {
        log::diag(format_args!("bad arguments {args:?}\n{}", crate::USAGE));
        return ExitCode::from(2);
    };
    let transport = match &launch {
        Launch::Fds { read, write } => Transport::from_fds(*read, *write),
        Launch::Listen(addr) => Transport::listen(addr, log),
    };
    let transport = match transport {
        Ok(transport) => transport,
        Err(e) => {
            log::diag(format_args!("cannot open the session ({launch:?}): {e}"));
            return ExitCode::from(2);
        }
    };
    let mut session = Session::new(transport, log, dispatch::route_action);
    let end = serve::serve(&mut session);
    // The stream stays open until the process exits: the controller sees EOF only once
    // everything is released and the stats are written.
    let shutdown = session.shutdown();
    if let Some(path) = std::env::var_os("MAPCORE_EXECUTOR_STATS") {
        let text = session.stats_text(end.name(), &shutdown);
        if let Err(e) = std::fs::write(&path, text) {
            log::diag(format_args!("cannot write the stats file: {e}"));
        }
    }
    run::exit_now(match end {
        End::Eof | End::Hangup => 0,
        End::Broken(_) => 1,
    })
}
