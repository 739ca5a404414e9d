//! Catalogue row C8: actions that call back into the map do not deadlock (the lock is never
//! held while an action runs), and what they see is consistent: their own region is busy,
//! other pages and slabs work normally.
//!
//! The actions reach the map through a `static`. Every scenario runs in a thread with a
//! watchdog: a deadlock fails the test by timeout instead of hanging it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use mapcore::testing::{FakeError, RecordingHost};
use mapcore::{
    Action, ActionError, ActionPair, Error, Growable, InitRequest, JitMap, Prot, Segment,
};

const P: usize = 4096;

static MAP: LazyLock<JitMap<RecordingHost, Growable>> =
    LazyLock::new(|| JitMap::new(RecordingHost::new(P)));
/// One observation of a re-entrant action: what it did and what the map answered.
type Seen = (&'static str, Result<usize, Error<FakeError>>);

/// What the re-entrant actions observed, in order.
static SEEN: Mutex<Vec<Seen>> = Mutex::new(Vec::new());
/// The key of the region a finalize action created, for its dealloc action.
static NESTED: AtomicUsize = AtomicUsize::new(0);
/// The slab the test works in.
static SLAB: AtomicUsize = AtomicUsize::new(0);

fn see(what: &'static str, result: Result<usize, Error<FakeError>>) {
    SEEN.lock().unwrap().push((what, result));
}

fn base_of(args: &[u8]) -> usize {
    u64::from_ne_bytes(args.try_into().expect("8-byte argument")) as usize
}

/// Finalize action of the region at `base`: uses the map in every way while its own
/// region is being initialized.
fn reentrant_finalize(args: &[u8]) -> Result<(), ActionError> {
    let base = base_of(args);
    let other = MAP.reserve(2 * P);
    see("reserve", other);
    see(
        "release other slab",
        other.and_then(|o| MAP.release(o).map(|()| o)),
    );
    let nested = [Segment::new(Prot::READ_WRITE, base + 4 * P, P, &[])];
    let key = MAP.initialize(&InitRequest::new(&nested, &[]));
    NESTED.store(*key.as_ref().unwrap_or(&0), Ordering::SeqCst);
    see("initialize other pages", key);
    let own = [Segment::new(Prot::READ, base, P, &[])];
    see(
        "initialize own pages",
        MAP.initialize(&InitRequest::new(&own, &[])),
    );
    see(
        "deinitialize own key",
        MAP.deinitialize(base).map(|()| base),
    );
    see(
        "deinitialize own interior",
        MAP.deinitialize(base + P).map(|()| base),
    );
    see("release own slab", MAP.release(base).map(|()| base));
    Ok(())
}

/// Dealloc action of the region at `base`: deinitializes the region its finalize action
/// created, and finds its own region and its slab busy.
fn reentrant_dealloc(args: &[u8]) -> Result<(), ActionError> {
    let base = base_of(args);
    let nested = NESTED.load(Ordering::SeqCst);
    see(
        "deinitialize nested",
        MAP.deinitialize(nested).map(|()| nested),
    );
    see(
        "deinitialize own key again",
        MAP.deinitialize(base).map(|()| base),
    );
    let slab = SLAB.load(Ordering::SeqCst);
    see(
        "release own slab while retiring",
        MAP.release(slab).map(|()| slab),
    );
    Ok(())
}

/// Runs `f` in a thread and waits for it with a timeout.
fn with_watchdog<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(f()).unwrap());
    // Generous: miri is slow. A deadlock never answers.
    rx.recv_timeout(Duration::from_secs(120))
        .expect("deadlock: the map did not return")
}

fn take_seen() -> Vec<Seen> {
    std::mem::take(&mut *SEEN.lock().unwrap())
}

#[test]
fn c8_actions_may_call_back_into_the_map() {
    let base = with_watchdog(|| MAP.reserve(8 * P).unwrap());
    SLAB.store(base, Ordering::SeqCst);
    let seg_base = base;
    let results = with_watchdog(move || {
        let segs = [Segment::new(Prot::READ_EXEC, seg_base, 2 * P, &[])];
        let pairs = [ActionPair::new(
            Action::with_u64(reentrant_finalize, seg_base as u64),
            Action::with_u64(reentrant_dealloc, seg_base as u64),
        )];
        let key = MAP.initialize(&InitRequest::new(&segs, &pairs));
        let during_init = take_seen();
        let deinit = MAP.deinitialize(seg_base);
        let during_deinit = take_seen();
        (key, during_init, deinit, during_deinit)
    });
    let (key, during_init, deinit, during_deinit) = results;
    assert_eq!(key, Ok(base));
    let other = base + 8 * P;
    assert_eq!(
        during_init,
        [
            ("reserve", Ok(other)),
            ("release other slab", Ok(other)),
            ("initialize other pages", Ok(base + 4 * P)),
            ("initialize own pages", Err(Error::Overlap { segment: 0 })),
            ("deinitialize own key", Err(Error::Busy { addr: base })),
            (
                "deinitialize own interior",
                Err(Error::InteriorAddress { addr: base + P })
            ),
            ("release own slab", Err(Error::Busy { addr: base })),
        ]
    );
    assert_eq!(deinit, Ok(()));
    assert_eq!(
        during_deinit,
        [
            ("deinitialize nested", Ok(base + 4 * P)),
            (
                "deinitialize own key again",
                Err(Error::Busy { addr: base })
            ),
            (
                "release own slab while retiring",
                Err(Error::Busy { addr: base })
            ),
        ]
    );
    MAP.host().check_map(&MAP).unwrap();
    assert_eq!((MAP.slab_count(), MAP.region_count()), (1, 0));

    // Release runs remaining dealloc actions outside the lock as well. A dealloc action that
    // deinitializes a sibling region of the slab being released finds it busy: the release
    // retires it itself (and no other thread may reset pages in a slab about to be unmapped).
    let sibling = base + 4 * P;
    let results = with_watchdog(move || {
        let sibling_segs = [Segment::new(Prot::READ_WRITE, sibling, P, &[])];
        assert_eq!(
            MAP.initialize(&InitRequest::new(&sibling_segs, &[])),
            Ok(sibling)
        );
        let segs = [Segment::new(Prot::READ, base + 6 * P, P, &[])];
        let pairs = [ActionPair {
            finalize: None,
            dealloc: Some(Action::with_u64(
                reentrant_dealloc,
                base as u64 + 6 * P as u64,
            )),
        }];
        NESTED.store(sibling, Ordering::SeqCst);
        assert_eq!(
            MAP.initialize(&InitRequest::new(&segs, &pairs)),
            Ok(base + 6 * P)
        );
        let released = MAP.release(base);
        (released, take_seen())
    });
    assert_eq!(results.0, Ok(()));
    let own = base + 6 * P;
    assert_eq!(
        results.1,
        [
            ("deinitialize nested", Err(Error::Busy { addr: sibling })),
            ("deinitialize own key again", Err(Error::Busy { addr: own })),
            (
                "release own slab while retiring",
                Err(Error::Busy { addr: base })
            ),
        ]
    );
    assert_eq!((MAP.slab_count(), MAP.region_count()), (0, 0));
    assert_eq!(MAP.host().reservations(), []);
}
