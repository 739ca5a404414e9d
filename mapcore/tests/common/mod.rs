//! Helpers shared by the contract tests: a per-thread fixture around [`RecordingHost`], actions
//! that log what ran (and fail on demand), actions that touch simulated memory, and state
//! snapshots for "nothing changed" checks.
//!
//! Actions are plain `fn`s, so they reach their environment through thread-locals. Every
//! action runs on the thread that called the map, and every test runs on its own thread, so
//! tests running in parallel never see each other's logs.

use std::cell::{Cell, RefCell};
use std::ops::Deref;
use std::sync::Arc;
use std::vec::Vec;

use mapcore::testing::{Call, Event, FakeError, RecordingHost};
use mapcore::{
    Action, ActionError, ActionPair, Error, Host, InitRequest, JitMap, Lifetime, PageRange, Prot,
    Segment, Storage,
};

/// The page size of most tests: 4 KiB natively; 256 bytes under miri, to keep the simulated
/// contents (and miri's time) small. The map is independent of the page size, and every test
/// expresses addresses and sizes in pages.
pub const P: usize = if cfg!(miri) { 256 } else { 4096 };
/// The page size of orc-rt's tests (its mock process reports 16 KiB pages).
pub const UPSTREAM_PAGE: usize = 16384;
/// The error type of the map over a recording host.
pub type E = Error<FakeError>;
/// A map over a borrowed recording host.
pub type Map<'h, S> = JitMap<&'h RecordingHost, S>;

/// Makes one test function per storage, `fixed::name` (the default fixed tables) and
/// `growable::name` (`Growable`), for generic test functions `fn name<S: Storage>()`.
/// `growable: #[attr];` first puts an attribute on the growable tests.
#[macro_export]
macro_rules! for_each_storage {
    (growable: #[$attr:meta]; $($name:ident),* $(,)?) => {
        mod fixed {
            $(#[test] fn $name() { super::$name::<mapcore::DefaultStorage>(); })*
        }
        mod growable {
            $(#[test] #[$attr] fn $name() { super::$name::<mapcore::Growable>(); })*
        }
    };
    ($($name:ident),* $(,)?) => {
        mod fixed {
            $(#[test] fn $name() { super::$name::<mapcore::DefaultStorage>(); })*
        }
        mod growable {
            $(#[test] fn $name() { super::$name::<mapcore::Growable>(); })*
        }
    };
}

/// One action run, as logged by the logging actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// The finalize action with this id ran.
    Fin(u32),
    /// The dealloc action with this id ran.
    Dealloc(u32),
}

thread_local! {
    static HOST: RefCell<Option<Arc<RecordingHost>>> = const { RefCell::new(None) };
    static ACTS: RefCell<Vec<Act>> = const { RefCell::new(Vec::new()) };
    static FAILING: RefCell<Vec<Act>> = const { RefCell::new(Vec::new()) };
    static CALLS_AT_FINALIZE: Cell<Option<u64>> = const { Cell::new(None) };
    static SENTINELS: RefCell<[u64; 4]> = const { RefCell::new([0; 4]) };
}

/// A recording host installed for the current thread's actions; uninstalled on drop.
///
/// Declare it before the map, so that the map (whose drop may run dealloc actions) is
/// dropped first.
#[derive(Debug)]
pub struct Fixture {
    host: Arc<RecordingHost>,
}

impl Fixture {
    /// A fresh host with pages of `page_size` bytes, and empty action logs.
    #[must_use]
    pub fn new(page_size: usize) -> Self {
        Self::with_host(RecordingHost::new(page_size))
    }

    /// Installs `host` for this thread's actions and clears the action logs.
    #[must_use]
    pub fn with_host(host: RecordingHost) -> Self {
        let host = Arc::new(host);
        HOST.with_borrow_mut(|h| *h = Some(Arc::clone(&host)));
        reset_actions();
        SENTINELS.with_borrow_mut(|s| *s = [0; 4]);
        Self { host }
    }
}

impl Deref for Fixture {
    type Target = RecordingHost;
    fn deref(&self) -> &RecordingHost {
        &self.host
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        HOST.with_borrow_mut(|h| *h = None);
        reset_actions();
    }
}

fn with_host<R>(f: impl FnOnce(&RecordingHost) -> R) -> R {
    HOST.with_borrow(|h| f(h.as_deref().expect("no Fixture installed on this thread")))
}

/// Clears the action log, the planned action failures and the finalize call mark.
pub fn reset_actions() {
    ACTS.with_borrow_mut(Vec::clear);
    FAILING.with_borrow_mut(Vec::clear);
    CALLS_AT_FINALIZE.set(None);
}

/// Takes the log of the logging actions run so far on this thread.
#[must_use]
pub fn take_acts() -> Vec<Act> {
    ACTS.with_borrow_mut(core::mem::take)
}

/// Forgets the action log so far.
pub fn clear_acts() {
    ACTS.with_borrow_mut(Vec::clear);
}

/// Makes the logging action `act` fail (with [`code`]) until [`reset_actions`].
pub fn fail_action(act: Act) {
    FAILING.with_borrow_mut(|f| f.push(act));
}

/// Stops every planned action failure.
pub fn clear_action_failures() {
    FAILING.with_borrow_mut(Vec::clear);
}

/// How many fallible host calls had been made when the last finalize action ran.
#[must_use]
pub fn calls_at_last_finalize() -> Option<u64> {
    CALLS_AT_FINALIZE.get()
}

/// The error code a failing logging action returns.
#[must_use]
pub fn code(act: Act) -> ActionError {
    ActionError::new(match act {
        Act::Fin(id) => 1000 + id as i32,
        Act::Dealloc(id) => 2000 + id as i32,
    })
}

fn arg(args: &[u8], i: usize) -> u64 {
    let bytes: [u8; 8] = args[i * 8..i * 8 + 8].try_into().expect("8-byte argument");
    u64::from_ne_bytes(bytes)
}

fn logged(act: Act) -> Result<(), ActionError> {
    ACTS.with_borrow_mut(|a| a.push(act));
    if matches!(act, Act::Fin(_)) {
        let calls = HOST.with_borrow(|h| h.as_ref().map(|h| h.fallible_calls()));
        CALLS_AT_FINALIZE.set(calls);
    }
    if FAILING.with_borrow(|f| f.contains(&act)) {
        Err(code(act))
    } else {
        Ok(())
    }
}

fn fin_fn(args: &[u8]) -> Result<(), ActionError> {
    logged(Act::Fin(arg(args, 0) as u32))
}

fn dealloc_fn(args: &[u8]) -> Result<(), ActionError> {
    logged(Act::Dealloc(arg(args, 0) as u32))
}

/// A finalize action that logs `Act::Fin(id)`.
#[must_use]
pub fn fin(id: u32) -> Action {
    Action::with_u64(fin_fn, u64::from(id))
}

/// A dealloc action that logs `Act::Dealloc(id)`.
#[must_use]
pub fn dealloc(id: u32) -> Action {
    Action::with_u64(dealloc_fn, u64::from(id))
}

/// The pair `(fin(id), dealloc(id))`.
#[must_use]
pub fn pair(id: u32) -> ActionPair {
    ActionPair::new(fin(id), dealloc(id))
}

/// A pair with the given halves (by id), either possibly absent.
#[must_use]
pub fn pair_of(f: Option<u32>, d: Option<u32>) -> ActionPair {
    ActionPair {
        finalize: f.map(fin),
        dealloc: d.map(dealloc),
    }
}

/// The action log of a successful initialize of `pairs`: every finalize action in order.
#[must_use]
pub fn fins_of(pairs: &[ActionPair]) -> Vec<Act> {
    pairs
        .iter()
        .filter_map(|p| {
            p.finalize
                .as_ref()
                .map(|a| Act::Fin(arg(a.args(), 0) as u32))
        })
        .collect()
}

/// The dealloc actions of `pairs` newest first, as deinitialize runs them.
#[must_use]
pub fn deallocs_of(pairs: &[ActionPair]) -> Vec<Act> {
    pairs
        .iter()
        .rev()
        .filter_map(|p| {
            p.dealloc
                .as_ref()
                .map(|a| Act::Dealloc(arg(a.args(), 0) as u32))
        })
        .collect()
}

fn mem_write(args: &[u8]) -> Result<(), ActionError> {
    let (addr, value) = (arg(args, 0) as usize, arg(args, 1));
    with_host(|h| h.poke(addr, &value.to_ne_bytes()));
    Ok(())
}

fn mem_read(args: &[u8]) -> Result<(), ActionError> {
    let (slot, src) = (arg(args, 0) as usize, arg(args, 1) as usize);
    let value = with_host(|h| h.read_u64(src));
    SENTINELS.with_borrow_mut(|s| s[slot] = value);
    Ok(())
}

fn two_words(a: u64, b: u64) -> [u8; 16] {
    let mut bytes = [0; 16];
    bytes[..8].copy_from_slice(&a.to_ne_bytes());
    bytes[8..].copy_from_slice(&b.to_ne_bytes());
    bytes
}

/// orc-rt's `write(P, V)`: stores the u64 `value` at `addr`, as JIT'd code would (the page must
/// be writable).
#[must_use]
pub fn write_action(addr: usize, value: u64) -> Action {
    Action::new(mem_write, &two_words(addr as u64, value)).expect("16 argument bytes fit")
}

/// orc-rt's `read(Dst, Src)`: copies the u64 at `src` into sentinel `slot` (0..4).
#[must_use]
pub fn read_action(slot: usize, src: usize) -> Action {
    Action::new(mem_read, &two_words(slot as u64, src as u64)).expect("16 argument bytes fit")
}

/// Sets sentinel `slot`.
pub fn set_sentinel(slot: usize, value: u64) {
    SENTINELS.with_borrow_mut(|s| s[slot] = value);
}

/// The value of sentinel `slot`.
#[must_use]
pub fn sentinel(slot: usize) -> u64 {
    SENTINELS.with_borrow(|s| s[slot])
}

/// A Finalize-lifetime segment with copied content.
#[must_use]
pub fn fin_seg(prot: Prot, addr: usize, size: usize, content: &[u8]) -> Segment<'_> {
    Segment::with_lifetime(prot, Lifetime::Finalize, addr, size, content)
}

/// `len` bytes of a pattern that never contains zero, varied by `seed`.
#[must_use]
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
        .collect()
}

/// A logged call that succeeded.
#[must_use]
pub const fn ok(call: Call) -> Event {
    Event { call, ok: true }
}

/// A logged call that failed.
#[must_use]
pub const fn failed(call: Call) -> Event {
    Event { call, ok: false }
}

/// The fallible calls of a log, in order.
#[must_use]
pub fn fallible(log: &[Event]) -> Vec<Event> {
    log.iter()
        .copied()
        .filter(|e| e.call.op().is_some())
        .collect()
}

/// A page range from `start` to `end`.
#[must_use]
pub fn pages(start: usize, end: usize, page_size: usize) -> PageRange {
    PageRange::new(start, end, page_size).expect("aligned range")
}

/// The pages a segment covers (empty for a zero-size segment).
#[must_use]
pub fn seg_pages(seg: &Segment<'_>, page_size: usize) -> PageRange {
    PageRange::covering(seg.addr, seg.size, page_size).expect("valid segment")
}

/// How many bytes of each page the content checks read: every byte natively, the first
/// 64 bytes under miri (where byte-wise reads of simulated memory are slow).
fn sample(page_size: usize) -> usize {
    if cfg!(miri) {
        64
    } else {
        page_size
    }
}

/// Asserts every page of `range` is read-write and reads as zero (sampled under miri).
#[track_caller]
pub fn assert_free(host: &RecordingHost, range: PageRange) {
    let page_size = host.page_size();
    for page in (range.start()..range.end()).step_by(page_size) {
        assert_eq!(
            host.prot_at(page),
            Some(Prot::READ_WRITE),
            "page {page:#x} is not free"
        );
        let bytes = host.read(page, sample(page_size));
        assert!(
            bytes.iter().all(|b| *b == 0),
            "free page {page:#x} holds stale bytes"
        );
    }
}

/// Asserts that a live segment holds its content followed by zeros to the end of its last
/// page, and has its protection on every page.
#[track_caller]
pub fn assert_segment(host: &RecordingHost, seg: &Segment<'_>, content: &[u8]) {
    let page_size = host.page_size();
    let range = seg_pages(seg, page_size);
    assert_eq!(
        host.read(seg.addr, content.len()),
        content,
        "content of segment at {:#x}",
        seg.addr
    );
    let mut from = seg.addr + content.len();
    while from < range.end() {
        let page_end = (from / page_size + 1) * page_size;
        let len = (page_end - from).min(sample(page_size));
        assert!(
            host.read(from, len).iter().all(|b| *b == 0),
            "tail of segment at {:#x} not zero",
            seg.addr
        );
        from = page_end;
    }
    for page in (range.start()..range.end()).step_by(page_size) {
        assert_eq!(
            host.prot_at(page),
            Some(seg.group.prot),
            "protection of page {page:#x}"
        );
    }
}

/// What "state unchanged" compares: slabs, regions, and the protection of every page the host
/// holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    slabs: usize,
    regions: usize,
    reservations: Vec<(usize, usize)>,
    prots: Vec<Option<Prot>>,
}

/// Takes a [`Snapshot`] and clears the host's log, so that [`assert_unchanged`] can check that
/// nothing was called.
#[must_use]
pub fn snapshot<H: Host, S: Storage>(host: &RecordingHost, map: &JitMap<H, S>) -> Snapshot {
    let reservations = host.reservations();
    let prots = reservations
        .iter()
        .flat_map(|&(base, size)| (base..base + size).step_by(host.page_size()))
        .map(|page| host.prot_at(page))
        .collect();
    host.clear_log();
    Snapshot {
        slabs: map.slab_count(),
        regions: map.region_count(),
        reservations,
        prots,
    }
}

/// Asserts that nothing happened since `before`: no host call at all (not even a write), the
/// same slabs, regions and page protections, and a map that agrees with the memory.
#[track_caller]
pub fn assert_unchanged<H: Host, S: Storage>(
    host: &RecordingHost,
    map: &JitMap<H, S>,
    before: &Snapshot,
) {
    assert_eq!(host.log(), [], "host calls were made");
    assert_eq!(&snapshot(host, map), before, "state changed");
    host.check_map(map).unwrap();
}

/// Shorthand for an initialize request.
#[must_use]
pub fn req<'a>(segments: &'a [Segment<'a>], actions: &'a [ActionPair]) -> InitRequest<'a> {
    InitRequest::new(segments, actions)
}

/// An injected ENOMEM.
pub const ENOMEM: FakeError = FakeError::ENOMEM;
/// An injected EACCES.
pub const EACCES: FakeError = FakeError::EACCES;
