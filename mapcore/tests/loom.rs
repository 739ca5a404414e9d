//! loom models of the map's claim / commit protocol (catalogue rows E3-E5).
//!
//! Built only with `--cfg loom`, where the map's lock is loom's mutex:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p mapcore --features testing --test loom --release
//! ```
//!
//! loom runs each model once per interleaving of the threads' lock steps (claim, commit,
//! retire, forget, begin and finish release) and of their host calls: the host wrapper below
//! makes every host call a scheduling point too, so that a thread can be preempted between
//! writing one page and protecting the next. The recording host underneath panics on any call
//! on unreserved memory and any write to a page that is not read-write; each model then checks
//! the outcome against the sequential orders and the host's memory with `check_map`.
//!
//! The models are small enough to explore exhaustively: no preemption bound, about 36,000
//! executions in all (most of them model d), 2-3 s. `LOOM_MAX_PREEMPTIONS=3` cuts that to
//! about 1,300 for a quick run.
//!
//! The recording host's `std::sync::Mutex` is never held across a loom operation: it is taken
//! and dropped inside each host call, after the wrapper's scheduling point, and inside
//! `check_map` only after the map's (loom) lock is taken.
#![cfg(loom)]
#![expect(
    unsafe_code,
    reason = "the host wrapper forwards the host's unsafe fns"
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::vec::Vec;

use loom::sync::atomic::AtomicUsize as LoomCounter;
use loom::sync::Arc;
use loom::thread;

use mapcore::testing::{Call, Event, FakeError, RecordingHost};
use mapcore::{
    Action, ActionError, ActionPair, Capabilities, Error, Fixed, Host, InitRequest, JitMap,
    PageRange, Prot, Segment,
};

const P: usize = 4096;

/// Small tables: the models use at most one slab and three regions.
type Tables = Fixed<2, 4, 8>;
type Map = JitMap<Yielding, Tables>;
type E = Error<FakeError>;

/// A recording host whose every call is a loom scheduling point.
#[derive(Debug)]
struct Yielding {
    rec: RecordingHost,
    calls: LoomCounter,
}

impl Yielding {
    fn new() -> Self {
        Self {
            rec: RecordingHost::new(P),
            calls: LoomCounter::new(0),
        }
    }

    /// A loom operation: the scheduler may switch threads here.
    fn point(&self) {
        self.calls
            .fetch_add(1, loom::sync::atomic::Ordering::SeqCst);
    }
}

// SAFETY: forwards every call to the recording host, which upholds the trait's promises; the
// scheduling point before each call changes nothing in memory.
unsafe impl Host for Yielding {
    type Error = FakeError;

    fn page_size(&self) -> usize {
        self.rec.page_size()
    }

    fn capabilities(&self) -> Capabilities {
        self.rec.capabilities()
    }

    fn reserve(&self, size: usize) -> Result<usize, FakeError> {
        self.point();
        self.rec.reserve(size)
    }

    unsafe fn release(&self, base: usize, size: usize) -> Result<(), FakeError> {
        self.point();
        // SAFETY: the map's contract for `release`, forwarded unchanged.
        unsafe { self.rec.release(base, size) }
    }

    unsafe fn protect(&self, range: PageRange, prot: Prot) -> Result<(), FakeError> {
        self.point();
        // SAFETY: the map's contract for `protect`, forwarded unchanged.
        unsafe { self.rec.protect(range, prot) }
    }

    unsafe fn discard(&self, range: PageRange) -> Result<(), FakeError> {
        self.point();
        // SAFETY: the map's contract for `discard`, forwarded unchanged.
        unsafe { self.rec.discard(range) }
    }

    unsafe fn write(&self, addr: usize, bytes: &[u8]) {
        self.point();
        // SAFETY: the map's contract for `write`, forwarded unchanged.
        unsafe { self.rec.write(addr, bytes) }
    }

    unsafe fn fill_zero(&self, addr: usize, len: usize) {
        self.point();
        // SAFETY: the map's contract for `fill_zero`, forwarded unchanged.
        unsafe { self.rec.fill_zero(addr, len) }
    }

    unsafe fn fill_trap(&self, addr: usize, len: usize) {
        self.point();
        // SAFETY: the map's contract for `fill_trap`, forwarded unchanged.
        unsafe { self.rec.fill_trap(addr, len) }
    }

    unsafe fn flush_icache(&self, range: PageRange) -> Result<(), FakeError> {
        self.point();
        // SAFETY: the map's contract for `flush_icache`, forwarded unchanged.
        unsafe { self.rec.flush_icache(range) }
    }
}

/// Runs `model` under loom, every interleaving unless `LOOM_MAX_PREEMPTIONS` bounds them, and
/// reports how many it explored.
fn explore(name: &str, executions: &'static AtomicUsize, model: impl Fn() + Sync + Send + 'static) {
    let builder = loom::model::Builder::new();
    executions.store(0, Ordering::SeqCst);
    builder.check(move || {
        executions.fetch_add(1, Ordering::SeqCst);
        model();
    });
    let n = executions.load(Ordering::SeqCst);
    println!(
        "loom model {name}: {n} executions (preemption bound {:?})",
        builder.preemption_bound
    );
    assert!(n > 1, "the model explored no interleaving");
}

fn new_map() -> Arc<Map> {
    Arc::new(JitMap::new(Yielding::new()))
}

/// The calls of the memory-changing kinds in a log, without reserve / release.
fn page_calls(log: &[Event]) -> Vec<Call> {
    log.iter()
        .map(|e| e.call)
        .filter(|c| !matches!(c, Call::Reserve { .. } | Call::Release { .. }))
        .collect()
}

/// The host calls `request` makes when it runs alone on a fresh map with one slab of `slab`
/// bytes (first-fit: the same base as the model's slab).
fn solo_calls(slab: usize, segments: &[Segment<'_>]) -> Vec<Call> {
    let map: JitMap<RecordingHost, Tables> = JitMap::new(RecordingHost::new(P));
    map.reserve(slab).unwrap();
    map.host().clear_log();
    map.initialize(&InitRequest::new(segments, &[])).unwrap();
    page_calls(&map.host().log())
}

fn nothing(_: &[u8]) -> Result<(), ActionError> {
    Ok(())
}

// ---- (a) two initializes of overlapping pages ----------------------------------------------

static A_RUNS: AtomicUsize = AtomicUsize::new(0);

/// E3: thread 1 asks for pages 0-1, thread 2 for pages 1-2. Exactly one wins; the loser gets
/// `Overlap` (or `KeyInUse`) and made no host call at all: the host saw exactly the calls the
/// winner makes alone, its content is in place, and the map agrees with the host.
#[test]
fn a_overlapping_initializes_have_one_winner() {
    explore("a_overlapping_initializes", &A_RUNS, || {
        let map = new_map();
        let base = map.reserve(4 * P).unwrap();
        map.host().rec.clear_log();
        let one = [0x11u8; 100];
        let two = [0x22u8; 100];
        let racers: Vec<_> = [(base, one), (base + P, two)]
            .into_iter()
            .map(|(addr, content)| {
                let map = map.clone();
                thread::spawn(move || {
                    let seg = [Segment::new(Prot::READ, addr, 2 * P, &content)];
                    map.initialize(&InitRequest::new(&seg, &[]))
                })
            })
            .collect();
        let results: Vec<Result<usize, E>> =
            racers.into_iter().map(|t| t.join().unwrap()).collect();
        let winners: Vec<usize> = results.iter().filter_map(|r| r.ok()).collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        for r in &results {
            if let Err(e) = r {
                assert!(
                    matches!(e, Error::Overlap { .. } | Error::KeyInUse { .. }),
                    "{e:?}"
                );
            }
        }
        let key = winners[0];
        let content = if key == base { one } else { two };
        let seg = [Segment::new(Prot::READ, key, 2 * P, &content)];
        assert_eq!(
            page_calls(&map.host().rec.log()),
            solo_calls(4 * P, &seg),
            "the loser touched memory"
        );
        assert_eq!(map.host().rec.read(key, 100), content);
        assert_eq!(map.region_count(), 1);
        map.host().rec.check_map(&*map).unwrap();
        map.deinitialize(key).unwrap();
        map.host().rec.check_map(&*map).unwrap();
    });
}

// ---- (b) two deinitializes of one key -------------------------------------------------------

static B_RUNS: AtomicUsize = AtomicUsize::new(0);
static B_DEALLOCS: AtomicUsize = AtomicUsize::new(0);

fn b_dealloc(_: &[u8]) -> Result<(), ActionError> {
    B_DEALLOCS.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// E4: two threads deinitialize the same key. One gets `Ok`, the other `UnknownKey` or
/// `Busy`; the dealloc action ran exactly once; the pages were reset once (one protect back
/// to read-write, one discard); the region is gone.
#[test]
fn b_racing_deinitializes_run_the_dealloc_once() {
    explore("b_racing_deinitializes", &B_RUNS, || {
        B_DEALLOCS.store(0, Ordering::SeqCst);
        let map = new_map();
        let base = map.reserve(2 * P).unwrap();
        let pair = [ActionPair::new(
            Action::new(nothing, &[]).unwrap(),
            Action::new(b_dealloc, &[]).unwrap(),
        )];
        let seg = [Segment::new(Prot::READ_EXEC, base, P, &[0xc3])];
        let key = map.initialize(&InitRequest::new(&seg, &pair)).unwrap();
        map.host().rec.clear_log();
        let racers: Vec<_> = (0..2)
            .map(|_| {
                let map = map.clone();
                thread::spawn(move || map.deinitialize(key))
            })
            .collect();
        let results: Vec<Result<(), E>> = racers.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "{results:?}"
        );
        for e in results.iter().filter_map(|r| r.as_ref().err()) {
            assert!(
                matches!(e, Error::UnknownKey { .. } | Error::Busy { .. }),
                "{e:?}"
            );
        }
        assert_eq!(B_DEALLOCS.load(Ordering::SeqCst), 1, "dealloc action runs");
        let range = PageRange::new(base, base + P, P).unwrap();
        assert_eq!(
            page_calls(&map.host().rec.log()),
            [
                Call::Protect {
                    range,
                    prot: Prot::READ_WRITE
                },
                Call::Discard { range },
            ]
        );
        assert_eq!(map.region_count(), 0);
        map.host().rec.check_map(&*map).unwrap();
    });
}

// ---- (c) release racing initialize in the same slab -----------------------------------------

static C_RUNS: AtomicUsize = AtomicUsize::new(0);

/// E5: release of a slab races an initialize inside it. The recording host panics if any
/// host call reaches unmapped memory (a write after the unmap); the outcome is one of the
/// sequential orders, or `Busy` for a release that met the initialize in progress (retried).
#[test]
fn c_release_racing_initialize() {
    explore("c_release_racing_initialize", &C_RUNS, || {
        let map = new_map();
        let base = map.reserve(4 * P).unwrap();
        let init = {
            let map = map.clone();
            thread::spawn(move || {
                let content = [0xabu8; 64];
                let seg = [Segment::new(Prot::READ, base + P, 2 * P, &content)];
                map.initialize(&InitRequest::new(&seg, &[]))
            })
        };
        let released = {
            let map = map.clone();
            thread::spawn(move || map.release(base))
        };
        let initialized = init.join().expect("initialize must not fault");
        let released = released.join().expect("release must not fault");
        match (initialized, released) {
            // Initialize first, then release took the region with it.
            (Ok(_), Ok(())) => {}
            // Release first: the slab was releasing, or gone.
            (Err(Error::Busy { .. } | Error::NotInSlab { .. }), Ok(())) => {}
            // Release met the initialize in progress and refused; retry now.
            (Ok(key), Err(Error::Busy { .. })) => {
                assert_eq!(map.host().rec.read(key, 64), [0xab; 64]);
                map.host().rec.check_map(&*map).unwrap();
                map.release(base).unwrap();
            }
            other => panic!("inconsistent outcome {other:?}"),
        }
        assert_eq!((map.slab_count(), map.region_count()), (0, 0));
        assert_eq!(map.host().rec.reservations(), []);
        map.host().rec.check_map(&*map).unwrap();
    });
}

// ---- (d) batch deinitialize racing an initialize of the pages between ----------------------

static D_RUNS: AtomicUsize = AtomicUsize::new(0);

/// A batch deinitializes regions at pages 0 and 2 while another thread initializes page 1,
/// between them. The batch merges the resets of touching pages only: whether the new region
/// was claimed before, during or after the batch, its page is never protected back or
/// discarded by the batch, and keeps its content and protection. Pages 0 and 2 end up free.
#[test]
fn d_batch_deinitialize_racing_adjacent_initialize() {
    explore(
        "d_batch_deinitialize_racing_adjacent_initialize",
        &D_RUNS,
        || {
            let map = new_map();
            let base = map.reserve(4 * P).unwrap();
            let mut keys = [0; 2];
            for (key, page) in keys.iter_mut().zip([0, 2]) {
                let seg = [Segment::new(Prot::READ, base + page * P, P, &[0x5a; 32])];
                *key = map.initialize(&InitRequest::new(&seg, &[])).unwrap();
            }
            map.host().rec.clear_log();
            let batch = {
                let map = map.clone();
                thread::spawn(move || map.deinitialize_multiple(&keys, |i, e| panic!("{i}: {e:?}")))
            };
            let init = {
                let map = map.clone();
                thread::spawn(move || {
                    let seg = [Segment::new(Prot::READ_EXEC, base + P, P, &[0xc3; 16])];
                    map.initialize(&InitRequest::new(&seg, &[]))
                })
            };
            assert_eq!(batch.join().unwrap(), Ok(()));
            let key = init.join().unwrap().expect("page 1 was free all along");
            assert_eq!(key, base + P);
            let middle = PageRange::new(base + P, base + 2 * P, P).unwrap();
            for call in page_calls(&map.host().rec.log()) {
                let touches_middle = match call {
                    Call::Protect { range, prot } => {
                        range.overlaps(&middle) && prot != Prot::READ_EXEC
                    }
                    Call::Discard { range } => range.overlaps(&middle),
                    Call::FillZero { addr, len } => {
                        addr < middle.end() && middle.start() < addr + len
                    }
                    _ => false,
                };
                assert!(
                    !touches_middle,
                    "the batch touched the new region: {call:?}"
                );
            }
            assert_eq!(map.host().rec.prot_at(base + P), Some(Prot::READ_EXEC));
            assert_eq!(map.host().rec.read(base + P, 16), [0xc3; 16]);
            for page in [0, 2] {
                assert_eq!(
                    map.host().rec.prot_at(base + page * P),
                    Some(Prot::READ_WRITE)
                );
                assert!(map
                    .host()
                    .rec
                    .read(base + page * P, P)
                    .iter()
                    .all(|b| *b == 0));
            }
            assert_eq!(map.region_count(), 1);
            map.host().rec.check_map(&*map).unwrap();
        },
    );
}

// ---- (e) initialize of pages being deinitialized --------------------------------------------

static E_RUNS: AtomicUsize = AtomicUsize::new(0);

/// A region at pages 0-1 is deinitialized while another thread initializes page 1. Until
/// deinitialize forgets the region its pages are taken (`Overlap`); once the new region gets
/// page 1, the old region's reset (protect back, discard) is over, so it cannot wipe the new
/// content or protection.
#[test]
fn e_initialize_racing_deinitialize_of_the_same_pages() {
    explore(
        "e_initialize_racing_deinitialize_of_the_same_pages",
        &E_RUNS,
        || {
            let map = new_map();
            let base = map.reserve(4 * P).unwrap();
            let seg = [Segment::new(Prot::READ, base, 2 * P, &[0x5a; 32])];
            let old = map.initialize(&InitRequest::new(&seg, &[])).unwrap();
            let deinit = {
                let map = map.clone();
                thread::spawn(move || map.deinitialize(old))
            };
            let init = {
                let map = map.clone();
                thread::spawn(move || {
                    let seg = [Segment::new(Prot::READ_EXEC, base + P, P, &[0xc3; 16])];
                    map.initialize(&InitRequest::new(&seg, &[]))
                })
            };
            assert_eq!(deinit.join().unwrap(), Ok(()));
            match init.join().unwrap() {
                Ok(key) => {
                    assert_eq!(key, base + P);
                    assert_eq!(map.host().rec.prot_at(key), Some(Prot::READ_EXEC));
                    assert_eq!(map.host().rec.read(key, 16), [0xc3; 16]);
                    assert_eq!(map.region_count(), 1);
                }
                Err(Error::Overlap { segment: 0 }) => assert_eq!(map.region_count(), 0),
                Err(e) => panic!("unexpected {e:?}"),
            }
            assert_eq!(map.host().rec.prot_at(base), Some(Prot::READ_WRITE));
            map.host().rec.check_map(&*map).unwrap();
        },
    );
}

// ---- (f) release racing deinitialize in the same slab ---------------------------------------

static F_RUNS: AtomicUsize = AtomicUsize::new(0);
static F_DEALLOCS: AtomicUsize = AtomicUsize::new(0);

fn f_dealloc(_: &[u8]) -> Result<(), ActionError> {
    F_DEALLOCS.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// E5 with deinitialize: a release of the slab races a deinitialize of its region. The region's
/// dealloc action runs exactly once, whoever takes it; a deinitialize that loses gets `Busy`
/// or `UnknownKey`, a release that meets the deinitialize in progress gets `Busy` (retried).
#[test]
fn f_release_racing_deinitialize() {
    explore("f_release_racing_deinitialize", &F_RUNS, || {
        F_DEALLOCS.store(0, Ordering::SeqCst);
        let map = new_map();
        let base = map.reserve(2 * P).unwrap();
        let pair = [ActionPair {
            finalize: None,
            dealloc: Some(Action::new(f_dealloc, &[]).unwrap()),
        }];
        let seg = [Segment::new(Prot::READ_EXEC, base, P, &[0xc3])];
        let key = map.initialize(&InitRequest::new(&seg, &pair)).unwrap();
        let deinit = {
            let map = map.clone();
            thread::spawn(move || map.deinitialize(key))
        };
        let released = {
            let map = map.clone();
            thread::spawn(move || map.release(base))
        };
        let deinit = deinit.join().unwrap();
        let released = released.join().unwrap();
        match (deinit, released) {
            (Ok(()), Ok(())) => {}
            (
                Err(Error::Busy { .. } | Error::UnknownKey { .. } | Error::NotInAnySlab { .. }),
                Ok(()),
            ) => {}
            (Ok(()), Err(Error::Busy { .. })) => map.release(base).unwrap(),
            other => panic!("inconsistent outcome {other:?}"),
        }
        assert_eq!(F_DEALLOCS.load(Ordering::SeqCst), 1, "dealloc action runs");
        assert_eq!((map.slab_count(), map.region_count()), (0, 0));
        assert_eq!(map.host().rec.reservations(), []);
        map.host().rec.check_map(&*map).unwrap();
    });
}

// ---- (g) two releases of one slab -----------------------------------------------------------

static G_RUNS: AtomicUsize = AtomicUsize::new(0);
static G_DEALLOCS: AtomicUsize = AtomicUsize::new(0);

fn g_dealloc(_: &[u8]) -> Result<(), ActionError> {
    G_DEALLOCS.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// Two threads release the same slab, which holds a region with a dealloc action. One
/// release does it all; the other gets `Busy` (the first is running) or `NotInAnySlab` (it
/// is done). The host unmaps once and the dealloc action runs once.
#[test]
fn g_racing_releases() {
    explore("g_racing_releases", &G_RUNS, || {
        G_DEALLOCS.store(0, Ordering::SeqCst);
        let map = new_map();
        let base = map.reserve(2 * P).unwrap();
        let pair = [ActionPair {
            finalize: None,
            dealloc: Some(Action::new(g_dealloc, &[]).unwrap()),
        }];
        let seg = [Segment::new(Prot::READ, base, P, &[1])];
        map.initialize(&InitRequest::new(&seg, &pair)).unwrap();
        map.host().rec.clear_log();
        let racers: Vec<_> = (0..2)
            .map(|_| {
                let map = map.clone();
                thread::spawn(move || map.release(base))
            })
            .collect();
        let results: Vec<Result<(), E>> = racers.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "{results:?}"
        );
        for e in results.iter().filter_map(|r| r.as_ref().err()) {
            assert!(
                matches!(e, Error::Busy { .. } | Error::NotInAnySlab { .. }),
                "{e:?}"
            );
        }
        assert_eq!(G_DEALLOCS.load(Ordering::SeqCst), 1, "dealloc action runs");
        let unmaps = map
            .host()
            .rec
            .log()
            .iter()
            .filter(|e| matches!(e.call, Call::Release { .. }))
            .count();
        assert_eq!(unmaps, 1);
        assert_eq!((map.slab_count(), map.region_count()), (0, 0));
        map.host().rec.check_map(&*map).unwrap();
    });
}
