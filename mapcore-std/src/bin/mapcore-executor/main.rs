//! `mapcore-executor`: an LLVM ORC executor process (SimpleRemoteEPC protocol, LLVM 22) whose
//! JIT memory is managed by mapcore.
//!
//! ```text
//! mapcore-executor filedescs=<in>,<out>   # llvm-jitlink --oop-executor=mapcore-executor
//! mapcore-executor <in> <out>             # lli --mcjit-remote-process=mapcore-executor
//! mapcore-executor listen=<host>:<port>   # TCP, one connection (port 0 picks one)
//! ```
//!
//! The executor never writes to stdout, which belongs to the JIT'd program; diagnostics go to
//! stderr. `MAPCORE_EXECUTOR_STATS=<file>` writes counters as `key=value` lines when the
//! session ends; `MAPCORE_EXECUTOR_TRACE=1` logs every call.
//!
//! At the end of the session (EOF, as LLVM 22 never sends Hangup), every slab is released, the
//! remaining dealloc actions run (EH frames are deregistered), C stdio is flushed, and the
//! process exits 0; 1 if the stream was broken; 2 for a usage error. It exits with `_exit`:
//! exit handlers registered by JIT'd code would run from unmapped memory.

#[cfg(target_os = "linux")]
mod cabi;
#[cfg(target_os = "linux")]
mod code_addr;
#[cfg(target_os = "linux")]
mod dispatch;
#[cfg(target_os = "linux")]
mod dylib;
#[cfg(target_os = "linux")]
mod eh_frame;
#[cfg(target_os = "linux")]
mod log;
#[cfg(target_os = "linux")]
mod mem_access;
#[cfg(target_os = "linux")]
mod memory;
#[cfg(target_os = "linux")]
mod reply;
#[cfg(target_os = "linux")]
mod run;
#[cfg(target_os = "linux")]
mod session;
#[cfg(target_os = "linux")]
mod setup;
#[cfg(target_os = "linux")]
mod stats;
#[cfg(target_os = "linux")]
mod transport;

use std::process::ExitCode;

const USAGE: &str =
    "usage: mapcore-executor filedescs=<in-fd>,<out-fd> | <in-fd> <out-fd> | listen=<host>:<port>";

/// How the controller reaches the executor.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Launch {
    /// Two inherited descriptors: from the controller, to the controller.
    Fds { read: i32, write: i32 },
    /// Listen on a TCP address and serve one connection.
    Listen(String),
}

/// Parses what follows a launch convention's prefix.
type ParseRest = fn(&str) -> Option<Launch>;

/// The launch conventions, tried in order: a prefix and how to parse what follows it.
const CONVENTIONS: [(&str, ParseRest); 2] = [
    ("filedescs=", |rest| {
        let (read, write) = rest.split_once(',')?;
        Some(Launch::Fds {
            read: read.parse().ok()?,
            write: write.parse().ok()?,
        })
    }),
    ("listen=", |rest| {
        (!rest.is_empty()).then(|| Launch::Listen(rest.to_owned()))
    }),
];

impl Launch {
    /// Parses the arguments after the program name.
    fn parse(args: &[String]) -> Option<Self> {
        match args {
            [one] => CONVENTIONS
                .iter()
                .find_map(|(prefix, parse)| one.strip_prefix(prefix).and_then(parse)),
            // lli: two bare descriptor numbers.
            [read, write] => Some(Self::Fds {
                read: read.parse().ok()?,
                write: write.parse().ok()?,
            }),
            _ => None,
        }
    }
}

#[cfg(target_os = "linux")]
fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(launch) = Launch::parse(&args) else {
        log::diag(format_args!("bad arguments {args:?}\n{USAGE}"));
        return ExitCode::from(2);
    };
    let transport = match &launch {
        Launch::Fds { read, write } => transport::Transport::from_fds(*read, *write),
        Launch::Listen(addr) => transport::Transport::listen(addr),
    };
    let mut transport = match transport {
        Ok(transport) => transport,
        Err(e) => {
            log::diag(format_args!("cannot open the session ({launch:?}): {e}"));
            return ExitCode::from(2);
        }
    };
    let mut services = dispatch::Services::default();
    let end = session::serve(&mut transport, &mut services);
    // The stream stays open until the process exits: the controller sees EOF only once
    // everything is released and the stats are written.
    let shutdown = services.memory.shutdown();
    if let Some(path) = std::env::var_os("MAPCORE_EXECUTOR_STATS") {
        if let Err(e) = stats::write(path.as_ref(), end.name(), &shutdown) {
            log::diag(format_args!("cannot write the stats file: {e}"));
        }
    }
    run::exit_now(match end {
        session::End::Eof | session::End::Hangup => 0,
        session::End::Broken(_) => 1,
    })
}

#[cfg(not(target_os = "linux"))]
fn main() -> ExitCode {
    eprintln!("mapcore-executor: only Linux is supported\n{USAGE}");
    ExitCode::from(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Option<Launch> {
        Launch::parse(&args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn launch_conventions() {
        assert_eq!(
            parse(&["filedescs=3,6"]),
            Some(Launch::Fds { read: 3, write: 6 })
        );
        assert_eq!(parse(&["7", "8"]), Some(Launch::Fds { read: 7, write: 8 }));
        assert_eq!(
            parse(&["listen=127.0.0.1:0"]),
            Some(Launch::Listen("127.0.0.1:0".to_owned()))
        );
        for bad in [
            &[][..],
            &["filedescs=3"],
            &["filedescs=a,b"],
            &["listen="],
            &["3"],
            &["3", "x"],
            &["1", "2", "3"],
            &["test-jitloadergdb"],
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
