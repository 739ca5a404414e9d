//! Catalogue row C3 and the capacity contract: with fixed tables the map allocates nothing on
//! any path, error and rollback paths included (when `mprotect` fails with ENOMEM because of
//! `vm.max_map_count`, malloc fails too).
//!
//! A counting global allocator counts the allocations of the current thread while armed; the
//! host wrapper disarms it during host calls (the recording host itself allocates for its log
//! and its simulated memory), and the actions used here allocate nothing.

use std::sync::atomic::{AtomicUsize, Ordering};

use mapcore::testing::{
    count_allocations, without_counting, CountingAllocator, FakeError, RecordingHost,
};
use mapcore::{
    Action, ActionError, ActionPair, Capabilities, DefaultStorage, Error, Host, HostOp,
    InitRequest, JitMap, Limit, PageRange, Prot, Segment,
};

const P: usize = 4096;
const ENOMEM: FakeError = FakeError::ENOMEM;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// A host that forwards to a recording host with the allocation counter disarmed.
#[derive(Debug)]
struct Quiet<'a>(&'a RecordingHost);

#[expect(
    unsafe_code,
    reason = "a forwarding host, to keep the recording host's allocations out of the count"
)]
// SAFETY: every method forwards to the recording host, which keeps the trait's promises.
unsafe impl Host for Quiet<'_> {
    type Error = FakeError;

    fn page_size(&self) -> usize {
        self.0.page_size()
    }

    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }

    fn reserve(&self, size: usize) -> Result<usize, FakeError> {
        without_counting(|| self.0.reserve(size))
    }

    unsafe fn release(&self, base: usize, size: usize) -> Result<(), FakeError> {
        // SAFETY: the map's promises for this call are forwarded unchanged.
        without_counting(|| unsafe { self.0.release(base, size) })
    }

    unsafe fn protect(&self, range: PageRange, prot: Prot) -> Result<(), FakeError> {
        // SAFETY: the map's promises for this call are forwarded unchanged.
        without_counting(|| unsafe { self.0.protect(range, prot) })
    }

    unsafe fn discard(&self, range: PageRange) -> Result<(), FakeError> {
        // SAFETY: the map's promises for this call are forwarded unchanged.
        without_counting(|| unsafe { self.0.discard(range) })
    }

    unsafe fn write(&self, addr: usize, bytes: &[u8]) {
        // SAFETY: the map's promises for this call are forwarded unchanged.
        without_counting(|| unsafe { self.0.write(addr, bytes) });
    }

    unsafe fn fill_zero(&self, addr: usize, len: usize) {
        // SAFETY: the map's promises for this call are forwarded unchanged.
        without_counting(|| unsafe { self.0.fill_zero(addr, len) });
    }

    unsafe fn fill_trap(&self, addr: usize, len: usize) {
        // SAFETY: the map's promises for this call are forwarded unchanged.
        without_counting(|| unsafe { self.0.fill_trap(addr, len) });
    }

    unsafe fn flush_icache(&self, range: PageRange) -> Result<(), FakeError> {
        // SAFETY: the map's promises for this call are forwarded unchanged.
        without_counting(|| unsafe { self.0.flush_icache(range) })
    }
}

static RAN: AtomicUsize = AtomicUsize::new(0);

fn count(_: &[u8]) -> Result<(), ActionError> {
    RAN.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

fn fail(_: &[u8]) -> Result<(), ActionError> {
    RAN.fetch_add(1, Ordering::SeqCst);
    Err(ActionError::new(7))
}

/// Asserts that `f` allocated nothing and returns its result.
#[track_caller]
fn no_alloc<R>(what: &str, f: impl FnOnce() -> R) -> R {
    let (result, allocations) = count_allocations(f);
    assert_eq!(allocations, 0, "{what} allocated");
    result
}

#[test]
fn counting_allocator_sees_allocations() {
    let (v, n) = count_allocations(|| vec![1u8; 3]);
    assert_eq!((v.len(), n), (3, 1));
}

#[test]
fn c3_no_path_allocates_with_fixed_tables() {
    let recording = RecordingHost::new(P);
    let host = Quiet(&recording);
    let map: JitMap<&Quiet<'_>, DefaultStorage> = no_alloc("new", || JitMap::new(&host));
    let ok_pair = ActionPair::new(
        Action::new(count, &[]).unwrap(),
        Action::new(count, &[]).unwrap(),
    );
    let failing_fin = ActionPair::new(
        Action::new(fail, &[]).unwrap(),
        Action::new(count, &[]).unwrap(),
    );
    let failing_dealloc = ActionPair::new(
        Action::new(count, &[]).unwrap(),
        Action::new(fail, &[]).unwrap(),
    );
    let content = [0xA5u8; 64];

    // reserve: success and every error.
    let base = no_alloc("reserve", || map.reserve(64 * P)).unwrap();
    no_alloc("reserve errors", || {
        assert_eq!(map.reserve(0), Err(Error::InvalidSize { size: 0 }));
        assert_eq!(map.reserve(1 << 50), Err(Error::TooLarge { size: 1 << 50 }));
    });
    recording.fail_nth(0, ENOMEM);
    assert!(matches!(
        no_alloc("reserve host error", || map.reserve(P)),
        Err(Error::Host { .. })
    ));

    // initialize: success, validation errors, host failure with rollback, finalize failure
    // with rollback, double fault with quarantine.
    let rx = |page: usize| Segment::new(Prot::READ_EXEC, base + page * P, P, &content);
    let key = no_alloc("initialize", || {
        map.initialize(&InitRequest::new(&[rx(0)], std::slice::from_ref(&ok_pair)))
    })
    .unwrap();
    no_alloc("initialize errors", || {
        assert_eq!(
            map.initialize(&InitRequest::new(&[rx(0)], &[])),
            Err(Error::Overlap { segment: 0 })
        );
        assert_eq!(
            map.initialize(&InitRequest::new(&[], &[])),
            Err(Error::NoStandardSegment)
        );
        let outside = [Segment::new(Prot::READ, base + 64 * P, P, &[])];
        assert_eq!(
            map.initialize(&InitRequest::new(&outside, &[])),
            Err(Error::NotInSlab { segment: 0 })
        );
    });
    recording.fail_nth(0, ENOMEM);
    let err = no_alloc("initialize protect failure", || {
        map.initialize(&InitRequest::new(&[rx(2)], std::slice::from_ref(&ok_pair)))
    });
    assert!(
        matches!(
            err,
            Err(Error::Host {
                op: HostOp::Protect,
                quarantined: false,
                ..
            })
        ),
        "{err:?}"
    );
    let err = no_alloc("initialize finalize failure", || {
        map.initialize(&InitRequest::new(
            &[rx(2)],
            &[
                ok_pair.clone(),
                failing_dealloc.clone(),
                failing_fin.clone(),
            ],
        ))
    });
    assert!(
        matches!(
            err,
            Err(Error::FinalizeFailed {
                action: 2,
                cleanup_failures: 1,
                ..
            })
        ),
        "{err:?}"
    );
    recording.fail_nth(1, ENOMEM);
    recording.fail_nth(2, ENOMEM);
    let err = no_alloc("initialize double fault", || {
        map.initialize(&InitRequest::new(&[rx(3)], &[]))
    });
    assert!(
        matches!(
            err,
            Err(Error::Host {
                quarantined: true,
                ..
            })
        ),
        "{err:?}"
    );

    // deinitialize and the batches, with more entries than one internal chunk.
    no_alloc("deinitialize errors", || {
        assert_eq!(
            map.deinitialize(base + P),
            Err(Error::UnknownKey { addr: base + P })
        );
        assert_eq!(map.deinitialize(0), Err(Error::NotInAnySlab { addr: 0 }));
    });
    no_alloc("deinitialize", || map.deinitialize(key)).unwrap();
    let keys: Vec<usize> = (4..40).map(|page| base + page * P).collect();
    for &k in &keys {
        let segs = [Segment::new(Prot::READ, k, P, &[])];
        let pairs = [if k == base + 10 * P {
            failing_dealloc.clone()
        } else {
            ok_pair.clone()
        }];
        map.initialize(&InitRequest::new(&segs, &pairs)).unwrap();
    }
    let mut batch = keys.clone();
    batch.push(keys[0]);
    batch.push(base + 60 * P);
    let mut failures = 0;
    let result = no_alloc("deinitialize_multiple", || {
        map.deinitialize_multiple(&batch, |_, _| failures += 1)
    });
    assert_eq!((result, failures), (Err(Error::Batch { failed: 3 }), 3));

    // release: errors, host failure, success with live regions, batch; shutdown.
    let seg = [Segment::new(Prot::READ_EXEC, base + 50 * P, P, &[])];
    map.initialize(&InitRequest::new(
        &seg,
        &[ok_pair.clone(), failing_dealloc.clone()],
    ))
    .unwrap();
    no_alloc("release errors", || {
        assert_eq!(
            map.release(base + P),
            Err(Error::NotSlabBase { addr: base + P })
        );
        assert_eq!(map.release(1), Err(Error::NotInAnySlab { addr: 1 }));
    });
    recording.fail_op(HostOp::Release, ENOMEM);
    let err = no_alloc("release host failure", || map.release(base));
    assert!(
        matches!(
            err,
            Err(Error::Host {
                op: HostOp::Release,
                ..
            })
        ),
        "{err:?}"
    );
    recording.clear_faults();
    let others: Vec<usize> = (0..7).map(|_| map.reserve(P).unwrap()).collect();
    assert_eq!(
        no_alloc("full slab table", || map.reserve(P)),
        Err(Error::CapacityExceeded(Limit::Slabs))
    );
    let mut failures = 0;
    let result = no_alloc("release_multiple", || {
        map.release_multiple(&[others[0], others[1], others[1]], |_, _| failures += 1)
    });
    assert_eq!((result, failures), (Err(Error::Batch { failed: 1 }), 1));
    no_alloc("release", || map.release(base)).unwrap();
    assert_eq!(no_alloc("shutdown", || map.shutdown()), Ok(()));
    assert_eq!(recording.reservations(), []);
    assert!(RAN.load(Ordering::SeqCst) > 0);
}
