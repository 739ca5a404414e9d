//! Double faults: dealloc actions fail in the same call as a host call (a reset back to
//! read-write, an unmap, the reset of Finalize-lifetime pages). The error reports both: the
//! host error and how many dealloc actions failed (`Error::Host::dealloc_failures`); every
//! dealloc action still runs exactly once, and a retry reports nothing it already reported.

pub mod common;

use common::*;
use mapcore::testing::Call;
use mapcore::{Error, HostOp, JitMap, Prot, Segment, Storage};

/// A region of one RX page at `addr` with the pairs `ids`.
fn rx_region<S: Storage>(map: &Map<'_, S>, addr: usize, ids: &[u32]) {
    let segs = [Segment::new(Prot::READ_EXEC, addr, P, &[])];
    let pairs: Vec<_> = ids.iter().map(|&id| pair(id)).collect();
    assert_eq!(map.initialize(&req(&segs, &pairs)), Ok(addr));
    clear_acts();
}

/// deinitialize: a dealloc action fails and the protect back to read-write fails too. The
/// error is the host's (pages quarantined) and counts the failed dealloc action.
fn deinitialize_dealloc_and_reset_fail<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(4 * P).unwrap();
    rx_region(&map, base, &[0, 1, 2]);
    fail_action(Act::Dealloc(1));
    fail_action(Act::Dealloc(0));
    host.fail_op(HostOp::Protect, ENOMEM);
    assert_eq!(
        map.deinitialize(base),
        Err(Error::Host {
            op: HostOp::Protect,
            segment: None,
            error: ENOMEM,
            quarantined: true,
            dealloc_failures: 2,
        })
    );
    host.clear_faults();
    assert_eq!(
        take_acts(),
        [Act::Dealloc(2), Act::Dealloc(1), Act::Dealloc(0)]
    );
    assert_eq!(map.region_count(), 0);
    host.check_map(&map).unwrap();
    // Nothing is left to report, and nothing runs twice.
    assert_eq!(
        map.deinitialize(base),
        Err(Error::UnknownKey { addr: base })
    );
    assert_eq!(take_acts(), []);
}

/// release: a dealloc action fails and the unmap fails too. The error is the host's and
/// counts the failed dealloc action; the retry unmaps and runs nothing again.
fn release_dealloc_and_unmap_fail<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(4 * P).unwrap();
    rx_region(&map, base, &[0]);
    rx_region(&map, base + 2 * P, &[1]);
    fail_action(Act::Dealloc(0));
    fail_action(Act::Dealloc(1));
    host.fail_op(HostOp::Release, EACCES);
    assert_eq!(
        map.release(base),
        Err(Error::Host {
            op: HostOp::Release,
            segment: None,
            error: EACCES,
            quarantined: false,
            dealloc_failures: 2,
        })
    );
    host.clear_faults();
    assert_eq!(take_acts(), [Act::Dealloc(1), Act::Dealloc(0)]);
    assert_eq!((map.slab_count(), map.region_count()), (1, 0));
    host.check_map(&map).unwrap();
    assert_eq!(map.release(base), Ok(()));
    assert_eq!(take_acts(), []);
    assert_eq!(host.reservations(), []);
}

/// deinitialize_multiple: two touching regions share one reset run that fails; each entry
/// reports the host error with its own count of failed dealloc actions (one has none).
fn deinitialize_multiple_entries_report_both<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(4 * P).unwrap();
    rx_region(&map, base, &[0, 1]);
    rx_region(&map, base + P, &[2]);
    rx_region(&map, base + 3 * P, &[3]);
    fail_action(Act::Dealloc(0));
    fail_action(Act::Dealloc(1));
    fail_action(Act::Dealloc(3));
    // The first protect is the merged run of the first two regions.
    host.fail_nth(0, ENOMEM);
    let mut reported = Vec::new();
    let result = map.deinitialize_multiple(&[base, base + P, base + 3 * P], |i, e| {
        reported.push((i, e));
    });
    assert_eq!(result, Err(Error::Batch { failed: 3 }));
    reported.sort_by_key(|r| r.0);
    let host_error = |dealloc_failures| Error::Host {
        op: HostOp::Protect,
        segment: None,
        error: ENOMEM,
        quarantined: true,
        dealloc_failures,
    };
    assert_eq!(
        reported,
        [
            (0, host_error(2)),
            (1, host_error(0)),
            (2, Error::DeallocFailed { failed: 1 })
        ]
    );
    assert_eq!(
        take_acts(),
        [
            Act::Dealloc(3),
            Act::Dealloc(2),
            Act::Dealloc(1),
            Act::Dealloc(0)
        ]
    );
    assert_eq!(map.region_count(), 0);
    host.check_map(&map).unwrap();
}

/// release_multiple: each entry whose unmap fails reports the host error with its own count
/// of failed dealloc actions; the retry of those entries reports nothing more.
fn release_multiple_entries_report_both<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let first = map.reserve(2 * P).unwrap();
    let second = map.reserve(2 * P).unwrap();
    rx_region(&map, first, &[0]);
    rx_region(&map, second, &[1, 2]);
    fail_action(Act::Dealloc(0));
    fail_action(Act::Dealloc(1));
    fail_action(Act::Dealloc(2));
    host.fail_op(HostOp::Release, ENOMEM);
    let mut reported = Vec::new();
    let result = map.release_multiple(&[first, second], |i, e| reported.push((i, e)));
    host.clear_faults();
    assert_eq!(result, Err(Error::Batch { failed: 2 }));
    let unmap_error = |dealloc_failures| Error::Host {
        op: HostOp::Release,
        segment: None,
        error: ENOMEM,
        quarantined: false,
        dealloc_failures,
    };
    assert_eq!(reported, [(1, unmap_error(2)), (0, unmap_error(1))]);
    assert_eq!(
        take_acts(),
        [Act::Dealloc(2), Act::Dealloc(1), Act::Dealloc(0)]
    );
    host.check_map(&map).unwrap();
    assert_eq!(
        map.release_multiple(&[first, second], |i, e| panic!("entry {i}: {e}")),
        Ok(())
    );
    assert_eq!(take_acts(), []);
    assert_eq!(host.reservations(), []);
}

/// initialize: every finalize action succeeded, then resetting the Finalize-lifetime pages
/// fails and a cleanup dealloc action fails too. The error names the reset and counts the
/// cleanup failure; everything is rolled back.
fn finalize_reset_and_cleanup_dealloc_fail<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(4 * P).unwrap();
    let segs = [
        Segment::new(Prot::READ_EXEC, base, P, &[]),
        fin_seg(Prot::READ, base + 2 * P, P, &[]),
    ];
    let pairs = [pair(0), pair(1)];
    // The calls of a successful initialize: the protects to RX and R, the flush, then the
    // Finalize page's protect back to read-write, which is the one made to fail.
    host.clear_log();
    assert_eq!(map.initialize(&req(&segs, &pairs)), Ok(base));
    let calls = fallible(&host.log());
    let back = calls
        .iter()
        .position(|e| {
            matches!(e.call, Call::Protect { range, prot: Prot::READ_WRITE }
                if range.start() == base + 2 * P)
        })
        .expect("the Finalize page is protected back");
    assert_eq!(map.deinitialize(base), Ok(()));
    clear_acts();

    host.fail_nth(back as u64, ENOMEM);
    fail_action(Act::Dealloc(0));
    assert_eq!(
        map.initialize(&req(&segs, &pairs)),
        Err(Error::Host {
            op: HostOp::Protect,
            segment: Some(1),
            error: ENOMEM,
            quarantined: false,
            dealloc_failures: 1,
        })
    );
    assert_eq!(
        take_acts(),
        [Act::Fin(0), Act::Fin(1), Act::Dealloc(1), Act::Dealloc(0)]
    );
    assert_eq!(map.region_count(), 0);
    host.check_map(&map).unwrap();
    for seg in &segs {
        assert_free(&host, seg_pages(seg, P));
    }
}

/// initialize, three faults: the Finalize reset fails, a cleanup dealloc action fails and the
/// rollback's own reset fails. The error says quarantined and still counts the dealloc.
fn finalize_reset_cleanup_and_rollback_fail<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(4 * P).unwrap();
    let segs = [
        Segment::new(Prot::READ, base, P, &[]),
        fin_seg(Prot::READ, base + 2 * P, P, &[]),
    ];
    let pairs = [pair(0)];
    // Every protect succeeds until the finalize action ran; then all of them fail.
    host.clear_log();
    assert_eq!(map.initialize(&req(&segs, &pairs)), Ok(base));
    let before_actions = fallible(&host.log()).len() - 2; // the Finalize page's protect, discard
    assert_eq!(map.deinitialize(base), Ok(()));
    clear_acts();
    for k in before_actions as u64..before_actions as u64 + 4 {
        host.fail_nth(k, ENOMEM);
    }
    fail_action(Act::Dealloc(0));
    assert_eq!(
        map.initialize(&req(&segs, &pairs)),
        Err(Error::Host {
            op: HostOp::Protect,
            segment: Some(1),
            error: ENOMEM,
            quarantined: true,
            dealloc_failures: 1,
        })
    );
    host.clear_faults();
    assert_eq!(take_acts(), [Act::Fin(0), Act::Dealloc(0)]);
    assert_eq!(map.region_count(), 0);
    host.check_map(&map).unwrap();
}

for_each_storage!(
    deinitialize_dealloc_and_reset_fail,
    release_dealloc_and_unmap_fail,
    deinitialize_multiple_entries_report_both,
    release_multiple_entries_report_both,
    finalize_reset_and_cleanup_dealloc_fail,
    finalize_reset_cleanup_and_rollback_fail,
);
