//! release and shutdown: catalogue rows D4-D8, the newest-first order of shutdown, and the
//! extents a release or deinitialize frees.

pub mod common;

use common::*;
use mapcore::testing::Call;
use mapcore::{Error, HostOp, JitMap, Prot, Segment, Storage};

/// Initializes a one-page region at `addr` with pairs `id` and `id + 1`.
fn region<S: Storage>(map: &Map<'_, S>, prot: Prot, addr: usize, id: u32, content: &[u8]) {
    let segs = [Segment::new(prot, addr, P, content)];
    assert_eq!(
        map.initialize(&req(&segs, &[pair(id), pair(id + 1)])),
        Ok(addr)
    );
}

/// D4: after its slab was released and a new slab reserved at the same address (ABA), an
/// old key is unknown: release cleared the slab's regions, no dealloc action runs again.
fn d4_stale_key_after_slab_reuse_is_unknown<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let old = map.reserve(8 * P).unwrap();
    let code = pattern(64, 1);
    region(&map, Prot::READ_EXEC, old + 2 * P, 10, &code);
    assert_eq!(map.release(old), Ok(()));
    assert_eq!(
        take_acts(),
        [
            Act::Fin(10),
            Act::Fin(11),
            Act::Dealloc(11),
            Act::Dealloc(10)
        ]
    );
    let new = map.reserve(8 * P).unwrap();
    assert_eq!(new, old, "the recording host reuses the address first-fit");
    assert_free(&host, pages(new, new + 8 * P, P));
    let before = snapshot(&host, &map);
    assert_eq!(
        map.deinitialize(old + 2 * P),
        Err(Error::UnknownKey { addr: old + 2 * P })
    );
    assert_eq!(
        map.deinitialize(old + 2 * P + 8),
        Err(Error::UnknownKey {
            addr: old + 2 * P + 8
        })
    );
    assert_eq!(take_acts(), []);
    assert_unchanged(&host, &map, &before);
    // The pages of the stale region are free in the new slab.
    let segs = [Segment::new(Prot::READ_WRITE, new + 2 * P, P, &[])];
    assert_eq!(map.initialize(&req(&segs, &[])), Ok(new + 2 * P));
    assert_segment(&host, &segs[0], &[]);
}

/// D5: release of an address inside a slab that is not its base: an error, nothing unmapped,
/// the regions untouched.
fn d5_release_of_interior_address_unmaps_nothing<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(8 * P).unwrap();
    let code = pattern(64, 2);
    region(&map, Prot::READ_EXEC, base + P, 0, &code);
    clear_acts();
    let before = snapshot(&host, &map);
    for addr in [base + P, base + 1, base + 8 * P - 1] {
        assert_eq!(map.release(addr), Err(Error::NotSlabBase { addr }));
    }
    assert_eq!(take_acts(), []);
    assert_unchanged(&host, &map, &before);
    assert_segment(
        &host,
        &Segment::new(Prot::READ_EXEC, base + P, P, &[]),
        &code,
    );
}

/// D6: release of an unknown address, and a second release of a slab: an error, no host call
/// (the host could not tell: munmap of an unmapped range succeeds).
fn d6_release_of_unknown_or_released_slab<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let a = map.reserve(4 * P).unwrap();
    let b = map.reserve(4 * P).unwrap();
    assert_eq!(map.release(a), Ok(()));
    let before = snapshot(&host, &map);
    for addr in [a, a + P, b + 4 * P, 0, usize::MAX] {
        assert_eq!(map.release(addr), Err(Error::NotInAnySlab { addr }));
    }
    assert_unchanged(&host, &map, &before);
    assert_eq!(map.release(b), Ok(()));
    assert_eq!(map.release(b), Err(Error::NotInAnySlab { addr: b }));
    assert_eq!(host.reservations(), []);
}

/// D7: release with live regions deinitializes them first: every dealloc action exactly
/// once, newest region first (by initialization, not by address), then one unmap.
fn d7_release_runs_each_dealloc_once_newest_first<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(16 * P).unwrap();
    region(&map, Prot::READ, base + 4 * P, 10, &[]);
    region(&map, Prot::READ_EXEC, base, 20, &[]);
    region(&map, Prot::READ_WRITE, base + 8 * P, 30, &[]);
    region(&map, Prot::READ, base + 12 * P, 40, &[]);
    // Replace the oldest by a newer one at the same place, and drop the third.
    assert_eq!(map.deinitialize(base + 4 * P), Ok(()));
    assert_eq!(map.deinitialize(base + 8 * P), Ok(()));
    region(&map, Prot::READ_EXEC, base + 4 * P, 50, &[]);
    clear_acts();
    host.clear_log();
    assert_eq!(map.release(base), Ok(()));
    assert_eq!(
        take_acts(),
        [
            Act::Dealloc(51),
            Act::Dealloc(50),
            Act::Dealloc(41),
            Act::Dealloc(40),
            Act::Dealloc(21),
            Act::Dealloc(20)
        ]
    );
    assert_eq!(host.log(), [ok(Call::Release { base, size: 16 * P })]);
    assert_eq!((map.slab_count(), map.region_count()), (0, 0));
    host.check_map(&map).unwrap();
}

/// D7 with failing dealloc actions: every one still runs once, the slab is released, and
/// the error counts the failures.
fn d7_release_counts_dealloc_failures<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(8 * P).unwrap();
    region(&map, Prot::READ, base, 0, &[]);
    region(&map, Prot::READ, base + P, 10, &[]);
    clear_acts();
    fail_action(Act::Dealloc(1));
    fail_action(Act::Dealloc(10));
    assert_eq!(map.release(base), Err(Error::DeallocFailed { failed: 2 }));
    assert_eq!(
        take_acts(),
        [
            Act::Dealloc(11),
            Act::Dealloc(10),
            Act::Dealloc(1),
            Act::Dealloc(0)
        ]
    );
    assert_eq!(host.reservations(), []);
    assert_eq!((map.slab_count(), map.region_count()), (0, 0));
    host.check_map(&map).unwrap();
}

/// D8: the host cannot unmap: the error says so, the slab stays recorded (its regions are
/// gone, their dealloc actions ran once), nothing new can start in it, and the release can
/// be retried without running anything again.
fn d8_failed_unmap_keeps_slab_for_retry<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(8 * P).unwrap();
    region(&map, Prot::READ_EXEC, base + P, 0, &pattern(32, 3));
    clear_acts();
    host.clear_log();
    host.fail_op(HostOp::Release, ENOMEM);
    assert_eq!(
        map.release(base),
        Err(Error::Host {
            op: HostOp::Release,
            segment: None,
            error: ENOMEM,
            quarantined: false
        })
    );
    assert_eq!(host.log(), [failed(Call::Release { base, size: 8 * P })]);
    assert_eq!(take_acts(), [Act::Dealloc(1), Act::Dealloc(0)]);
    assert_eq!((map.slab_count(), map.region_count()), (1, 0));
    assert_eq!(host.reservations(), [(base, 8 * P)]);
    host.check_map(&map).unwrap();
    host.clear_faults();
    let before = snapshot(&host, &map);
    let segs = [Segment::new(Prot::READ_WRITE, base + 4 * P, P, &[])];
    assert_eq!(
        map.initialize(&req(&segs, &[pair(5)])),
        Err(Error::Busy { addr: base })
    );
    assert_eq!(
        map.deinitialize(base + P),
        Err(Error::UnknownKey { addr: base + P })
    );
    assert_eq!(
        map.release(base + P),
        Err(Error::NotSlabBase { addr: base + P })
    );
    assert_eq!(take_acts(), []);
    assert_unchanged(&host, &map, &before);
    assert_eq!(map.release(base), Ok(()));
    assert_eq!(host.log(), [ok(Call::Release { base, size: 8 * P })]);
    assert_eq!(take_acts(), []);
    assert_eq!((map.slab_count(), host.reservations()), (0, vec![]));
}

/// Shutdown (and drop) releases every slab newest first by creation, not by address, running
/// the remaining dealloc actions of each.
fn shutdown_releases_slabs_newest_first<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let a = map.reserve(4 * P).unwrap();
    let b = map.reserve(4 * P).unwrap();
    let c = map.reserve(4 * P).unwrap();
    assert_eq!(map.release(b), Ok(()));
    // First-fit: the newest slab takes the lowest free address, below `c`.
    let d = map.reserve(4 * P).unwrap();
    assert_eq!(d, b);
    region(&map, Prot::READ, a, 10, &[]);
    region(&map, Prot::READ, c, 30, &[]);
    region(&map, Prot::READ, d, 40, &[]);
    region(&map, Prot::READ_EXEC, a + P, 20, &[]);
    clear_acts();
    host.clear_log();
    assert_eq!(map.shutdown(), Ok(()));
    assert_eq!(
        take_acts(),
        [
            Act::Dealloc(41),
            Act::Dealloc(40),
            Act::Dealloc(31),
            Act::Dealloc(30),
            Act::Dealloc(21),
            Act::Dealloc(20),
            Act::Dealloc(11),
            Act::Dealloc(10)
        ]
    );
    let size = 4 * P;
    assert_eq!(
        host.log(),
        [
            ok(Call::Release { base: d, size }),
            ok(Call::Release { base: c, size }),
            ok(Call::Release { base: a, size })
        ]
    );
    assert_eq!((map.slab_count(), map.region_count()), (0, 0));
}

/// Shutdown keeps going when the host cannot unmap: every dealloc action runs once, the
/// error counts the slabs, and a later shutdown finishes the job.
fn shutdown_keeps_going_after_failed_unmaps<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let a = map.reserve(4 * P).unwrap();
    let b = map.reserve(4 * P).unwrap();
    region(&map, Prot::READ, a, 10, &[]);
    region(&map, Prot::READ, b, 20, &[]);
    clear_acts();
    host.fail_op(HostOp::Release, ENOMEM);
    assert_eq!(map.shutdown(), Err(Error::Batch { failed: 2 }));
    assert_eq!(
        take_acts(),
        [
            Act::Dealloc(21),
            Act::Dealloc(20),
            Act::Dealloc(11),
            Act::Dealloc(10)
        ]
    );
    assert_eq!((map.slab_count(), map.region_count()), (2, 0));
    host.check_map(&map).unwrap();
    host.clear_faults();
    host.clear_log();
    assert_eq!(map.shutdown(), Ok(()));
    assert_eq!(take_acts(), []);
    assert_eq!(host.count(HostOp::Release), 2);
    assert_eq!(host.reservations(), []);
}

/// The extents a release or deinitialize frees, asked before: the slab's size by its base,
/// a live region's pages by its key; nothing for other addresses or once gone.
fn extents_of_slabs_and_regions<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(8 * P).unwrap();
    let segs = [
        Segment::new(Prot::READ_EXEC, base + 2 * P, 8, &[]),
        Segment::new(Prot::READ, base + 5 * P, P + 1, &[]),
    ];
    assert_eq!(map.initialize(&req(&segs, &[])), Ok(base + 2 * P));
    assert_eq!(map.slab_size(base), Some(8 * P));
    assert_eq!(map.slab_size(base + P), None);
    assert_eq!(
        map.region_extent(base + 2 * P),
        Some((base + 2 * P, base + 7 * P))
    );
    assert_eq!(map.region_extent(base + 5 * P), None);
    assert_eq!(map.region_extent(base), None);
    assert_eq!(map.deinitialize(base + 2 * P), Ok(()));
    assert_eq!(map.region_extent(base + 2 * P), None);
    assert_eq!(map.release(base), Ok(()));
    assert_eq!(map.slab_size(base), None);
}

for_each_storage!(
    extents_of_slabs_and_regions,
    d4_stale_key_after_slab_reuse_is_unknown,
    d5_release_of_interior_address_unmaps_nothing,
    d6_release_of_unknown_or_released_slab,
    d7_release_runs_each_dealloc_once_newest_first,
    d7_release_counts_dealloc_failures,
    d8_failed_unmap_keeps_slab_for_retry,
    shutdown_releases_slabs_newest_first,
    shutdown_keeps_going_after_failed_unmaps,
);
