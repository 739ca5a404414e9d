//! deinitialize_multiple / release_multiple: catalogue rows E6-E9 and the merging of host
//! calls over adjacent regions.

pub mod common;

use common::*;
use mapcore::testing::Call;
use mapcore::{Error, Fixed, HostOp, JitMap, Prot, Segment, Storage};

/// Initializes `n` one-page regions of protection `prot` on consecutive pages from `start`,
/// region `i` with pair `i`; returns their keys.
fn regions<S: Storage>(map: &Map<'_, S>, prot: Prot, start: usize, n: usize) -> Vec<usize> {
    let keys: Vec<usize> = (0..n).map(|i| start + i * P).collect();
    for (i, &key) in keys.iter().enumerate() {
        let segs = [Segment::new(prot, key, P, &[])];
        assert_eq!(map.initialize(&req(&segs, &[pair(i as u32)])), Ok(key));
    }
    clear_acts();
    keys
}

/// Runs `deinitialize_multiple` and returns its result and the reports, in report order.
fn deinit_all<S: Storage>(map: &Map<'_, S>, keys: &[usize]) -> (Result<(), E>, Vec<(usize, E)>) {
    let mut reported = Vec::new();
    let result = map.deinitialize_multiple(keys, |i, e| reported.push((i, e)));
    (result, reported)
}

fn release_all<S: Storage>(map: &Map<'_, S>, bases: &[usize]) -> (Result<(), E>, Vec<(usize, E)>) {
    let mut reported = Vec::new();
    let result = map.release_multiple(bases, |i, e| reported.push((i, e)));
    (result, reported)
}

fn sorted(mut reports: Vec<(usize, E)>) -> Vec<(usize, E)> {
    reports.sort_by_key(|r| r.0);
    reports
}

/// E6: a key twice in one deinitialize batch: the first processed (the later index, since
/// batches run back to front) succeeds, the other reports UnknownKey with its index; no
/// action runs twice.
fn e6_duplicate_keys_in_deinitialize_multiple<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(8 * P).unwrap();
    let keys = regions(&map, Prot::READ_EXEC, base, 3);
    let (k0, k1) = (keys[0], keys[1]);
    assert_eq!(
        deinit_all(&map, &[k0, k0]),
        (
            Err(Error::Batch { failed: 1 }),
            vec![(0, Error::UnknownKey { addr: k0 })]
        )
    );
    assert_eq!(take_acts(), [Act::Dealloc(0)]);
    assert_eq!(
        deinit_all(&map, &[k1, keys[2], k1, k1]),
        (
            Err(Error::Batch { failed: 2 }),
            vec![
                (2, Error::UnknownKey { addr: k1 }),
                (0, Error::UnknownKey { addr: k1 })
            ]
        )
    );
    assert_eq!(take_acts(), [Act::Dealloc(1), Act::Dealloc(2)]);
    assert_eq!(map.region_count(), 0);
    assert_free(&host, pages(base, base + 3 * P, P));
    host.check_map(&map).unwrap();
}

/// E6 with the duplicates further apart than one internal chunk of the batch.
fn e6_duplicate_keys_far_apart<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(32 * P).unwrap();
    let keys = regions(&map, Prot::READ, base, 20);
    let mut batch = keys.clone();
    batch.push(keys[0]);
    let (result, reported) = deinit_all(&map, &batch);
    assert_eq!(result, Err(Error::Batch { failed: 1 }));
    assert_eq!(reported, [(0, Error::UnknownKey { addr: keys[0] })]);
    let mut expected: Vec<Act> = (1..20).rev().map(Act::Dealloc).collect();
    expected.insert(0, Act::Dealloc(0));
    assert_eq!(take_acts(), expected);
    assert_eq!(map.region_count(), 0);
    host.check_map(&map).unwrap();
}

/// E6: a slab twice in one release batch: the later index releases it, the earlier one
/// reports that the address is in no slab.
fn e6_duplicate_bases_in_release_multiple<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let a = map.reserve(4 * P).unwrap();
    let b = map.reserve(4 * P).unwrap();
    regions(&map, Prot::READ, a, 1);
    host.clear_log();
    assert_eq!(
        release_all(&map, &[a, b, a]),
        (
            Err(Error::Batch { failed: 1 }),
            vec![(0, Error::NotInAnySlab { addr: a })]
        )
    );
    assert_eq!(take_acts(), [Act::Dealloc(0)]);
    let size = 4 * P;
    assert_eq!(
        host.log(),
        [
            ok(Call::Release { base: a, size }),
            ok(Call::Release { base: b, size })
        ]
    );
    assert_eq!(host.reservations(), []);
}

/// E7: a batch mixing valid and invalid entries: every valid entry is processed exactly once,
/// back to front, and every invalid one is reported with its index and its own error, as if
/// the entries were processed one by one (an address inside a region deinitialized by a later
/// entry of the batch is unknown by the time its turn comes).
fn e7_mixed_batches_report_each_failure<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(16 * P).unwrap();
    let keys = regions(&map, Prot::READ_EXEC, base, 2);
    let wide = [Segment::new(Prot::READ, base + 4 * P, 2 * P, &[])];
    assert_eq!(map.initialize(&req(&wide, &[pair(7)])), Ok(base + 4 * P));
    clear_acts();
    fail_action(Act::Dealloc(7));
    let batch = [
        keys[0],
        base + 5 * P,
        base + 4 * P,
        base + 16 * P,
        keys[1],
        base + 10 * P,
    ];
    let (result, reported) = deinit_all(&map, &batch);
    assert_eq!(result, Err(Error::Batch { failed: 4 }));
    assert_eq!(
        sorted(reported),
        [
            (1, Error::UnknownKey { addr: base + 5 * P }),
            (2, Error::DeallocFailed { failed: 1 }),
            (
                3,
                Error::NotInAnySlab {
                    addr: base + 16 * P
                }
            ),
            (
                5,
                Error::UnknownKey {
                    addr: base + 10 * P
                }
            ),
        ]
    );
    assert_eq!(
        take_acts(),
        [Act::Dealloc(1), Act::Dealloc(7), Act::Dealloc(0)]
    );
    assert_eq!(map.region_count(), 0);
    host.check_map(&map).unwrap();

    let other = map.reserve(4 * P).unwrap();
    regions(&map, Prot::READ, other, 1);
    host.clear_log();
    let (result, reported) = release_all(&map, &[base, base + P, other, 0]);
    assert_eq!(result, Err(Error::Batch { failed: 2 }));
    assert_eq!(
        reported,
        [
            (3, Error::NotInAnySlab { addr: 0 }),
            (1, Error::NotSlabBase { addr: base + P })
        ]
    );
    assert_eq!(
        host.log(),
        [
            ok(Call::Release {
                base: other,
                size: 4 * P
            }),
            ok(Call::Release { base, size: 16 * P })
        ]
    );
    assert_eq!(take_acts(), [Act::Dealloc(0)]);
}

/// E8: batches larger than the internal chunk (16 entries) are processed completely, back to
/// front, with errors reported at their true indices.
fn e8_batches_larger_than_a_chunk_are_processed_completely<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let n = 40;
    let base = map.reserve(64 * P).unwrap();
    let keys = regions(&map, Prot::READ_EXEC, base, n);
    // Invalid entries around the chunk boundaries.
    let mut batch = keys.clone();
    for &at in &[0, 16, 17, 42] {
        batch.insert(at, base + 63 * P);
    }
    let (result, reported) = deinit_all(&map, &batch);
    assert_eq!(result, Err(Error::Batch { failed: 4 }));
    assert_eq!(
        sorted(reported),
        [0, 16, 17, 42].map(|i| (
            i,
            Error::UnknownKey {
                addr: base + 63 * P
            }
        ))
    );
    assert_eq!(
        take_acts(),
        (0..n as u32).rev().map(Act::Dealloc).collect::<Vec<_>>()
    );
    assert_eq!((map.region_count(), map.slab_count()), (0, 1));
    assert_free(&host, pages(base, base + n * P, P));
    host.check_map(&map).unwrap();
}

/// E8 for release_multiple: every slab of a full slab table plus invalid entries.
#[test]
fn e8_release_batch_larger_than_a_chunk() {
    let host = Fixture::new(P);
    let map: Map<'_, Fixed<20, 32, 64>> = JitMap::new(&*host);
    let bases: Vec<usize> = (0..20).map(|_| map.reserve(P).unwrap()).collect();
    let mut batch = bases.clone();
    batch.insert(5, 1);
    batch.insert(19, 3);
    host.clear_log();
    let (result, reported) = release_all(&map, &batch);
    assert_eq!(result, Err(Error::Batch { failed: 2 }));
    assert_eq!(
        reported,
        [
            (19, Error::NotInAnySlab { addr: 3 }),
            (5, Error::NotInAnySlab { addr: 1 })
        ]
    );
    let released: Vec<_> = bases
        .iter()
        .rev()
        .map(|&base| ok(Call::Release { base, size: P }))
        .collect();
    assert_eq!(host.log(), released);
    assert_eq!(map.slab_count(), 0);
}

/// E9: empty batches succeed and make no call.
fn e9_empty_batches_do_nothing<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(4 * P).unwrap();
    regions(&map, Prot::READ, base, 1);
    let before = snapshot(&host, &map);
    assert_eq!(deinit_all(&map, &[]), (Ok(()), vec![]));
    assert_eq!(release_all(&map, &[]), (Ok(()), vec![]));
    assert_eq!(take_acts(), []);
    assert_unchanged(&host, &map, &before);
}

/// Host calls merge over adjacent regions: 16 adjacent RX regions deinitialized in one batch
/// (in any order) cost exactly one protect and one discard over the whole range.
fn adjacent_regions_share_one_protect_and_one_discard<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(32 * P).unwrap();
    let mut keys = regions(&map, Prot::READ_EXEC, base, 16);
    keys.reverse();
    keys.swap(3, 11);
    keys.swap(0, 7);
    host.clear_log();
    assert_eq!(deinit_all(&map, &keys), (Ok(()), vec![]));
    assert_eq!(
        (host.count(HostOp::Protect), host.count(HostOp::Discard)),
        (1, 1)
    );
    let all = pages(base, base + 16 * P, P);
    assert_eq!(
        host.log(),
        [
            ok(Call::Protect {
                range: all,
                prot: Prot::READ_WRITE
            }),
            ok(Call::Discard { range: all })
        ]
    );
    assert_free(&host, all);
    host.check_map(&map).unwrap();

    // Mixed protections merge too; a gap splits the run; RW-only runs need no protect.
    let rx = regions(&map, Prot::READ_EXEC, base, 4);
    let rw: Vec<usize> = (4..8).map(|i| base + i * P).collect();
    for &key in &rw {
        assert_eq!(
            map.initialize(&req(&[Segment::new(Prot::READ_WRITE, key, P, &[])], &[])),
            Ok(key)
        );
    }
    let apart = regions(&map, Prot::READ_WRITE, base + 10 * P, 2);
    host.clear_log();
    let batch: Vec<usize> = rx.iter().chain(&rw).chain(&apart).copied().collect();
    assert_eq!(deinit_all(&map, &batch), (Ok(()), vec![]));
    let first = pages(base, base + 8 * P, P);
    let second = pages(base + 10 * P, base + 12 * P, P);
    assert_eq!(
        host.log(),
        [
            ok(Call::Protect {
                range: first,
                prot: Prot::READ_WRITE
            }),
            ok(Call::Discard { range: first }),
            ok(Call::Discard { range: second })
        ]
    );
    host.check_map(&map).unwrap();
}

/// A failed protect over a merged run is reported on every region of the run, each as
/// quarantined; every dealloc action still ran once; other runs are unaffected.
fn failed_merged_reset_reports_every_member<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(16 * P).unwrap();
    let joined = regions(&map, Prot::READ_EXEC, base, 3);
    let segs = [Segment::new(Prot::READ_EXEC, base + 5 * P, P, &[])];
    assert_eq!(map.initialize(&req(&segs, &[pair(9)])), Ok(base + 5 * P));
    clear_acts();
    host.clear_log();
    host.fail_nth(0, ENOMEM);
    let batch = [joined[0], joined[1], base + 5 * P, joined[2]];
    let (result, reported) = deinit_all(&map, &batch);
    assert_eq!(result, Err(Error::Batch { failed: 3 }));
    let quarantined = Error::Host {
        op: HostOp::Protect,
        segment: None,
        error: ENOMEM,
        quarantined: true,
        dealloc_failures: 0,
    };
    assert_eq!(
        sorted(reported),
        [(0, quarantined), (1, quarantined), (3, quarantined)]
    );
    assert_eq!(
        take_acts(),
        [
            Act::Dealloc(2),
            Act::Dealloc(9),
            Act::Dealloc(1),
            Act::Dealloc(0)
        ]
    );
    assert_eq!(map.region_count(), 0);
    host.check_map(&map).unwrap();
    assert_free(&host, pages(base + 5 * P, base + 6 * P, P));
    let stuck = [Segment::new(Prot::READ, base + 2 * P, P, &[])];
    assert_eq!(
        map.initialize(&req(&stuck, &[])),
        Err(Error::Overlap { segment: 0 })
    );
    assert_eq!(map.release(base), Ok(()));
    host.check_map(&map).unwrap();
}

/// Regions that touch across two adjacent slabs (the kernel places new mappings side by side,
/// and so does the recording host) never share a host call: each call stays inside one
/// reservation. Found by the `core_ops` fuzzer.
fn merged_runs_stop_at_slab_boundaries<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let a = map.reserve(4 * P).unwrap();
    let b = map.reserve(4 * P).unwrap();
    assert_eq!(b, a + 4 * P, "the recording host places slabs side by side");
    let end_of_a = regions(&map, Prot::READ_EXEC, a + 3 * P, 1);
    let start_of_b = regions(&map, Prot::READ_EXEC, b, 1);
    host.clear_log();
    let keys = [end_of_a[0], start_of_b[0]];
    assert_eq!(deinit_all(&map, &keys), (Ok(()), vec![]));
    let in_a = pages(a + 3 * P, a + 4 * P, P);
    let in_b = pages(b, b + P, P);
    assert_eq!(
        host.log(),
        [
            ok(Call::Protect {
                range: in_a,
                prot: Prot::READ_WRITE
            }),
            ok(Call::Discard { range: in_a }),
            ok(Call::Protect {
                range: in_b,
                prot: Prot::READ_WRITE
            }),
            ok(Call::Discard { range: in_b }),
        ]
    );
    host.check_map(&map).unwrap();
}

for_each_storage!(
    e6_duplicate_keys_in_deinitialize_multiple,
    e6_duplicate_keys_far_apart,
    e6_duplicate_bases_in_release_multiple,
    e7_mixed_batches_report_each_failure,
    e8_batches_larger_than_a_chunk_are_processed_completely,
    e9_empty_batches_do_nothing,
    adjacent_regions_share_one_protect_and_one_discard,
    failed_merged_reset_reports_every_member,
    merged_runs_stop_at_slab_boundaries,
);
