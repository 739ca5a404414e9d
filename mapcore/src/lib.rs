#![doc = include_str!("../../README.md")]
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(test, feature = "testing"))]
extern crate std;

#[cfg(feature = "alloc")]
extern crate alloc;

mod action;
mod addr;
mod error;
mod host;
mod map;
mod plan;
mod prot;
mod request;
pub mod sps;
mod state;
mod table;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use action::{
    run_dealloc_actions, run_finalize_actions, Action, ActionError, ActionFn, ActionPair,
    ArgsTooLong, Deallocs, FinalizeFailure, MAX_ACTION_ARGS, MAX_ACTION_PAIRS,
};
pub use addr::{align_up, is_aligned, PageRange};
pub use error::{Error, Limit};
pub use host::{Capabilities, Host, HostError, HostErrorKind, HostOp};
pub use map::{Config, DefaultStorage, DiscardPolicy, JitMap};
pub use prot::{AllocGroup, Lifetime, Prot};
pub use request::{Content, InitRequest, Segment, MAX_SEGMENTS};
#[cfg(feature = "alloc")]
pub use table::Growable;
pub use table::{Fixed, Storage, Table};
