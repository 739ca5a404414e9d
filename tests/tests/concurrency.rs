//! Racing threads on one map (recording host): every outcome must match some sequential order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::thread;
use std::time::Duration;

use mapcore::testing::RecordingHost;
use mapcore::{Action, ActionError, ActionPair, Error, InitRequest, JitMap, Prot, Segment};

const PAGE: usize = 4096;
const ITERS: usize = if cfg!(miri) { 4 } else { 300 };

type Map = JitMap<&'static RecordingHost>;

fn leak_map() -> &'static Map {
    let host: &'static RecordingHost = Box::leak(Box::new(RecordingHost::new(PAGE)));
    Box::leak(Box::new(JitMap::new(host)))
}

#[test]
fn eight_threads_each_see_only_their_own_cookies() {
    let map = leak_map();
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            thread::spawn(move || {
                let base = map.reserve(16 * PAGE).unwrap();
                for i in 0..ITERS as u64 {
                    let cookie = (t << 32 | i).to_ne_bytes().repeat(64);
                    let addr = base + (i as usize % 8) * 2 * PAGE;
                    let seg = [Segment::new(Prot::READ, addr, 2 * PAGE, &cookie)];
                    let key = map.initialize(&InitRequest::new(&seg, &[])).unwrap();
                    assert_eq!(map.host().read(addr, cookie.len()), cookie);
                    assert!(map
                        .host()
                        .read(addr + cookie.len(), 2 * PAGE - cookie.len())
                        .iter()
                        .all(|b| *b == 0));
                    map.deinitialize(key).unwrap();
                }
                map.release(base).unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!((map.slab_count(), map.region_count()), (0, 0));
    map.host().check_map(map).unwrap();
}

#[test]
fn racing_initializes_of_the_same_pages_have_one_winner() {
    let map = leak_map();
    let base = map.reserve(64 * PAGE).unwrap();
    for round in 0..ITERS {
        let barrier = Arc::new(Barrier::new(2));
        let addr = base + (round % 32) * PAGE;
        let racers: Vec<_> = [0usize, PAGE]
            .into_iter()
            .map(|offset| {
                let barrier = barrier.clone();
                thread::spawn(move || {
                    // Overlapping requests: [addr, addr+2p) and [addr+p, addr+2p).
                    let seg = [Segment::new(
                        Prot::READ,
                        addr + offset,
                        2 * PAGE - offset,
                        &[],
                    )];
                    barrier.wait();
                    map.initialize(&InitRequest::new(&seg, &[]))
                })
            })
            .collect();
        let results: Vec<_> = racers.into_iter().map(|t| t.join().unwrap()).collect();
        let winners: Vec<usize> = results
            .iter()
            .filter_map(|r| r.as_ref().ok().copied())
            .collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        for r in &results {
            if let Err(e) = r {
                assert!(
                    matches!(e, Error::Overlap { .. } | Error::KeyInUse { .. }),
                    "{e:?}"
                );
            }
        }
        map.deinitialize(winners[0]).unwrap();
        map.host().check_map(map).unwrap();
    }
    map.release(base).unwrap();
}

static DEALLOC_RUNS: AtomicUsize = AtomicUsize::new(0);

fn count_dealloc(_: &[u8]) -> Result<(), ActionError> {
    DEALLOC_RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

fn nothing(_: &[u8]) -> Result<(), ActionError> {
    Ok(())
}

#[test]
fn racing_deinitializes_run_actions_once() {
    let map = leak_map();
    let base = map.reserve(4 * PAGE).unwrap();
    for _ in 0..ITERS {
        DEALLOC_RUNS.store(0, Ordering::SeqCst);
        let pair = [ActionPair::new(
            Action::new(nothing, &[]).unwrap(),
            Action::new(count_dealloc, &[]).unwrap(),
        )];
        let seg = [Segment::new(Prot::READ_EXEC, base, PAGE, &[0xc3])];
        let key = map.initialize(&InitRequest::new(&seg, &pair)).unwrap();
        let barrier = Arc::new(Barrier::new(2));
        let racers: Vec<_> = (0..2)
            .map(|_| {
                let barrier = barrier.clone();
                thread::spawn(move || {
                    barrier.wait();
                    map.deinitialize(key)
                })
            })
            .collect();
        let results: Vec<_> = racers.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "{results:?}"
        );
        for r in results.iter().filter_map(|r| r.as_ref().err()) {
            assert!(
                matches!(
                    r,
                    Error::Busy { .. } | Error::UnknownKey { .. } | Error::InteriorAddress { .. }
                ),
                "{r:?}"
            );
        }
        assert_eq!(DEALLOC_RUNS.load(Ordering::SeqCst), 1);
    }
    map.release(base).unwrap();
    map.host().check_map(map).unwrap();
}

#[test]
fn release_racing_initialize_never_touches_unmapped_memory() {
    // The recording host panics on any write to unreserved memory, so a lost race shows up as
    // a panic in the initializing thread.
    let map = leak_map();
    for _ in 0..ITERS {
        let base = map.reserve(8 * PAGE).unwrap();
        let barrier = Arc::new(Barrier::new(2));
        let b2 = barrier.clone();
        let init = thread::spawn(move || {
            let content = [0xabu8; 64];
            let seg = [Segment::new(Prot::READ, base + PAGE, 2 * PAGE, &content)];
            b2.wait();
            map.initialize(&InitRequest::new(&seg, &[]))
        });
        barrier.wait();
        let released = map.release(base);
        let initialized = init.join().expect("initialize must not fault");
        match (initialized, released) {
            // initialize first, then release took the region with it.
            (Ok(_), Ok(())) => {}
            // release first: the slab was gone or releasing.
            (Err(Error::NotInSlab { .. } | Error::Busy { .. }), Ok(())) => {}
            // initialize was still in progress: release refused, retry now.
            (Ok(_), Err(Error::Busy { .. })) => map.release(base).unwrap(),
            other => panic!("inconsistent outcome {other:?}"),
        }
        assert_eq!(map.slab_count(), 0);
        map.host().check_map(map).unwrap();
    }
}

static REENTRANT_MAP: OnceLock<&'static Map> = OnceLock::new();

fn reserve_and_release_from_action(_: &[u8]) -> Result<(), ActionError> {
    let map = REENTRANT_MAP.get().ok_or(ActionError::new(1))?;
    let base = map.reserve(PAGE).map_err(|_| ActionError::new(2))?;
    map.release(base).map_err(|_| ActionError::new(3))
}

#[test]
fn actions_may_call_back_into_the_map() {
    let map = leak_map();
    REENTRANT_MAP.set(map).ok();
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let base = map.reserve(4 * PAGE).unwrap();
        let action = Action::new(reserve_and_release_from_action, &[]).unwrap();
        let pair = [ActionPair::new(action.clone(), action)];
        let seg = [Segment::new(Prot::READ, base, PAGE, &[])];
        let key = map.initialize(&InitRequest::new(&seg, &pair));
        let deinit = key.map(|k| map.deinitialize(k));
        let released = map.release(base);
        tx.send((deinit, released)).unwrap();
    });
    let (deinit, released) = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("deadlock: no answer in 20 s");
    assert_eq!(deinit, Ok(Ok(())));
    assert_eq!(released, Ok(()));
}
