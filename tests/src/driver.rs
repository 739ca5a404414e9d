//! The driver: runs an operation list on a real [`JitMap`] over the [`RecordingHost`] and on
//! the [`Model`], and after every operation compares everything observable:
//!
//! - the result (Ok value or exact error) and, for batches, every per-entry report;
//! - the host's fallible calls, in order, with their ranges, protections and outcomes;
//! - that writes and zero-fills touch only pages the operation owns, and that content is
//!   written before any protect;
//! - the action log (each action once, in the right order);
//! - the protection of every page the operation could have changed, every byte of each such
//!   page that must read zero, the host's reservations after a reserve or release, every byte
//!   of a new region;
//! - [`RecordingHost::check_map`] and the map's counts.
//!
//! "Could have changed" ([`Sweep::Changed`]) is exact, not a sample: the recording host
//! changes a protection only in a logged `protect`, memory only in a logged write, zero-fill,
//! discard or release (or a poke of the driver), a reservation only in a logged reserve or
//! release; the model changes a page's state only through the pages it reports as touched.
//! So if every page agreed before the operation, checking the pages in those ranges checks
//! every page. The teardown checks everything anyway ([`Sweep::Full`]: every page of every
//! slab, every byte of every free page, every region's content) before `shutdown`, and
//! `MAPCORE_CHECK=full` does so after every operation (`MAPCORE_CHECK=both`: both, failing
//! if the full sweep finds something the incremental one missed).
//!
//! Teardown: `shutdown` (compared like any operation), then no reservation may remain, no
//! region, and every dealloc action ever registered must have run exactly once.

use std::collections::BTreeMap;

use mapcore::testing::{Call, Event, FakeError, RecordingHost};
use mapcore::{
    ActionPair, AllocGroup, Capabilities, Config, Content, DiscardPolicy, Error, Fixed, Growable,
    Host, InitRequest, JitMap, Lifetime, Segment, Storage,
};

use crate::actions::{action, take_log};
use crate::input::{resolve, Concrete, Op, Setup, Tags, MAX_OPS};
use crate::model::{
    pattern, CallM, ExpCall, FaultPlan, FreeBytes, InitM, MErr, Model, ModelConfig, PageState,
    MERGED_ENTRIES,
};

/// The fixed storage the fuzz targets use: small, so that every capacity is reachable.
pub type SmallStorage = Fixed<4, 6, 12>;

/// `op:variant` outcome counts, e.g. `initialize:Overlap` or `deinitialize_multiple[entry]:Busy`.
pub type Tally = BTreeMap<String, usize>;

/// The name of an error variant.
#[must_use]
pub fn variant<E>(e: &Error<E>) -> &'static str {
    match e {
        Error::InvalidSize { .. } => "InvalidSize",
        Error::TooLarge { .. } => "TooLarge",
        Error::CapacityExceeded(l) => match l {
            mapcore::Limit::Slabs => "CapacityExceeded(Slabs)",
            mapcore::Limit::Regions => "CapacityExceeded(Regions)",
            mapcore::Limit::Spans => "CapacityExceeded(Spans)",
            mapcore::Limit::Segments => "CapacityExceeded(Segments)",
            mapcore::Limit::ActionPairs => "CapacityExceeded(ActionPairs)",
        },
        Error::NoStandardSegment => "NoStandardSegment",
        Error::Misaligned { .. } => "Misaligned",
        Error::Overflow { .. } => "Overflow",
        Error::ContentTooLong { .. } => "ContentTooLong",
        Error::NotInSlab { .. } => "NotInSlab",
        Error::SpansSlabs { .. } => "SpansSlabs",
        Error::SharedPage { .. } => "SharedPage",
        Error::Overlap { .. } => "Overlap",
        Error::KeyInUse { .. } => "KeyInUse",
        Error::WriteExecute { .. } => "WriteExecute",
        Error::UnknownKey { .. } => "UnknownKey",
        Error::InteriorAddress { .. } => "InteriorAddress",
        Error::NotInAnySlab { .. } => "NotInAnySlab",
        Error::NotSlabBase { .. } => "NotSlabBase",
        Error::Busy { .. } => "Busy",
        Error::HostInvariant { .. } => "HostInvariant",
        Error::Host {
            quarantined: true,
            dealloc_failures: 1..,
            ..
        } => "Host(quarantined)+DeallocFailed",
        Error::Host {
            dealloc_failures: 1..,
            ..
        } => "Host+DeallocFailed",
        Error::Host {
            quarantined: true, ..
        } => "Host(quarantined)",
        Error::Host { .. } => "Host",
        Error::FinalizeFailed {
            quarantined: true, ..
        } => "FinalizeFailed(quarantined)",
        Error::FinalizeFailed { .. } => "FinalizeFailed",
        Error::DeallocFailed { .. } => "DeallocFailed",
        Error::Batch { .. } => "Batch",
        _ => "unknown",
    }
}

/// Every variant the model can predict, with the errno of host errors.
///
/// # Panics
///
/// On a variant added to `mapcore::Error` after this model was written: extend the model.
#[must_use]
pub fn to_model<E>(e: Error<E>, errno: impl Fn(&E) -> i32) -> MErr {
    match e {
        Error::InvalidSize { size } => Error::InvalidSize { size },
        Error::TooLarge { size } => Error::TooLarge { size },
        Error::CapacityExceeded(l) => Error::CapacityExceeded(l),
        Error::NoStandardSegment => Error::NoStandardSegment,
        Error::Misaligned { segment } => Error::Misaligned { segment },
        Error::Overflow { segment } => Error::Overflow { segment },
        Error::ContentTooLong { segment } => Error::ContentTooLong { segment },
        Error::NotInSlab { segment } => Error::NotInSlab { segment },
        Error::SpansSlabs { segment } => Error::SpansSlabs { segment },
        Error::SharedPage { segment } => Error::SharedPage { segment },
        Error::Overlap { segment } => Error::Overlap { segment },
        Error::KeyInUse { key } => Error::KeyInUse { key },
        Error::WriteExecute { segment } => Error::WriteExecute { segment },
        Error::UnknownKey { addr } => Error::UnknownKey { addr },
        Error::InteriorAddress { addr } => Error::InteriorAddress { addr },
        Error::NotInAnySlab { addr } => Error::NotInAnySlab { addr },
        Error::NotSlabBase { addr } => Error::NotSlabBase { addr },
        Error::Busy { addr } => Error::Busy { addr },
        Error::HostInvariant { addr } => Error::HostInvariant { addr },
        Error::Host {
            op,
            segment,
            error,
            quarantined,
            dealloc_failures,
        } => Error::Host {
            op,
            segment,
            error: errno(&error),
            quarantined,
            dealloc_failures,
        },
        Error::FinalizeFailed {
            action,
            error,
            cleanup_failures,
            quarantined,
        } => Error::FinalizeFailed {
            action,
            error,
            cleanup_failures,
            quarantined,
        },
        Error::DeallocFailed { failed } => Error::DeallocFailed { failed },
        Error::Batch { failed } => Error::Batch { failed },
        _ => panic!("an error variant the model does not know: extend the model"),
    }
}

/// Whether an initialize error is a validation error (nothing happened).
#[must_use]
pub fn is_validation(e: &MErr) -> bool {
    !matches!(
        e,
        Error::Host { .. }
            | Error::FinalizeFailed { .. }
            | Error::DeallocFailed { .. }
            | Error::Batch { .. }
    )
}

/// The map config and model config for a setup, on a host with `page_size` and
/// `capabilities`.
#[must_use]
pub fn configs(
    setup: &Setup,
    page_size: usize,
    capabilities: Capabilities,
    capacities: (Option<usize>, Option<usize>, Option<usize>),
) -> (Config, ModelConfig) {
    let config = Config {
        discard: if setup.retain() {
            DiscardPolicy::Retain
        } else {
            DiscardPolicy::Discard
        },
        allow_write_exec: setup.allow_write_exec(),
        max_reservation: setup.max_reservation(page_size),
    };
    let model = ModelConfig {
        page_size,
        discard_policy: !setup.retain(),
        host_discards: capabilities.discard,
        reuse_exec: capabilities.reuse_executable,
        allow_write_exec: setup.allow_write_exec(),
        max_reservation: setup.max_reservation(page_size),
        alias: capabilities.writes_through_alias,
        slabs: capacities.0,
        regions: capacities.1,
        spans: capacities.2,
    };
    (config, model)
}

/// Segments and pairs of a request; `bufs` holds the copied contents.
pub fn build_request<'a>(req: &InitM, bufs: &'a [Vec<u8>]) -> (Vec<Segment<'a>>, Vec<ActionPair>) {
    let segments = req
        .segs
        .iter()
        .zip(bufs)
        .map(|(s, buf)| Segment {
            group: AllocGroup::with_lifetime(
                s.prot,
                if s.finalize {
                    Lifetime::Finalize
                } else {
                    Lifetime::Standard
                },
            ),
            addr: s.addr,
            size: s.size,
            content: if s.in_place {
                Content::InPlace { len: s.content_len }
            } else {
                Content::Bytes(buf)
            },
        })
        .collect();
    let pairs = req
        .pairs
        .iter()
        .map(|p| ActionPair {
            finalize: p.finalize.map(action),
            dealloc: p.dealloc.map(action),
        })
        .collect();
    (segments, pairs)
}

/// The copied content of each segment (empty for in-place ones).
#[must_use]
pub fn contents(req: &InitM) -> Vec<Vec<u8>> {
    req.segs
        .iter()
        .map(|s| {
            if s.in_place {
                Vec::new()
            } else {
                (0..s.content_len).map(|i| pattern(s.seed, i)).collect()
            }
        })
        .collect()
}

/// In-place content ranges of `req` that the driver may write before the call (their pages
/// are free), as a caller of the map would.
#[must_use]
pub fn in_place_writes(req: &InitM, model: &Model) -> Vec<(usize, usize, u8)> {
    let page = model.cfg.page_size;
    req.segs
        .iter()
        .filter(|s| s.in_place && s.content_len > 0 && s.content_len <= s.size)
        .filter(|s| {
            s.addr.checked_add(s.content_len).is_some_and(|end| {
                (s.addr & !(page - 1)..end)
                    .step_by(page)
                    .all(|p| matches!(model.page_state(p), Some(PageState::Free { .. })))
            })
        })
        .map(|s| (s.addr, s.content_len, s.seed))
        .collect()
}

/// Whether `MAPCORE_TRACE` is set: the driver then prints every operation as it runs it.
fn trace() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("MAPCORE_TRACE").is_some())
}

/// How much of the host a check after an operation covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    /// What the operation could have changed (see the module docs): the pages the model
    /// touched or let it write, the pages of every logged protect, discard, write and
    /// zero-fill, the pages the driver wrote in place; the reservations after a reserve or
    /// release call.
    Changed,
    /// Everything: every page of every slab, every byte of every page that must read zero,
    /// the reservations.
    Full,
}

/// What the driver checks after each operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checks {
    /// [`Sweep::Changed`] after each operation, [`Sweep::Full`] before the teardown (the
    /// default).
    Incremental,
    /// [`Sweep::Full`] after each operation.
    Full,
    /// Both after each operation; fails if the full sweep finds a disagreement that the
    /// incremental one did not (a hole in [`Sweep::Changed`]).
    Both,
}

impl Checks {
    /// From `MAPCORE_CHECK` (`full`, `both`; anything else or unset: incremental).
    #[must_use]
    pub fn from_env() -> Self {
        static CHECKS: std::sync::OnceLock<Checks> = std::sync::OnceLock::new();
        *CHECKS.get_or_init(|| match std::env::var("MAPCORE_CHECK").as_deref() {
            Ok("full") => Self::Full,
            Ok("both") => Self::Both,
            _ => Self::Incremental,
        })
    }
}

/// `setup` with the alias bit set if `MAPCORE_FUZZ_ALIAS=1` (read once): a fuzz run that
/// exercises lazy protection only, and whose execution count is then that of alias-mode runs.
/// An input found so reproduces with bit 7 of its flags byte (its second byte) set.
#[must_use]
pub fn force_alias(setup: Setup) -> Setup {
    static FORCE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let force = *FORCE.get_or_init(|| std::env::var("MAPCORE_FUZZ_ALIAS").as_deref() == Ok("1"));
    Setup {
        flags: if force {
            setup.flags | 0x80
        } else {
            setup.flags
        },
        ..setup
    }
}

/// Replays an input's operations; panics on any disagreement.
///
/// `#[inline]`, like [`run`] and [`run_checked`]: the map is instantiated (`JitMap<&RecordingHost,
/// _>`) in the crate that calls these, the fuzz target, and so instrumented for coverage with
/// it, while the model and the checks stay compiled here (see `fuzz/README.md`).
#[inline]
pub fn run_core(setup: &Setup, ops: &[Op]) {
    run(setup, ops, None);
}

/// Replays operations on the recording host, counting outcomes into
/// `tally`; panics on any disagreement. Checks as `MAPCORE_CHECK` says ([`Checks::from_env`]).
#[inline]
pub fn run(setup: &Setup, ops: &[Op], tally: Option<&mut Tally>) {
    run_checked(setup, ops, tally, Checks::from_env());
}

/// [`run`] with the given [`Checks`].
#[inline]
pub fn run_checked(setup: &Setup, ops: &[Op], tally: Option<&mut Tally>, checks: Checks) {
    let page = setup.page_size();
    let capabilities = Capabilities {
        discard: setup.host_discards(),
        reuse_executable: setup.reuse_exec(),
        writes_through_alias: setup.writes_through_alias(),
    };
    let host = RecordingHost::with_capabilities(page, capabilities);
    let probe = Recording(&host);
    if setup.growable() {
        let (config, model) = configs(setup, page, capabilities, (None, None, None));
        let map: JitMap<&RecordingHost, Growable> = JitMap::with_config(&host, config);
        let subject = Box::new(recording_subject(map));
        drive_checked(subject, &probe, Model::new(model), ops, tally, checks);
    } else {
        let (config, model) = configs(setup, page, capabilities, (Some(4), Some(6), Some(12)));
        let map: JitMap<&RecordingHost, SmallStorage> = JitMap::with_config(&host, config);
        let subject = Box::new(recording_subject(map));
        drive_checked(subject, &probe, Model::new(model), ops, tally, checks);
    }
}

/// The map under test as the driver sees it: every result in the model's terms (host errors
/// as errno values), its counts, and its own consistency check. [`Mapped`] implements it for
/// any [`JitMap`]; the driver itself is not generic, so that it is compiled once, here.
pub trait Subject {
    /// `reserve`.
    ///
    /// # Errors
    ///
    /// The map's error.
    fn reserve(&self, size: usize) -> Result<usize, MErr>;
    /// `initialize`.
    ///
    /// # Errors
    ///
    /// The map's error.
    fn initialize(&self, request: &InitRequest<'_>) -> Result<usize, MErr>;
    /// `deinitialize`.
    ///
    /// # Errors
    ///
    /// The map's error.
    fn deinitialize(&self, key: usize) -> Result<(), MErr>;
    /// `deinitialize_multiple`, each failing entry to `report`.
    ///
    /// # Errors
    ///
    /// The map's error.
    fn deinitialize_multiple(
        &self,
        keys: &[usize],
        report: &mut dyn FnMut(usize, MErr),
    ) -> Result<(), MErr>;
    /// `release`.
    ///
    /// # Errors
    ///
    /// The map's error.
    fn release(&self, base: usize) -> Result<(), MErr>;
    /// `release_multiple`, each failing entry to `report`.
    ///
    /// # Errors
    ///
    /// The map's error.
    fn release_multiple(
        &self,
        bases: &[usize],
        report: &mut dyn FnMut(usize, MErr),
    ) -> Result<(), MErr>;
    /// `shutdown`.
    ///
    /// # Errors
    ///
    /// The map's error.
    fn shutdown(&self) -> Result<(), MErr>;
    /// `(slab_count, region_count)`.
    fn counts(&self) -> (usize, usize);
    /// The map's consistency with itself and its host.
    ///
    /// # Errors
    ///
    /// What is inconsistent.
    fn check(&self) -> Result<(), String>;
}

/// A [`JitMap`] as a [`Subject`]: `errno` reads a host error, `check` is the consistency check
/// ([`RecordingHost::check_map`], or [`JitMap::check_invariants`]).
pub struct Mapped<H: Host, S: Storage> {
    /// The map.
    pub map: JitMap<H, S>,
    /// The errno value of a host error.
    pub errno: fn(&H::Error) -> i32,
    /// The consistency check.
    pub check: fn(&JitMap<H, S>) -> Result<(), String>,
}

impl<H: Host, S: Storage> std::fmt::Debug for Mapped<H, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapped").finish_non_exhaustive()
    }
}

impl<H: Host, S: Storage> Subject for Mapped<H, S> {
    fn reserve(&self, size: usize) -> Result<usize, MErr> {
        self.map.reserve(size).map_err(|e| to_model(e, self.errno))
    }

    fn initialize(&self, request: &InitRequest<'_>) -> Result<usize, MErr> {
        self.map
            .initialize(request)
            .map_err(|e| to_model(e, self.errno))
    }

    fn deinitialize(&self, key: usize) -> Result<(), MErr> {
        self.map
            .deinitialize(key)
            .map_err(|e| to_model(e, self.errno))
    }

    fn deinitialize_multiple(
        &self,
        keys: &[usize],
        report: &mut dyn FnMut(usize, MErr),
    ) -> Result<(), MErr> {
        self.map
            .deinitialize_multiple(keys, |i, e| report(i, to_model(e, self.errno)))
            .map_err(|e| to_model(e, self.errno))
    }

    fn release(&self, base: usize) -> Result<(), MErr> {
        self.map.release(base).map_err(|e| to_model(e, self.errno))
    }

    fn release_multiple(
        &self,
        bases: &[usize],
        report: &mut dyn FnMut(usize, MErr),
    ) -> Result<(), MErr> {
        self.map
            .release_multiple(bases, |i, e| report(i, to_model(e, self.errno)))
            .map_err(|e| to_model(e, self.errno))
    }

    fn shutdown(&self) -> Result<(), MErr> {
        self.map.shutdown().map_err(|e| to_model(e, self.errno))
    }

    fn counts(&self) -> (usize, usize) {
        (self.map.slab_count(), self.map.region_count())
    }

    fn check(&self) -> Result<(), String> {
        (self.check)(&self.map)
    }
}

/// A map over the recording host as a [`Subject`], checked with
/// [`RecordingHost::check_map`] after every operation.
pub fn recording_subject<S: Storage>(map: JitMap<&RecordingHost, S>) -> Mapped<&RecordingHost, S> {
    Mapped {
        map,
        errno: |e| e.errno,
        check: |map| {
            map.host()
                .check_map(map)
                .map_err(|e| format!("check_map: {e}"))
        },
    }
}

/// What the driver needs from a host beyond the map's API: fault injection, a way to write
/// in place and read back, and the host-specific checks.
pub trait Probe {
    /// Whether the host injects faults; the model is told no fault otherwise.
    fn injects_faults(&self) -> bool;
    /// Arms the faults for the next operation and clears the call log.
    fn arm(&self, faults: &FaultPlan);
    /// Disarms every fault.
    fn disarm(&self);
    /// The base the host will return for `reserve(size)`, or `None` to take the map's answer.
    fn predict_base(&self, model: &Model, size: usize) -> Option<usize>;
    /// Writes `bytes` at `addr` (free pages), as a caller writing in place: through the
    /// host's read-write alias if it has one (free pages may then be at any protection),
    /// otherwise directly (free pages are read-write).
    fn poke(&self, addr: usize, bytes: &[u8]);
    /// Reads `len` bytes at `addr`, whatever the protection.
    fn read(&self, addr: usize, len: usize) -> Vec<u8>;
    /// The fallible host calls made since [`Probe::arm`], in the model's form, where the host
    /// logs them.
    fn fallible_calls(&self) -> Option<Vec<CallM>>;
    /// Checks the host after an operation against the model (after [`Model::end`]): calls,
    /// writes, protections, reservations, pages that must read zero, over what `sweep` says.
    /// `pokes` are the `(addr, len)` ranges the driver wrote in place before the operation.
    ///
    /// # Errors
    ///
    /// What disagrees.
    fn check(&self, model: &Model, sweep: Sweep, pokes: &[(usize, usize)]) -> Result<(), String>;
}

/// The recording host as a [`Probe`].
#[derive(Debug, Clone, Copy)]
pub struct Recording<'h>(pub &'h RecordingHost);

/// The fallible call `call` as the model writes it, `None` for writes and zero-fills.
fn expected_form(call: Call) -> Option<ExpCall> {
    Some(match call {
        Call::Reserve { size, base } => ExpCall::Reserve { size, base },
        Call::Release { base, size } => ExpCall::Release { base, size },
        Call::Protect { range, prot } => ExpCall::Protect {
            start: range.start(),
            end: range.end(),
            prot,
        },
        Call::Discard { range } => ExpCall::Discard {
            start: range.start(),
            end: range.end(),
        },
        Call::FlushIcache { range } => ExpCall::Flush {
            start: range.start(),
            end: range.end(),
        },
        Call::Write { .. } | Call::FillZero { .. } | Call::FillTrap { .. } => return None,
    })
}

/// Whether every byte of `bytes` is zero (compared a block at a time: one `memcmp` per 4 KiB,
/// not one instrumented comparison per byte).
#[must_use]
pub fn all_zero(bytes: &[u8]) -> bool {
    static ZERO: [u8; 4096] = [0; 4096];
    bytes.chunks(ZERO.len()).all(|c| c == &ZERO[..c.len()])
}

/// The index of the first byte where `a` and `b` differ (`a.len()` if none).
fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len())
}

/// Adds the pages of `[start, end)` to `pages`.
fn add_pages(pages: &mut Vec<usize>, page: usize, start: usize, end: usize) {
    pages.extend((start & !(page - 1)..end).step_by(page));
}

impl Probe for Recording<'_> {
    fn injects_faults(&self) -> bool {
        true
    }

    fn fallible_calls(&self) -> Option<Vec<CallM>> {
        let log = self.0.log();
        let calls = log.iter();
        Some(
            calls
                .filter_map(|e| expected_form(e.call).map(|call| CallM { call, ok: e.ok }))
                .collect(),
        )
    }

    fn arm(&self, faults: &FaultPlan) {
        self.0.clear_faults();
        self.0.clear_log();
        for &(k, e) in &faults.nth {
            self.0.fail_nth(k, FakeError { errno: e });
        }
        for &(o, e) in &faults.ops {
            self.0.fail_op(o, FakeError { errno: e });
        }
    }

    fn disarm(&self) {
        self.0.clear_faults();
    }

    fn predict_base(&self, model: &Model, size: usize) -> Option<usize> {
        Some(model.first_fit(size))
    }

    fn poke(&self, addr: usize, bytes: &[u8]) {
        self.0.poke_through_alias(addr, bytes);
    }

    fn read(&self, addr: usize, len: usize) -> Vec<u8> {
        self.0.read(addr, len)
    }

    fn check(&self, model: &Model, sweep: Sweep, pokes: &[(usize, usize)]) -> Result<(), String> {
        let host = self.0;
        let page = model.cfg.page_size;
        let log: Vec<Event> = host.log();
        // Fallible calls, compared in place; the lists are only built to report a mismatch.
        let mut want = model.calls.iter();
        let mut same = true;
        let mut reservations_changed = false;
        for e in &log {
            if let Some(call) = expected_form(e.call) {
                reservations_changed |=
                    matches!(call, ExpCall::Reserve { .. } | ExpCall::Release { .. });
                same &= want.next() == Some(&CallM { call, ok: e.ok });
            }
        }
        if !same || want.next().is_some() {
            let calls: Vec<CallM> = log
                .iter()
                .filter_map(|e| expected_form(e.call).map(|call| CallM { call, ok: e.ok }))
                .collect();
            return Err(format!(
                "host calls\n    {calls:x?}\n  model predicts\n    {:x?}",
                model.calls
            ));
        }
        // Writes stay inside the operation's pages, and content precedes protection.
        let first_protect = log
            .iter()
            .position(|e| matches!(e.call, Call::Protect { .. } | Call::FlushIcache { .. }));
        for (i, e) in log.iter().enumerate() {
            let (addr, len, is_write) = match e.call {
                Call::Write { addr, len } => (addr, len, true),
                Call::FillZero { addr, len } | Call::FillTrap { addr, len } => (addr, len, false),
                _ => continue,
            };
            if len > 0 {
                let inside = (addr & !(page - 1)..addr + len)
                    .step_by(page)
                    .all(|p| model.may_write(p));
                if !inside {
                    return Err(format!(
                        "{:x?} touches pages the operation does not own",
                        e.call
                    ));
                }
            }
            if is_write && first_protect.is_some_and(|f| f < i) {
                return Err(format!("{:x?} after the first protect or flush", e.call));
            }
            // Performance model: when freed pages are discarded they are known zero, so a
            // zero-fill is only the fallback of a discard that just failed over its range.
            let after_failed_discard = i > 0
                && matches!(log[i - 1], Event { call: Call::Discard { range }, ok: false }
                    if range.start() <= addr && addr + len <= range.end());
            let trap = matches!(e.call, Call::FillTrap { .. });
            if !is_write && !trap && model.cfg.discarding() && len > 0 && !after_failed_discard {
                return Err(format!("{:x?} of pages known to be zero", e.call));
            }
            // Trap bytes replace freed code only where the map protects lazily and does not
            // discard.
            if trap && (!model.cfg.alias || model.cfg.discarding()) {
                return Err(format!("{:x?} on a host that does not need it", e.call));
            }
        }
        // Reservations.
        if reservations_changed || sweep == Sweep::Full {
            let held = host.reservations();
            let same = held.len() == model.slabs().len()
                && held
                    .iter()
                    .zip(model.slabs())
                    .all(|(h, (b, s))| *h == (*b, s.size));
            if !same {
                let want: Vec<(usize, usize)> =
                    model.slabs().iter().map(|(b, s)| (*b, s.size)).collect();
                return Err(format!(
                    "host reservations {held:x?}, model slabs {want:x?}"
                ));
            }
        }
        // The pages to look at: every page, or those the operation could have changed.
        let mut pages: Vec<usize> = Vec::new();
        match sweep {
            Sweep::Full => pages.extend(model.pages().keys()),
            Sweep::Changed => {
                pages.extend(&model.touched);
                pages.extend(&model.writable);
                for e in &log {
                    match e.call {
                        Call::Protect { range, .. } | Call::Discard { range } => {
                            add_pages(&mut pages, page, range.start(), range.end());
                        }
                        Call::Write { addr, len }
                        | Call::FillZero { addr, len }
                        | Call::FillTrap { addr, len } => {
                            add_pages(&mut pages, page, addr, addr + len);
                        }
                        _ => {}
                    }
                }
                for &(addr, len) in pokes {
                    add_pages(&mut pages, page, addr, addr + len);
                }
                pages.sort_unstable();
                pages.dedup();
            }
        }
        // Protections, and whole pages reading zero (or trap bytes and zeros) where they must: a
        // page that is free and not stale (fresh from reserve, freed while discarding, or freed on
        // an alias host). Contiguous such pages are read together, up to 4 KiB at a time
        // (small reads keep the allocator's, and under ASan its quarantine's, memory warm).
        let mut zero_run: Option<(usize, usize, u8)> = None;
        let check_zero = |run: Option<(usize, usize, u8)>| -> Result<(), String> {
            let Some((start, end, byte)) = run else {
                return Ok(());
            };
            let bytes = host.read(start, end - start);
            // Freed code holds trap bytes where it was written, zeros elsewhere.
            let stale = |b: &u8| *b != 0 && *b != byte;
            let clean = if byte == 0 {
                all_zero(&bytes)
            } else {
                !bytes.iter().any(stale)
            };
            if clean {
                return Ok(());
            }
            let at = start + bytes.iter().position(stale).unwrap_or(0);
            let what = if byte == 0 {
                "zeros"
            } else {
                "trap bytes or zeros"
            };
            Err(format!(
                "free page {:#x} holds stale bytes (at {at:#x}), not {what}",
                at & !(page - 1)
            ))
        };
        for &addr in &pages {
            let Some(&state) = model.pages().get(&addr) else {
                // Not in a slab of the model (a released one: see the reservations).
                continue;
            };
            if let Some(prot) = state.expected_prot() {
                let got = host.prot_at(addr);
                if got != Some(prot) {
                    return Err(format!(
                        "page {addr:#x} ({state:?}) has protection {got:?}, expected {prot}"
                    ));
                }
            }
            let byte = match state {
                PageState::Free {
                    bytes: FreeBytes::Zero,
                    ..
                } => 0,
                PageState::Free {
                    bytes: FreeBytes::Trap,
                    ..
                } => RecordingHost::TRAP_BYTE,
                _ => continue,
            };
            match &mut zero_run {
                Some((start, end, b)) if *end == addr && *b == byte && *end - *start < 4096 => {
                    *end += page;
                }
                run => check_zero(run.replace((addr, addr + page, byte)))?,
            }
        }
        check_zero(zero_run)
    }
}

/// Runs `ops` on `map` and `model` through `probe`, then tears down; panics on any
/// disagreement. Checks as `MAPCORE_CHECK` says ([`Checks::from_env`]).
pub fn drive(
    map: Box<dyn Subject + '_>,
    probe: &dyn Probe,
    model: Model,
    ops: &[Op],
    tally: Option<&mut Tally>,
) {
    drive_checked(map, probe, model, ops, tally, Checks::from_env());
}

/// [`drive`] with the given [`Checks`].
pub fn drive_checked(
    map: Box<dyn Subject + '_>,
    probe: &dyn Probe,
    model: Model,
    ops: &[Op],
    tally: Option<&mut Tally>,
    checks: Checks,
) {
    let _ = take_log();
    let mut driver = Driver {
        map,
        probe,
        model,
        tags: Tags::default(),
        ran: Vec::new(),
        tally,
        step: 0,
        checks,
        pokes: Vec::new(),
    };
    for op in ops.iter().take(MAX_OPS) {
        let concrete = resolve(op, &driver.model, &mut driver.tags);
        let faults = if driver.probe.injects_faults() {
            op.fault().plan()
        } else {
            FaultPlan::default()
        };
        driver.step(&concrete, &faults);
    }
    driver.teardown();
}

struct Driver<'a, 't> {
    map: Box<dyn Subject + 'a>,
    probe: &'a dyn Probe,
    model: Model,
    tags: Tags,
    /// How often each action tag ran, over the whole run, indexed by tag.
    ran: Vec<u8>,
    tally: Option<&'t mut Tally>,
    step: usize,
    checks: Checks,
    /// The ranges written in place before the current operation, `(addr, len)`.
    pokes: Vec<(usize, usize)>,
}

impl Driver<'_, '_> {
    fn count(&mut self, op: &str, result: &Result<(), MErr>) {
        if let Some(t) = self.tally.as_deref_mut() {
            let name = match result {
                Ok(()) => "Ok",
                Err(e) => variant(e),
            };
            *t.entry(format!("{op}:{name}")).or_default() += 1;
        }
    }

    fn step(&mut self, op: &Concrete, faults: &FaultPlan) {
        self.step += 1;
        if trace() {
            eprintln!("step {} {op:x?} faults {faults:?}", self.step);
        }
        let _ = take_log();
        self.pokes.clear();
        self.probe.arm(faults);
        self.model.begin(faults);
        let mut reports: Vec<(usize, MErr)> = Vec::new();
        let mut new_key = None;
        let (actual, predicted): (Result<(), MErr>, Result<(), MErr>) = match op {
            Concrete::Reserve(size) => {
                let actual = self.map.reserve(*size);
                let guess = self.probe.predict_base(&self.model, *size);
                let taken = *actual.as_ref().unwrap_or(&0);
                let predicted = self.model.reserve(*size, |_| guess.unwrap_or(taken));
                self.same(op, &actual, &predicted);
                (actual.map(|_| ()), predicted.map(|_| ()))
            }
            Concrete::Initialize(req) => {
                let pokes = in_place_writes(req, &self.model);
                let mut before = Vec::with_capacity(pokes.len());
                for &(addr, len, seed) in &pokes {
                    before.push(self.probe.read(addr, len));
                    let bytes: Vec<u8> = (0..len).map(|i| pattern(seed, i)).collect();
                    self.probe.poke(addr, &bytes);
                    self.pokes.push((addr, len));
                }
                let bufs = contents(req);
                let (segments, pairs) = build_request(req, &bufs);
                let actual = self.map.initialize(&InitRequest::new(&segments, &pairs));
                let predicted = self.model.initialize(req);
                let accepted = match (&actual, &predicted) {
                    (Err(a), Err(_)) => self.model.alternatives.contains(a),
                    _ => false,
                };
                if !accepted {
                    self.same(op, &actual, &predicted);
                }
                if let Err(e) = &predicted {
                    // The caller cleans up what it wrote in place for a rejected request: the
                    // pages are free again and hold what they held before (zeros if discarded
                    // or fresh from reserve, trap bytes if freed code on an alias host).
                    if is_validation(e) {
                        // Newest first: segments may share bytes.
                        for (&(addr, _, _), old) in pokes.iter().zip(&before).rev() {
                            self.probe.poke(addr, old);
                        }
                    }
                }
                new_key = predicted.as_ref().ok().copied();
                (
                    actual.map(|_| ()),
                    if accepted {
                        actual.map(|_| ())
                    } else {
                        predicted.map(|_| ())
                    },
                )
            }
            Concrete::Deinitialize(key) => {
                let actual = self.map.deinitialize(*key);
                (actual, self.model.deinitialize(*key))
            }
            Concrete::DeinitializeMultiple(keys) => {
                let actual = self
                    .map
                    .deinitialize_multiple(keys, &mut |i, e| reports.push((i, e)));
                (actual, self.deinitialize_multiple_any_grouping(keys))
            }
            Concrete::Release(base) => {
                let actual = self.map.release(*base);
                (actual, self.model.release(*base))
            }
            Concrete::ReleaseMultiple(bases) => {
                let actual = self
                    .map
                    .release_multiple(bases, &mut |i, e| reports.push((i, e)));
                (actual, self.model.release_multiple(bases))
            }
            Concrete::Shutdown => {
                let actual = self.map.shutdown();
                (actual, self.model.shutdown())
            }
        };
        self.probe.disarm();
        self.model.end();
        if trace() {
            eprintln!("  -> {actual:x?} (model {predicted:x?}) reports {reports:x?}");
        }
        self.same(op, &actual, &predicted);
        self.count(op.name(), &actual);
        self.check_reports(op, reports);
        self.check_after(op, new_key);
    }

    /// The model's `deinitialize_multiple(keys)`. The contract says only that the map handles
    /// at least [`MERGED_ENTRIES`] consecutive entries together (sharing host calls over
    /// adjacent pages), so every group size from there up is tried, and the first whose host
    /// calls are the ones the map made is the prediction. Without a call log, or if no size
    /// matches, the whole batch as one group (whose mismatch the checks then report).
    fn deinitialize_multiple_any_grouping(&mut self, keys: &[usize]) -> Result<(), MErr> {
        if let Some(made) = self.probe.fallible_calls() {
            for group in MERGED_ENTRIES..keys.len() {
                let mut candidate = self.model.clone();
                let result = candidate.deinitialize_multiple(keys, group);
                if candidate.calls == made {
                    self.model = candidate;
                    return result;
                }
            }
        }
        self.model.deinitialize_multiple(keys, keys.len())
    }

    fn fail(&self, op: &Concrete, what: &str) -> ! {
        panic!(
            "step {} {op:x?}: {what}\n  model slabs {:x?}\n  model regions {:x?}",
            self.step,
            self.model.slabs(),
            self.model.regions().keys().collect::<Vec<_>>()
        )
    }

    fn same<T: PartialEq + std::fmt::Debug>(&self, op: &Concrete, actual: &T, predicted: &T) {
        if actual != predicted {
            self.fail(
                op,
                &format!("result {actual:x?}, model predicts {predicted:x?}"),
            );
        }
    }

    fn check_reports(&mut self, op: &Concrete, mut reports: Vec<(usize, MErr)>) {
        if reports.is_empty()
            && (self.model.reports.is_empty() || matches!(op, Concrete::Deinitialize(_)))
        {
            return;
        }
        let mut expected = self.model.reports.clone();
        if matches!(op, Concrete::Deinitialize(_)) {
            // The single form consumed its report.
            expected.clear();
        }
        reports.sort_by_key(|r| r.0);
        expected.sort_by_key(|r| r.0);
        if reports.windows(2).any(|w| w[0].0 == w[1].0) {
            self.fail(op, &format!("an entry was reported twice: {reports:x?}"));
        }
        if reports != expected {
            self.fail(
                op,
                &format!("batch reports {reports:x?}, model predicts {expected:x?}"),
            );
        }
        if let Some(t) = self.tally.as_deref_mut() {
            for (_, e) in &reports {
                *t.entry(format!("{}[entry]:{}", op.name(), variant(e)))
                    .or_default() += 1;
            }
        }
    }

    /// The host checks of `self.checks` after an operation.
    fn check_host(&self, op: &Concrete) {
        let check = |sweep| {
            self.probe
                .check(&self.model, sweep, &self.pokes)
                .and_then(|()| self.map.check())
        };
        let result = match self.checks {
            Checks::Incremental => check(Sweep::Changed),
            Checks::Full => check(Sweep::Full),
            Checks::Both => match (check(Sweep::Changed), check(Sweep::Full)) {
                (Ok(()), Err(e)) => Err(format!(
                    "the incremental check missed what the full sweep found: {e}"
                )),
                (changed, _) => changed,
            },
        };
        if let Err(e) = result {
            self.fail(op, &e);
        }
    }

    fn check_after(&mut self, op: &Concrete, new_key: Option<usize>) {
        // Actions.
        let actions = take_log();
        if actions != self.model.actions {
            self.fail(
                op,
                &format!(
                    "action log {actions:?}, model predicts {:?}",
                    self.model.actions
                ),
            );
        }
        for &tag in &actions {
            let i = tag as usize;
            if self.ran.len() <= i {
                self.ran.resize(i + 1, 0);
            }
            self.ran[i] = self.ran[i].saturating_add(1);
            if self.ran[i] > 1 {
                self.fail(op, &format!("action {tag} ran twice"));
            }
        }
        self.check_host(op);
        if let Some(key) = new_key {
            self.check_content(op, key);
        }
        let counts = self.map.counts();
        let want = (self.model.slabs().len(), self.model.regions().len());
        if counts != want {
            self.fail(
                op,
                &format!("map counts (slabs, regions) {counts:?}, model {want:?}"),
            );
        }
    }

    /// Every byte of every Standard segment of region `key`: its content, then zeros to the
    /// end of its last page.
    fn check_content(&self, op: &Concrete, key: usize) {
        let Some(region) = self.model.regions().get(&key) else {
            return;
        };
        for f in &region.fills {
            let bytes = self.probe.read(f.addr, f.end - f.addr);
            let (content, rest) = bytes.split_at(f.len.min(bytes.len()));
            let want: Vec<u8> = (0..content.len()).map(|i| pattern(f.seed, i)).collect();
            let at = if content != want.as_slice() {
                first_difference(content, &want)
            } else if !all_zero(rest) {
                content.len() + rest.iter().position(|b| *b != 0).unwrap_or(0)
            } else {
                continue;
            };
            let expected = want.get(at).copied().unwrap_or(0);
            self.fail(
                op,
                &format!(
                    "region {key:#x}: byte {:#x} is {:#x}, expected {expected:#x}",
                    f.addr + at,
                    bytes[at]
                ),
            );
        }
    }

    fn teardown(mut self) {
        let keys: Vec<usize> = self.model.regions().keys().copied().collect();
        for &key in &keys {
            self.check_content(&Concrete::Shutdown, key);
        }
        // Everything, once, whatever the per-operation checks were.
        if let Err(e) = self
            .probe
            .check(&self.model, Sweep::Full, &self.pokes)
            .and_then(|()| self.map.check())
        {
            self.fail(&Concrete::Shutdown, &format!("before shutdown: {e}"));
        }
        self.step(&Concrete::Shutdown, &FaultPlan::default());
        let (slabs, regions) = self.map.counts();
        if !self.model.slabs().is_empty() || slabs != 0 {
            self.fail(&Concrete::Shutdown, "slabs remain after shutdown");
        }
        if regions != 0 || !self.model.regions().is_empty() {
            self.fail(&Concrete::Shutdown, "regions remain after shutdown");
        }
        for &tag in &self.model.registered {
            let ran = self.ran.get(tag as usize).copied().unwrap_or(0);
            if ran != 1 {
                self.fail(
                    &Concrete::Shutdown,
                    &format!("dealloc action {tag} ran {ran} times"),
                );
            }
        }
        drop(self.map);
        let late = take_log();
        assert!(late.is_empty(), "dropping the map ran actions {late:?}");
    }
}
