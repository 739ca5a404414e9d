//! mapcore for std processes: the [`LibcHost`] (`mmap`, `mprotect`, `madvise`, `munmap`,
//! instruction-cache maintenance) and [`StdJitMap`], a JIT memory map over it that releases
//! everything when dropped.
//!
//! [`mapcore`] does the bookkeeping, validation and rollback; this crate only talks to the
//! kernel. The map's items are re-exported here, so most programs need only this crate.
//!
//! # Platforms
//!
//! Linux on x86_64 and aarch64 is supported. Other Unix systems compile but are
//! untested: there [`Host::discard`] does nothing (the map zero-fills reused pages itself) and
//! making pages executable fails with `ENOSYS` on architectures other than x86 and aarch64
//! Linux, whose instruction-cache rules this crate does not implement.
//!
//! # Example
//!
//! Reserve a slab, initialize a region in it, deinitialize it, and let the map release the
//! slab when it is dropped. `examples/quickstart.rs` goes further and runs JIT'd code.
//!
//! ```
//! use mapcore_std::{LibcHost, Prot, Segment, InitRequest, StdJitMap};
//!
//! let map = StdJitMap::new(LibcHost::new());
//! let page = mapcore_std::page_size();
//! let base = map.reserve(16 * page)?;
//!
//! // Two segments: read-only data in the first page, a read-write page after it.
//! let answer = 42u64.to_ne_bytes();
//! let segments = [
//!     Segment::new(Prot::READ, base, 8, &answer),
//!     Segment::new(Prot::READ_WRITE, base + page, page, &[]),
//! ];
//! let key = map.initialize(&InitRequest::new(&segments, &[]))?;
//! assert_eq!(key, base);
//!
//! // The pages are read-write and zero again afterwards, ready for reuse.
//! map.deinitialize(key)?;
//! # Ok::<(), mapcore_std::StdError>(())
//! ```
#![cfg(unix)]

#[cfg(any(target_os = "linux", target_os = "android"))]
mod alias_cache;
#[cfg(feature = "cranelift")]
pub mod cranelift;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod dual_host;
mod error;
mod flip_host;
mod icache;
mod memory;
mod page_size;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod strategy;
mod sys;
mod trap;

#[cfg(feature = "cranelift")]
pub use crate::cranelift::MapcoreMemoryProvider;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub use crate::dual_host::{Backing, DualMappedHost};
pub use crate::error::OsError;
pub use crate::flip_host::LibcHost;
pub use crate::memory::{StdError, StdHost, StdJitMap, WxMode};
pub use crate::page_size::page_size;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub use crate::strategy::{detect, Detection};

pub use mapcore;
pub use mapcore::{
    Action, ActionError, ActionPair, Config, Content, DiscardPolicy, Error, Host, HostError,
    HostErrorKind, HostOp, InitRequest, JitMap, Lifetime, Prot, Segment,
};

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
