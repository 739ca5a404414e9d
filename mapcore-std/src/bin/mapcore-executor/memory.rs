//! The memory manager: reserve, initialize, deinitialize and release, each with its batch form,
//! over one [`StdJitMap`].
//!
//! LLVM 22's `__llvm_orc_SimpleExecutorMemoryManager_*_wrapper` and orc-rt's
//! `orc_rt_ci_sps_SimpleNativeMemoryMap_*` share these handlers; the wire shapes are identical
//! (see `mapcore_sps`). Every error reply carries the map's own error text.
//!
//! Alloc actions arrive as a function address plus SPS arguments. The map stores each as
//! [`trampoline`] with `address ++ arguments`; the trampoline runs our own action (EH-frame
//! registration) directly and calls anything else through the C wrapper ABI.

use std::cell::RefCell;

use mapcore::ActionError;
use mapcore_sps::{split_wire_action, AddrListArgs, InitializeArgs, ReserveArgs};
use mapcore_std::{LibcHost, StdError, StdJitMap};

use crate::cabi;
use crate::dispatch::{self, Anchor, Kind, Services};
use crate::log;
use crate::reply::{self, Failure};
use crate::stats::{self, Shutdown};

/// An alloc action that failed: it reported an error.
const ACTION_FAILED: i32 = 1;
/// An alloc action that named one of our wrappers that is not an action.
const NOT_AN_ACTION: i32 = 2;
/// An alloc action whose stored arguments lack the function address (cannot happen with the
/// decoder's actions).
const MALFORMED_ACTION: i32 = 3;

thread_local! {
    /// Messages of the actions that failed during the current map call, for its reply.
    static ACTION_ERRORS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// The executor's one map.
#[derive(Debug)]
pub(crate) struct Memory {
    map: StdJitMap,
}

impl Default for Memory {
    fn default() -> Self {
        Self {
            map: StdJitMap::new(LibcHost::new()),
        }
    }
}

impl Memory {
    /// The page size the map works with, advertised in the Setup message.
    pub(crate) fn page_size(&self) -> usize {
        self.map.page_size()
    }

    /// Releases every slab, running the remaining dealloc actions; for the end of a session.
    pub(crate) fn shutdown(&self) -> Shutdown {
        let live_slabs_at_eof = self.map.slab_count();
        let live_regions_at_eof = self.map.region_count();
        let result = self.map.shutdown();
        let live_slabs_after_shutdown = self.map.slab_count();
        let failures = take_action_errors();
        if let Err(e) = &result {
            log::diag(format_args!("shutdown: {e}{}", detail(&failures)));
        } else if !failures.is_empty() {
            log::diag(format_args!(
                "shutdown: dealloc actions failed{}",
                detail(&failures)
            ));
        }
        stats::SLABS_RELEASED_AT_SHUTDOWN
            .add(live_slabs_at_eof.saturating_sub(live_slabs_after_shutdown) as u64);
        Shutdown {
            live_slabs_at_eof,
            live_regions_at_eof,
            live_slabs_after_shutdown,
            shutdown_failed: result.is_err(),
        }
    }
}

/// Runs one wire alloc action: `args` is the function address (8 bytes) then the wire
/// arguments, as the decoder stored them.
fn trampoline(args: &[u8]) -> Result<(), ActionError> {
    let Some((func, wire_args)) = split_wire_action(args) else {
        return Err(ActionError::new(MALFORMED_ACTION));
    };
    let result = match dispatch::lookup(func) {
        Some((_, symbol)) => match symbol.kind {
            Kind::Action { run, .. } => run(wire_args),
            _ => {
                record_action_error(format!("{} is not an allocation action", symbol.name));
                return Err(ActionError::new(NOT_AN_ACTION));
            }
        },
        None => cabi::call_action(func, wire_args),
    };
    result.map_err(|message| {
        record_action_error(message);
        ActionError::new(ACTION_FAILED)
    })
}

fn record_action_error(message: String) {
    stats::ACTION_FAILURES.bump();
    log::trace(format_args!("alloc action failed: {message}"));
    ACTION_ERRORS.with_borrow_mut(|errors| errors.push(message));
}

fn take_action_errors() -> Vec<String> {
    ACTION_ERRORS.with_borrow_mut(std::mem::take)
}

/// `": message; message"` for the failed actions, or nothing.
fn detail(failures: &[String]) -> String {
    if failures.is_empty() {
        String::new()
    } else {
        format!(": {}", failures.join("; "))
    }
}

/// A map error, with the messages of the actions that failed during the call.
fn map_failure(wrapper: &str, error: &StdError) -> Failure {
    Failure::rejected(format_args!(
        "{wrapper}: {error}{}",
        detail(&take_action_errors())
    ))
}

fn check_instance(wrapper: &str, instance: u64) -> Result<(), Failure> {
    if instance == Anchor::MemoryManager.addr() {
        Ok(())
    } else {
        Err(Failure::wrong_instance(wrapper, instance))
    }
}

/// reserve: `(Addr instance, u64 size)` → `Expected<Addr base>`.
pub(crate) fn reserve(s: &mut Services, args: &[u8]) -> Result<Vec<u8>, Failure> {
    const NAME: &str = "reserve";
    stats::RESERVE_CALLS.bump();
    let args = ReserveArgs::decode(args).map_err(|e| Failure::decode(NAME, e))?;
    check_instance(NAME, args.instance)?;
    let base = s
        .memory
        .map
        .reserve(args.size)
        .map_err(|e| map_failure(NAME, &e))?;
    stats::SLABS_RESERVED.bump();
    stats::RESERVE_BYTES.add(args.size as u64);
    reply::expected_addr(base as u64)
}

/// initialize: `(Addr instance, FinalizeRequest)` → `Expected<Addr key>`.
pub(crate) fn initialize(s: &mut Services, args: &[u8]) -> Result<Vec<u8>, Failure> {
    const NAME: &str = "initialize";
    stats::INITIALIZE_CALLS.bump();
    let args = InitializeArgs::decode(args, trampoline).map_err(|e| Failure::decode(NAME, e))?;
    check_instance(NAME, args.instance)?;
    let request = args.init_request();
    take_action_errors();
    let key = s
        .memory
        .map
        .initialize(&request)
        .map_err(|e| map_failure(NAME, &e))?;
    stats::SEGMENTS_INITIALIZED.add(request.segments.len() as u64);
    reply::expected_addr(key as u64)
}

/// deinitialize (LLVM) / deinitializeMultiple (orc-rt): `(Addr instance, Seq<Addr key>)` →
/// `Error`. Back to front; every entry is tried; the error lists each failing entry.
pub(crate) fn deinitialize(s: &mut Services, args: &[u8]) -> Result<Vec<u8>, Failure> {
    const NAME: &str = "deinitialize";
    stats::DEINITIALIZE_CALLS.bump();
    let args = AddrListArgs::decode(args).map_err(|e| Failure::decode(NAME, e))?;
    check_instance(NAME, args.instance)?;
    let keys: Vec<usize> = args.addrs.iter().collect();
    let before = s.memory.map.region_count();
    take_action_errors();
    let mut failures = Vec::new();
    let result = s.memory.map.deinitialize_multiple(&keys, |index, error| {
        failures.push(format!("key {:#x} (entry {index}): {error}", keys[index]));
    });
    stats::REGIONS_DEINITIALIZED.add(before.saturating_sub(s.memory.map.region_count()) as u64);
    batch_reply(NAME, result, failures)
}

/// release (LLVM) / releaseMultiple (orc-rt): `(Addr instance, Seq<Addr base>)` → `Error`.
/// Back to front; every entry is tried; the error lists each failing entry.
pub(crate) fn release(s: &mut Services, args: &[u8]) -> Result<Vec<u8>, Failure> {
    const NAME: &str = "release";
    stats::RELEASE_CALLS.bump();
    let args = AddrListArgs::decode(args).map_err(|e| Failure::decode(NAME, e))?;
    check_instance(NAME, args.instance)?;
    let bases: Vec<usize> = args.addrs.iter().collect();
    let before = s.memory.map.slab_count();
    take_action_errors();
    let mut failures = Vec::new();
    let result = s.memory.map.release_multiple(&bases, |index, error| {
        failures.push(format!("slab {:#x} (entry {index}): {error}", bases[index]));
    });
    stats::SLABS_RELEASED.add(before.saturating_sub(s.memory.map.slab_count()) as u64);
    batch_reply(NAME, result, failures)
}

fn batch_reply(
    wrapper: &str,
    result: Result<(), StdError>,
    failures: Vec<String>,
) -> Result<Vec<u8>, Failure> {
    let actions = take_action_errors();
    match result {
        Ok(()) => Ok(reply::no_error()),
        Err(error) => Err(Failure::rejected(format_args!(
            "{wrapper}: {error}: {}{}",
            failures.join("; "),
            detail(&actions)
        ))),
    }
}
