//! The memory-map wire binding: how the memory-manager wrappers' arguments become mapcore
//! requests.
//!
//! LLVM 22's `__llvm_orc_SimpleExecutorMemoryManager_{reserve,initialize,deinitialize,release}_wrapper`
//! and orc-rt's `orc_rt_ci_sps_SimpleNativeMemoryMap_{reserve,initialize,deinitializeMultiple,releaseMultiple}`
//! take the same bytes:
//!
//! | Wrapper | Arguments | Reply |
//! |---|---|---|
//! | reserve | `(Addr instance, u64 size)` | `Expected<Addr>` |
//! | initialize | `(Addr instance, FinalizeRequest)` | `Expected<Addr>` |
//! | deinitialize, release | `(Addr instance, Seq<Addr>)` | `Error` |
//!
//! A `FinalizeRequest` is `(Seq<(u8 group, Addr addr, u64 size, Seq<char> content)>,
//! Seq<((Addr fn, Seq<char> args), (Addr fn, Seq<char> args))>)`, finalize then dealloc action
//! in each pair, `fn == 0` meaning "no action". The group byte is decoded in `group`, and how a
//! wire action is stored as a mapcore action is described in `action`.
//!
//! LLVM's shared-memory mapper service, where the controller writes the contents itself, has
//! its own reserve reply and initialize arguments ([`SharedReservation`],
//! [`SharedInitializeArgs`]; shapes in `shared`).

mod action;
mod args;
mod error;
mod group;
mod shared;

pub use action::{split_wire_action, MakeAction, MAX_WIRE_ACTION_ARGS};
pub use args::{AddrListArgs, InitializeArgs, ReserveArgs};
pub use error::RequestDecodeError;
pub use shared::{SharedInitializeArgs, SharedReservation};
