//! A `no_std` JIT memory map: reserve slabs of address space, initialize regions in them
//! (copy, zero-fill, protect, run finalize actions, keep dealloc actions), deinitialize them
//! for reuse, and release slabs, against an abstract page-protection [`Host`].
//!
//! The contract: **validate everything before any side effect, undo everything on failure,
//! never lose an action, make reuse work.** [`JitMap`] is the API; its methods document every
//! error. Tables are fixed-capacity by default ([`Fixed`], no heap); the `alloc` feature adds
//! `Growable` storage. `mapcore-std` provides the Linux host; the
//! `testing` feature provides `testing::RecordingHost`, a simulated host that records every
//! call and fails the ones a test chooses:
//!
//! ```
//! use mapcore::testing::RecordingHost;
//! use mapcore::{Error, InitRequest, JitMap, Prot, Segment};
//!
//! let host = RecordingHost::new(4096);
//! let map: JitMap<&RecordingHost> = JitMap::new(&host);
//! let base = map.reserve(16 * 4096)?;
//!
//! let code = [0xc3];
//! let segments = [Segment::new(Prot::READ_EXEC, base, 4096, &code)];
//! let key = map.initialize(&InitRequest::new(&segments, &[]))?;
//! assert_eq!(host.prot_at(base), Some(Prot::READ_EXEC));
//!
//! // Deinitialize resets the pages, so they can be initialized again at once.
//! map.deinitialize(key)?;
//! assert_eq!(host.prot_at(base), Some(Prot::READ_WRITE));
//! assert_eq!(map.deinitialize(key), Err(Error::UnknownKey { addr: key }));
//! # Ok::<(), mapcore::Error<mapcore::testing::FakeError>>(())
//! ```
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(test, feature = "testing"))]
extern crate std;

#[cfg(feature = "alloc")]
extern crate alloc;

mod action;
mod addr;
mod arena;
#[cfg(feature = "alloc")]
mod btree;
mod error;
#[cfg(feature = "alloc")]
mod hashed;
mod host;
mod lock;
mod map;
mod ordered;
mod plan;
mod prot;
mod regions;
mod request;
mod slabs;
mod spans;
mod state;
mod table;
mod tree;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use action::{
    Action, ActionError, ActionFn, ActionPair, ArgsTooLong, ContextActionFn, MAX_ACTION_ARGS,
    MAX_ACTION_PAIRS,
};
pub use addr::{align_up, PageRange};
pub use error::{Error, Limit};
pub use host::{Capabilities, Host, HostError, HostErrorKind, HostOp};
pub use map::{Config, DefaultStorage, DiscardPolicy, JitMap};
pub use prot::{AllocGroup, Lifetime, Prot};
pub use request::{Content, InitRequest, Segment, MAX_SEGMENTS};
#[cfg(feature = "alloc")]
pub use table::Growable;
pub use table::{Fixed, Storage};
