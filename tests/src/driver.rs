//! The driver: runs an operation list on a real [`JitMap`] over the [`RecordingHost`] and on
//! the [`Model`], and after every operation compares everything observable:
//!
//! - the result (Ok value or exact error) and, for batches, every per-entry report;
//! - the host's fallible calls, in order, with their ranges, protections and outcomes;
//! - that writes and zero-fills touch only pages the operation owns, and that content is
//!   written before any protect;
//! - the action log (each action once, in the right order);
//! - every page's protection, the host's reservations, zero reads of freed pages (when
//!   discarding), the content of a new region;
//! - [`RecordingHost::check_map`] and the map's counts.
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
    pattern, CallM, ExpCall, FaultPlan, InitM, MErr, Model, ModelConfig, PageState, Quirks,
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
            mapcore::Limit::ActionArgs => "CapacityExceeded(ActionArgs)",
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
        } => Error::Host {
            op,
            segment,
            error: errno(&error),
            quarantined,
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

/// The quirks the fuzz targets use: [`Quirks::KNOWN`], or [`Quirks::STRICT`] (but for the
/// filter of [`Quirks::batch_merges_across_slabs`]) when the environment variable
/// `MAPCORE_FUZZ_STRICT` is set.
#[must_use]
pub fn fuzz_quirks() -> Quirks {
    static STRICT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *STRICT.get_or_init(|| std::env::var_os("MAPCORE_FUZZ_STRICT").is_some()) {
        // Still skip the batches that make the recording host panic (a found, open bug), so
        // that strict runs look for something new.
        Quirks {
            batch_merges_across_slabs: true,
            ..Quirks::STRICT
        }
    } else {
        Quirks::KNOWN
    }
}

/// Whether `MAPCORE_TRACE` is set: the driver then prints every operation as it runs it.
fn trace() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("MAPCORE_TRACE").is_some())
}

/// Replays an input's operations with [`fuzz_quirks`]; panics on any disagreement.
pub fn run_core(setup: &Setup, ops: &[Op]) {
    run(setup, ops, fuzz_quirks(), None);
}

/// Replays operations on the recording host with the given quirks, counting outcomes into
/// `tally`; panics on any disagreement.
pub fn run(setup: &Setup, ops: &[Op], quirks: Quirks, tally: Option<&mut Tally>) {
    let page = setup.page_size();
    let capabilities = Capabilities {
        discard: setup.host_discards(),
        reuse_executable: setup.reuse_exec(),
    };
    let host = RecordingHost::with_capabilities(page, capabilities);
    let probe = Recording(&host);
    if setup.growable() {
        let (config, model) = configs(setup, page, capabilities, (None, None, None));
        let map: JitMap<&RecordingHost, Growable> = JitMap::with_config(&host, config);
        drive(map, probe, Model::new(model, quirks), ops, tally);
    } else {
        let (config, model) = configs(setup, page, capabilities, (Some(4), Some(6), Some(12)));
        let map: JitMap<&RecordingHost, SmallStorage> = JitMap::with_config(&host, config);
        drive(map, probe, Model::new(model, quirks), ops, tally);
    }
}

/// What the driver needs from a host beyond the map's API: fault injection, a way to write
/// in place and read back, and the host-specific checks.
pub trait Probe<H: Host> {
    /// The errno value of a host error.
    fn errno(&self, e: &H::Error) -> i32;
    /// Whether the host injects faults; the model is told no fault otherwise.
    fn injects_faults(&self) -> bool;
    /// Arms the faults for the next operation and clears the call log.
    fn arm(&self, faults: &FaultPlan);
    /// Disarms every fault.
    fn disarm(&self);
    /// The base the host will return for `reserve(size)`, or `None` to take the map's answer.
    fn predict_base(&self, model: &Model, size: usize) -> Option<usize>;
    /// Writes `bytes` at `addr` (free, read-write pages), as a caller writing in place.
    fn poke(&self, addr: usize, bytes: &[u8]);
    /// Reads `len` bytes at `addr`, whatever the protection.
    fn read(&self, addr: usize, len: usize) -> Vec<u8>;
    /// Checks the host after an operation against the model: calls, writes, protections,
    /// reservations, freed pages, the map's own consistency.
    ///
    /// # Errors
    ///
    /// What disagrees.
    fn check<S: Storage>(
        &self,
        map: &JitMap<H, S>,
        model: &Model,
        released: &[(usize, usize)],
    ) -> Result<(), String>;
}

/// The recording host as a [`Probe`].
#[derive(Debug, Clone, Copy)]
pub struct Recording<'h>(pub &'h RecordingHost);

impl Probe<&RecordingHost> for Recording<'_> {
    fn errno(&self, e: &FakeError) -> i32 {
        e.errno
    }

    fn injects_faults(&self) -> bool {
        true
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
        self.0.poke(addr, bytes);
    }

    fn read(&self, addr: usize, len: usize) -> Vec<u8> {
        self.0.read(addr, len)
    }

    fn check<S: Storage>(
        &self,
        map: &JitMap<&RecordingHost, S>,
        model: &Model,
        _released: &[(usize, usize)],
    ) -> Result<(), String> {
        let host = self.0;
        let page = model.cfg.page_size;
        let log: Vec<Event> = host.log();
        // Fallible calls.
        let calls: Vec<CallM> = log
            .iter()
            .filter_map(|e| {
                let call = match e.call {
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
                    Call::Write { .. } | Call::FillZero { .. } => return None,
                };
                Some(CallM { call, ok: e.ok })
            })
            .collect();
        if calls != model.calls {
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
                Call::FillZero { addr, len } => (addr, len, false),
                _ => continue,
            };
            if len > 0 {
                let inside = (addr & !(page - 1)..addr + len)
                    .step_by(page)
                    .all(|p| model.writable.contains(&p));
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
            if !is_write && model.cfg.discarding() && len > 0 && !after_failed_discard {
                return Err(format!("{:x?} of pages known to be zero", e.call));
            }
        }
        // Reservations and protections.
        let held = host.reservations();
        let want: Vec<(usize, usize)> = model.slabs().iter().map(|(b, s)| (*b, s.size)).collect();
        if held != want {
            return Err(format!(
                "host reservations {held:x?}, model slabs {want:x?}"
            ));
        }
        for (&addr, state) in model.pages() {
            if let Some(prot) = state.expected_prot() {
                let got = host.prot_at(addr);
                if got != Some(prot) {
                    return Err(format!(
                        "page {addr:#x} ({state:?}) has protection {got:?}, expected {prot}"
                    ));
                }
            }
        }
        // Freed pages read zero when the map discards. Content always starts at a page start
        // and its bytes are never zero, so a page holding old content has a non-zero first
        // byte; the last byte catches a page that was never reset. `check_map` scans the rest.
        for &addr in &model.touched {
            if model.page_state(addr) == Some(PageState::Free { stale: false })
                && (host.read(addr, 1)[0] != 0 || host.read(addr + page - 1, 1)[0] != 0)
            {
                return Err(format!("free page {addr:#x} holds stale bytes"));
            }
        }
        host.check_map(map).map_err(|e| format!("check_map: {e}"))
    }
}

/// Runs `ops` on `map` and `model` through `probe`, then tears down; panics on any
/// disagreement.
pub fn drive<H: Host, S: Storage, P: Probe<H>>(
    map: JitMap<H, S>,
    probe: P,
    model: Model,
    ops: &[Op],
    tally: Option<&mut Tally>,
) {
    let _ = take_log();
    let mut driver = Driver {
        map,
        probe,
        model,
        tags: Tags::default(),
        ran: BTreeMap::new(),
        tally,
        step: 0,
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

struct Driver<'t, H: Host, S: Storage, P: Probe<H>> {
    map: JitMap<H, S>,
    probe: P,
    model: Model,
    tags: Tags,
    /// How often each action tag ran, over the whole run.
    ran: BTreeMap<u32, usize>,
    tally: Option<&'t mut Tally>,
    step: usize,
}

impl<H: Host, S: Storage, P: Probe<H>> Driver<'_, H, S, P> {
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
        if let Concrete::DeinitializeMultiple(keys) = op {
            // TODO(bug): see `Quirks::batch_merges_across_slabs`; such a batch makes the map
            // call the host across two reservations, which the recording host refuses.
            if self.model.quirks.batch_merges_across_slabs
                && self.model.batch_touches_across_slabs(keys)
            {
                if let Some(t) = self.tally.as_deref_mut() {
                    *t.entry("deinitialize_multiple:skipped(bug: merges across slabs)".into())
                        .or_default() += 1;
                }
                return;
            }
        }
        let _ = take_log();
        let slabs_before: Vec<(usize, usize)> = self
            .model
            .slabs()
            .iter()
            .map(|(b, s)| (*b, s.size))
            .collect();
        self.probe.arm(faults);
        self.model.begin(faults);
        let mut reports: Vec<(usize, MErr)> = Vec::new();
        let mut new_key = None;
        let probe = &self.probe;
        let errno = |e: &H::Error| probe.errno(e);
        let (actual, predicted): (Result<(), MErr>, Result<(), MErr>) = match op {
            Concrete::Reserve(size) => {
                let actual = self.map.reserve(*size).map_err(|e| to_model(e, errno));
                let guess = self.probe.predict_base(&self.model, *size);
                let taken = *actual.as_ref().unwrap_or(&0);
                let predicted = self.model.reserve(*size, |_| guess.unwrap_or(taken));
                self.same(op, &actual, &predicted);
                (actual.map(|_| ()), predicted.map(|_| ()))
            }
            Concrete::Initialize(req) => {
                let pokes = in_place_writes(req, &self.model);
                for &(addr, len, seed) in &pokes {
                    let bytes: Vec<u8> = (0..len).map(|i| pattern(seed, i)).collect();
                    self.probe.poke(addr, &bytes);
                }
                let bufs = contents(req);
                let (segments, pairs) = build_request(req, &bufs);
                let actual = self
                    .map
                    .initialize(&InitRequest::new(&segments, &pairs))
                    .map_err(|e| to_model(e, errno));
                let predicted = self.model.initialize(req);
                let accepted = match (&actual, &predicted) {
                    (Err(a), Err(_)) => self.model.alternatives.contains(a),
                    _ => false,
                };
                if !accepted {
                    self.same(op, &actual, &predicted);
                }
                if let Err(e) = &predicted {
                    // (Only needed where free pages must read zero.)
                    if is_validation(e) && self.model.cfg.discarding() {
                        // The caller cleans up what it wrote in place for a rejected request.
                        for &(addr, len, _) in &pokes {
                            self.probe.poke(addr, &vec![0; len]);
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
                let actual = self.map.deinitialize(*key).map_err(|e| to_model(e, errno));
                (actual, self.model.deinitialize(*key))
            }
            Concrete::DeinitializeMultiple(keys) => {
                let actual = self
                    .map
                    .deinitialize_multiple(keys, |i, e| reports.push((i, to_model(e, errno))))
                    .map_err(|e| to_model(e, errno));
                (actual, self.model.deinitialize_multiple(keys))
            }
            Concrete::Release(base) => {
                let actual = self.map.release(*base).map_err(|e| to_model(e, errno));
                (actual, self.model.release(*base))
            }
            Concrete::ReleaseMultiple(bases) => {
                let actual = self
                    .map
                    .release_multiple(bases, |i, e| reports.push((i, to_model(e, errno))))
                    .map_err(|e| to_model(e, errno));
                (actual, self.model.release_multiple(bases))
            }
            Concrete::Shutdown => {
                let actual = self.map.shutdown().map_err(|e| to_model(e, errno));
                (actual, self.model.shutdown())
            }
        };
        self.probe.disarm();
        if trace() {
            eprintln!("  -> {actual:x?} (model {predicted:x?}) reports {reports:x?}");
        }
        self.same(op, &actual, &predicted);
        self.count(op.name(), &actual);
        self.check_reports(op, reports);
        let released: Vec<(usize, usize)> = slabs_before
            .into_iter()
            .filter(|(b, _)| !self.model.slabs().contains_key(b))
            .collect();
        self.check_after(op, new_key, &released);
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

    fn check_after(&mut self, op: &Concrete, new_key: Option<usize>, released: &[(usize, usize)]) {
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
        for tag in actions {
            *self.ran.entry(tag).or_default() += 1;
            if self.ran[&tag] > 1 {
                self.fail(op, &format!("action {tag} ran twice"));
            }
        }
        if let Err(e) = self.probe.check(&self.map, &self.model, released) {
            self.fail(op, &e);
        }
        if let Some(key) = new_key {
            self.check_content(op, key);
        }
        let counts = (self.map.slab_count(), self.map.region_count());
        let want = (self.model.slabs().len(), self.model.regions().len());
        if counts != want {
            self.fail(
                op,
                &format!("map counts (slabs, regions) {counts:?}, model {want:?}"),
            );
        }
    }

    fn check_content(&self, op: &Concrete, key: usize) {
        let Some(region) = self.model.regions().get(&key) else {
            return;
        };
        for f in &region.fills {
            // The edges of the content and of the segment, and a sample between them (byte by
            // byte reads of the recording host dominate the run time otherwise).
            let total = f.end - f.addr;
            let edges = [0, f.len.wrapping_sub(1), f.len, f.len + 1, total - 1];
            let offsets = edges
                .into_iter()
                .chain((0..total).step_by(97))
                .filter(|&i| i < total);
            for i in offsets {
                let b = self.probe.read(f.addr + i, 1)[0];
                let want = if i < f.len { pattern(f.seed, i) } else { 0 };
                if b != want {
                    self.fail(
                        op,
                        &format!(
                            "region {key:#x}: byte {:#x} is {b:#x}, expected {want:#x}",
                            f.addr + i
                        ),
                    );
                }
            }
        }
    }

    fn teardown(mut self) {
        let keys: Vec<usize> = self.model.regions().keys().copied().collect();
        for key in keys {
            self.check_content(&Concrete::Shutdown, key);
        }
        self.step(&Concrete::Shutdown, &FaultPlan::default());
        if !self.model.slabs().is_empty() || self.map.slab_count() != 0 {
            self.fail(&Concrete::Shutdown, "slabs remain after shutdown");
        }
        if self.map.region_count() != 0 || !self.model.regions().is_empty() {
            self.fail(&Concrete::Shutdown, "regions remain after shutdown");
        }
        for tag in &self.model.registered {
            if self.ran.get(tag) != Some(&1) {
                self.fail(
                    &Concrete::Shutdown,
                    &format!("dealloc action {tag} ran {:?} times", self.ran.get(tag)),
                );
            }
        }
        drop(self.map);
        let late = take_log();
        assert!(late.is_empty(), "dropping the map ran actions {late:?}");
    }
}
