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
//! The JIT memory's W^X mode is detected (`mapcore_std::detect`): dual-mapped wherever memory
//! files may be mapped executable, which also works under memory-deny-write-execute
//! (`PR_SET_MDWE`), flip otherwise; the stats name it (`wx_mode`, `wx_reason`).
//! `MAPCORE_EXECUTOR_WX=flip` or `=dual-mapped` chooses it instead.
//!
//! At the end of the session (EOF, as LLVM 22 never sends Hangup), every slab is released, the
//! remaining dealloc actions run, every EH frame and debug object is deregistered, C stdio is
//! flushed, and the process exits 0; 1 if the stream was broken; 2 for a usage error. It exits
//! with `_exit`: exit handlers registered by JIT'd code would run from unmapped memory.

fn main() -> std::process::ExitCode {
    mapcore_executor::main()
}
