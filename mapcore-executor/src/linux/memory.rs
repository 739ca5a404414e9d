//! The memory manager: reserve, initialize, deinitialize and release, each with its batch form,
//! over one [`StdJitMap`].
//!
//! LLVM 22's `__llvm_orc_SimpleExecutorMemoryManager_*_wrapper` and orc-rt's
//! `orc_rt_ci_sps_SimpleNativeMemoryMap_*` share these handlers; the wire shapes are identical
//! (see `mapcore_sps`). Every error reply carries the map's own error text.
//!
//! Alloc actions arrive as a function address plus SPS arguments. The map stores each bound to
//! the session's [`ActionContext`], which runs our own actions (EH-frame registration) directly
//! and calls anything else through the C wrapper ABI.

use std::rc::Rc;

use mapcore_sps::{AddrListArgs, InitializeArgs, ReserveArgs};
use mapcore_std::{Config, StdError, StdHost, StdJitMap, WxMode};

use super::action_context::{ActionContext, RouteFn};
use super::anchor::Anchor;
use super::log::{self, Log};
use super::reply::{self, Failure};
use super::stats::{Shutdown, Stats};

/// The memory manager's state: the session's one map and what its actions reach.
#[derive(Debug)]
pub(crate) struct Memory {
    /// Declared before `actions`, so dropped first: its drop runs the remaining dealloc actions,
    /// which reach `actions`.
    map: StdJitMap,
    actions: Rc<ActionContext>,
    /// Which W^X mode the map uses, and why.
    wx: WxChoice,
}

/// The W^X mode of the session's map and why it was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WxChoice {
    /// `flip` or `dual-mapped`.
    pub(crate) mode: WxMode,
    /// One sentence: what was detected, or that `MAPCORE_EXECUTOR_WX` chose it.
    pub(crate) reason: &'static str,
}

impl WxChoice {
    /// `MAPCORE_EXECUTOR_WX=flip` or `=dual-mapped` forces a mode; otherwise
    /// [`mapcore_std::detect`] picks it. Anything else is reported and ignored.
    pub(crate) fn choose() -> Self {
        let forced = std::env::var("MAPCORE_EXECUTOR_WX").ok();
        let reason = "chosen by MAPCORE_EXECUTOR_WX";
        match forced.as_deref() {
            Some("flip") => Self {
                mode: WxMode::Flip,
                reason,
            },
            Some("dual-mapped") => Self {
                mode: WxMode::DualMapped,
                reason,
            },
            other => {
                if let Some(value) = other.filter(|v| !v.is_empty()) {
                    log::diag(format_args!(
                        "MAPCORE_EXECUTOR_WX={value:?} is neither `flip` nor `dual-mapped`; detecting"
                    ));
                }
                let detection = mapcore_std::detect();
                Self {
                    mode: detection.mode,
                    reason: detection.reason(),
                }
            }
        }
    }
}

impl Memory {
    /// A fresh map of the W^X mode `wx`; its actions' addresses are resolved by `route`.
    pub(crate) fn new(route: RouteFn, log: Log, wx: WxChoice) -> Self {
        let map = StdJitMap::with_config(StdHost::of_mode(wx.mode), Config::DEFAULT);
        Self {
            map,
            actions: ActionContext::new(route, log),
            wx,
        }
    }

    /// The map's W^X mode and why.
    pub(crate) fn wx(&self) -> WxChoice {
        self.wx
    }

    /// What the map's actions reach.
    pub(crate) fn actions(&self) -> &ActionContext {
        &self.actions
    }

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
        let failures = self.actions.take_failures();
        if let Err(e) = &result {
            log::diag(format_args!("shutdown: {e}{}", detail(&failures)));
        } else if !failures.is_empty() {
            log::diag(format_args!(
                "shutdown: dealloc actions failed{}",
                detail(&failures)
            ));
        }
        Shutdown {
            live_slabs_at_eof,
            live_regions_at_eof,
            live_slabs_after_shutdown,
            shutdown_failed: result.is_err(),
        }
    }
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
fn map_failure(memory: &Memory, wrapper: &str, error: &StdError) -> Failure {
    Failure::rejected(format_args!(
        "{wrapper}: {error}{}",
        detail(&memory.actions.take_failures())
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
pub(crate) fn reserve(
    memory: &mut Memory,
    stats: &mut Stats,
    args: &[u8],
) -> Result<Vec<u8>, Failure> {
    const NAME: &str = "reserve";
    stats.reserve_calls += 1;
    let args = ReserveArgs::decode(args).map_err(|e| Failure::decode(NAME, e))?;
    check_instance(NAME, args.instance)?;
    let base = memory
        .map
        .reserve(args.size)
        .map_err(|e| map_failure(memory, NAME, &e))?;
    stats.slabs_reserved += 1;
    stats.reserve_bytes += args.size as u64;
    reply::expected_addr(base as u64)
}

/// initialize: `(Addr instance, FinalizeRequest)` → `Expected<Addr key>`.
pub(crate) fn initialize(
    memory: &mut Memory,
    stats: &mut Stats,
    args: &[u8],
) -> Result<Vec<u8>, Failure> {
    const NAME: &str = "initialize";
    stats.initialize_calls += 1;
    let actions = &memory.actions;
    let args = InitializeArgs::decode(args, |stored| actions.bind(stored))
        .map_err(|e| Failure::decode(NAME, e))?;
    check_instance(NAME, args.instance)?;
    let request = args.init_request();
    memory.actions.take_failures();
    let key = memory
        .map
        .initialize(&request)
        .map_err(|e| map_failure(memory, NAME, &e))?;
    stats.segments_initialized += request.segments.len() as u64;
    reply::expected_addr(key as u64)
}

/// deinitialize (LLVM) / deinitializeMultiple (orc-rt): `(Addr instance, Seq<Addr key>)` →
/// `Error`. Back to front; every entry is tried; the error lists each failing entry.
pub(crate) fn deinitialize(
    memory: &mut Memory,
    stats: &mut Stats,
    args: &[u8],
) -> Result<Vec<u8>, Failure> {
    const NAME: &str = "deinitialize";
    stats.deinitialize_calls += 1;
    let args = AddrListArgs::decode(args).map_err(|e| Failure::decode(NAME, e))?;
    check_instance(NAME, args.instance)?;
    let keys: Vec<usize> = args.addrs.iter().collect();
    let before = memory.map.region_count();
    memory.actions.take_failures();
    let mut failures = Vec::new();
    let result = memory.map.deinitialize_multiple(&keys, |index, error| {
        failures.push(format!("key {:#x} (entry {index}): {error}", keys[index]));
    });
    stats.regions_deinitialized += before.saturating_sub(memory.map.region_count()) as u64;
    batch_reply(memory, NAME, result, failures)
}

/// release (LLVM) / releaseMultiple (orc-rt): `(Addr instance, Seq<Addr base>)` → `Error`.
/// Back to front; every entry is tried; the error lists each failing entry.
pub(crate) fn release(
    memory: &mut Memory,
    stats: &mut Stats,
    args: &[u8],
) -> Result<Vec<u8>, Failure> {
    const NAME: &str = "release";
    stats.release_calls += 1;
    let args = AddrListArgs::decode(args).map_err(|e| Failure::decode(NAME, e))?;
    check_instance(NAME, args.instance)?;
    let bases: Vec<usize> = args.addrs.iter().collect();
    let before = memory.map.slab_count();
    memory.actions.take_failures();
    let mut failures = Vec::new();
    let result = memory.map.release_multiple(&bases, |index, error| {
        failures.push(format!("slab {:#x} (entry {index}): {error}", bases[index]));
    });
    stats.slabs_released += before.saturating_sub(memory.map.slab_count()) as u64;
    batch_reply(memory, NAME, result, failures)
}

fn batch_reply(
    memory: &Memory,
    wrapper: &str,
    result: Result<(), StdError>,
    failures: Vec<String>,
) -> Result<Vec<u8>, Failure> {
    let actions = memory.actions.take_failures();
    match result {
        Ok(()) => Ok(reply::no_error()),
        Err(error) => Err(Failure::rejected(format_args!(
            "{wrapper}: {error}: {}{}",
            failures.join("; "),
            detail(&actions)
        ))),
    }
}
