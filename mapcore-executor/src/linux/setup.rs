//! The Setup message, the executor's first: `(String triple, u64 page size,
//! Seq<(String, Seq<char>)> bootstrap map, Seq<(String, Addr)> bootstrap symbols)`.
//!
//! The bootstrap map is empty, as LLVM 22's executors send it; the symbols are [`SYMBOLS`],
//! under the names the controller looks up verbatim, the dispatch context at the session's
//! [`Upcalls`](super::upcall::Upcalls).

use super::reply::{self, Failure};
use super::symbols::{Kind, SYMBOLS};

/// This process's target triple, in the form LLVM's executors report it.
pub(crate) fn triple() -> String {
    let arch = std::env::consts::ARCH;
    let vendor = if arch == "x86_64" { "pc" } else { "unknown" };
    format!("{arch}-{vendor}-linux-gnu")
}

/// The Setup payload; `dispatch_ctx` is the session's dispatch context address.
///
/// # Errors
///
/// Never in practice (the payload is a few KiB).
pub(crate) fn payload(page_size: usize, dispatch_ctx: u64) -> Result<Vec<u8>, Failure> {
    let triple = triple();
    let symbols: Vec<(&str, u64)> = SYMBOLS
        .iter()
        .map(|s| match s.kind {
            Kind::DispatchCtx => (s.name, dispatch_ctx),
            _ => (s.name, s.addr()),
        })
        .collect();
    let no_map: [(&str, &[u8]); 0] = [];
    reply::encode(4096, |w| {
        w.string(&triple)?;
        w.usize(page_size)?;
        w.write(&no_map[..])?;
        w.write(&symbols[..])
    })
}
