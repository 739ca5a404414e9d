//! One regression test per upstream defect W1-W10 (the ids of the README's table of differences
//! from upstream), each showing mapcore's fixed behaviour in the scenario where orc-rt's
//! `SimpleNativeMemoryMap` goes wrong.

pub mod common;

use common::*;
use mapcore::testing::Call;
use mapcore::{Error, HostOp, JitMap, Prot, Segment, Storage};

/// W1: orc-rt runs the finalize actions, then fails to record the region (key reused, or key
/// outside a slab) and silently drops its dealloc actions. mapcore refuses such a request
/// before any finalize action runs, and the live region keeps its dealloc actions, which run
/// exactly once.
fn w1_dealloc_actions_never_lost_on_key_reuse<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(8 * P).unwrap();
    // The live region's key page is not its own (zero-size key segment), so the clash is on
    // the key alone, as in orc-rt.
    let live = [
        Segment::new(Prot::READ, base, 0, &[]),
        Segment::new(Prot::READ_EXEC, base + 4 * P, P, &[]),
    ];
    assert_eq!(map.initialize(&req(&live, &[pair(0), pair(1)])), Ok(base));
    assert_eq!(take_acts(), [Act::Fin(0), Act::Fin(1)]);
    let reuse = [Segment::new(Prot::READ_WRITE, base, P, &[])];
    let before = snapshot(&host, &map);
    assert_eq!(
        map.initialize(&req(&reuse, &[pair(10), pair(11)])),
        Err(Error::KeyInUse { key: base })
    );
    assert_eq!(
        take_acts(),
        [],
        "no finalize action may run for a request that cannot be recorded"
    );
    assert_unchanged(&host, &map, &before);
    let outside = [Segment::new(Prot::READ_WRITE, base + 8 * P, P, &[])];
    assert_eq!(
        map.initialize(&req(&outside, &[pair(20)])),
        Err(Error::NotInSlab { segment: 0 })
    );
    assert_eq!(take_acts(), []);
    assert_eq!(map.deinitialize(base), Ok(()));
    assert_eq!(take_acts(), [Act::Dealloc(1), Act::Dealloc(0)]);
    assert_eq!(
        map.deinitialize(base),
        Err(Error::UnknownKey { addr: base })
    );
    assert_eq!(take_acts(), []);
}

/// W2: orc-rt copies, zero-fills and protects every segment before checking that any of
/// them lies in a slab. mapcore checks every segment first: a bad last segment means no
/// write to the good ones, no protect, no action.
fn w2_every_segment_validated_before_any_side_effect<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let a = map.reserve(4 * P).unwrap();
    let b = map.reserve(4 * P).unwrap();
    let content = pattern(64, 1);
    let good = Segment::new(Prot::READ_EXEC, a, P, &content);
    let cases = [
        (
            Segment::new(Prot::READ, b + 8 * P, P, &[]),
            Error::NotInSlab { segment: 1 },
        ),
        (
            Segment::new(Prot::READ, b + P, P, &[]),
            Error::SpansSlabs { segment: 1 },
        ),
        (
            Segment::new(Prot::READ, a + 3 * P, 2 * P, &[]),
            Error::SpansSlabs { segment: 1 },
        ),
    ];
    for (bad, expected) in cases {
        let before = snapshot(&host, &map);
        assert_eq!(
            map.initialize(&req(&[good, bad], &[pair(0)])),
            Err(expected)
        );
        assert_eq!(take_acts(), []);
        assert_unchanged(&host, &map, &before);
        assert_free(&host, pages(a, a + P, P));
    }
}

/// W3: orc-rt only catches an exact key collision; overlapping regions and overlapping
/// segments of one request go through. mapcore rejects both.
fn w3_overlaps_detected_between_regions_and_within_a_request<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(8 * P).unwrap();
    let code = pattern(3 * P, 2);
    let live = [Segment::new(Prot::READ_EXEC, base + P, 3 * P, &code)];
    assert_eq!(map.initialize(&req(&live, &[])), Ok(base + P));
    let before = snapshot(&host, &map);
    let straddling = [Segment::new(Prot::READ_WRITE, base, 2 * P, &[])];
    assert_eq!(
        map.initialize(&req(&straddling, &[])),
        Err(Error::Overlap { segment: 0 })
    );
    let inside = [
        Segment::new(Prot::READ_WRITE, base + 5 * P, P, &[]),
        Segment::new(Prot::READ, base + 3 * P, 1, &[]),
    ];
    assert_eq!(
        map.initialize(&req(&inside, &[])),
        Err(Error::Overlap { segment: 1 })
    );
    let twice = [
        Segment::new(Prot::READ, base + 5 * P, P, &[]),
        Segment::new(Prot::READ_WRITE, base + 5 * P, 10, &[]),
    ];
    assert_eq!(
        map.initialize(&req(&twice, &[])),
        Err(Error::SharedPage { segment: 1 })
    );
    assert_unchanged(&host, &map, &before);
    assert_segment(&host, &live[0], &code);
}

/// W4: orc-rt computes `Address + Size` unchecked. mapcore rejects a wrapping end.
fn w4_address_overflow_is_rejected_not_wrapped<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(4 * P).unwrap();
    let before = snapshot(&host, &map);
    // `base + size` wraps around to `base - P`, which a wrapping check might take for inside.
    let wrapping = [Segment::new(Prot::READ, base, usize::MAX - P + 1, &[])];
    assert_eq!(
        map.initialize(&req(&wrapping, &[])),
        Err(Error::Overflow { segment: 0 })
    );
    assert_unchanged(&host, &map, &before);
}

/// W5: orc-rt checks content sizes inside its write loop, so an error in segment N leaves
/// segments 0..N-1 written and protected. mapcore leaves no trace.
fn w5_invalid_later_segment_leaves_earlier_segments_untouched<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(8 * P).unwrap();
    let (c0, c1, long) = (pattern(100, 3), pattern(200, 4), pattern(P + 1, 5));
    let segs = [
        Segment::new(Prot::READ_EXEC, base, P, &c0),
        Segment::new(Prot::READ, base + P, P, &c1),
        Segment::new(Prot::READ_WRITE, base + 2 * P, P, &long),
    ];
    let before = snapshot(&host, &map);
    assert_eq!(
        map.initialize(&req(&segs, &[pair(0)])),
        Err(Error::ContentTooLong { segment: 2 })
    );
    assert_eq!(take_acts(), []);
    assert_unchanged(&host, &map, &before);
    assert_free(&host, pages(base, base + 3 * P, P));
}

/// W6: orc-rt never rolls back: a failed protect leaves earlier segments written and
/// protected. mapcore resets every touched page, including the failing call's range.
fn w6_initialize_failure_rolls_back_protections_and_contents<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(8 * P).unwrap();
    let (c0, c1) = (pattern(P, 6), pattern(2 * P, 7));
    let segs = [
        Segment::new(Prot::READ, base, P, &c0),
        Segment::new(Prot::READ_EXEC, base + 2 * P, 2 * P, &c1),
    ];
    host.clear_log();
    // Calls: protect R, protect RX (fails, half applied by the host).
    host.fail_nth(1, ENOMEM);
    assert_eq!(
        map.initialize(&req(&segs, &[pair(0)])),
        Err(Error::Host {
            op: HostOp::Protect,
            segment: Some(1),
            error: ENOMEM,
            quarantined: false,
            dealloc_failures: 0,
        })
    );
    assert_eq!(take_acts(), []);
    assert_free(&host, pages(base, base + 4 * P, P));
    assert_eq!(map.region_count(), 0);
    host.check_map(&map).unwrap();
    assert_eq!(map.initialize(&req(&segs, &[pair(0)])), Ok(base));
    assert_segment(&host, &segs[0], &c0);
    assert_segment(&host, &segs[1], &c1);
}

/// W7: orc-rt's deinitialize neither resets protections nor decommits, so re-initializing a
/// range that was R or RX faults while copying (LLVM's mapper reuses ranges). mapcore
/// resets the pages to read-write and discards them: the same range can be initialized
/// again at once, with any protections, and reads zero where nothing is written.
fn w7_deinitialize_resets_protections_for_reuse<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(8 * P).unwrap();
    let (code, data) = (pattern(2 * P, 8), pattern(P, 9));
    let first = [
        Segment::new(Prot::READ_EXEC, base, 2 * P, &code),
        Segment::new(Prot::READ, base + 2 * P, P, &data),
    ];
    assert_eq!(map.initialize(&req(&first, &[])), Ok(base));
    assert_eq!(map.deinitialize(base), Ok(()));
    assert_free(&host, pages(base, base + 3 * P, P));
    // Re-initialize the same range, writing through pages that were RX and R: the recording
    // host would panic (fault) on a write to a page that is not read-write.
    let small = pattern(10, 10);
    let second = [Segment::new(Prot::READ_WRITE, base, 3 * P, &small)];
    assert_eq!(map.initialize(&req(&second, &[])), Ok(base));
    assert_segment(&host, &second[0], &small);
    host.check_map(&map).unwrap();
}

/// W8: orc-rt copies and protects segment by segment, so a later segment on a page an
/// earlier one protected faults, and a partial last page leaks its protection. mapcore
/// rejects segments sharing a page, writes every byte before the first protect, and a
/// segment's rounded-up protection never reaches the next segment's page.
fn w8_all_content_written_before_any_protect<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(8 * P).unwrap();
    let (c0, c1) = (pattern(100, 11), pattern(200, 12));
    let sharing = [
        Segment::new(Prot::READ, base, 100, &c0),
        Segment::new(Prot::READ_WRITE, base + 128, 200, &c1),
    ];
    assert_eq!(
        map.initialize(&req(&sharing, &[])),
        Err(Error::Misaligned { segment: 1 })
    );
    let sharing = [
        Segment::new(Prot::READ, base, P + 1, &c0),
        Segment::new(Prot::READ_WRITE, base + P, 200, &c1),
    ];
    assert_eq!(
        map.initialize(&req(&sharing, &[])),
        Err(Error::SharedPage { segment: 1 })
    );
    let segs = [
        Segment::new(Prot::READ, base, 100, &c0),
        Segment::new(Prot::READ_WRITE, base + P, 200, &c1),
        Segment::new(Prot::READ_EXEC, base + 2 * P, 100, &c0),
    ];
    host.clear_log();
    assert_eq!(map.initialize(&req(&segs, &[])), Ok(base));
    let log = host.log();
    let writes: Vec<usize> = (0..log.len())
        .filter(|&i| matches!(log[i].call, Call::Write { .. }))
        .collect();
    let others: Vec<usize> = (0..log.len())
        .filter(|&i| log[i].call.op().is_some())
        .collect();
    assert_eq!(writes.len(), 3);
    assert!(writes.iter().max() < others.iter().min(), "{log:?}");
    assert_eq!(host.prot_at(base + P), Some(Prot::READ_WRITE));
    assert_segment(&host, &segs[0], &c0);
    assert_segment(&host, &segs[1], &c1);
    assert_segment(&host, &segs[2], &c0);
}

/// W9: orc-rt never frees Finalize-lifetime segments, and rejects a Finalize-only request
/// only after writing it. mapcore rejects it before writing, and frees Finalize segments
/// (read-write, discarded) before initialize returns.
fn w9_finalize_segments_freed_and_finalize_only_rejected<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(8 * P).unwrap();
    let scratch = pattern(P, 13);
    let only = [fin_seg(Prot::READ, base, P, &scratch)];
    let before = snapshot(&host, &map);
    assert_eq!(
        map.initialize(&req(&only, &[pair(0)])),
        Err(Error::NoStandardSegment)
    );
    assert_eq!(take_acts(), []);
    assert_unchanged(&host, &map, &before);
    let segs = [
        Segment::new(Prot::READ, base + 2 * P, P, &[]),
        fin_seg(Prot::READ_EXEC, base, 2 * P, &scratch),
    ];
    assert_eq!(map.initialize(&req(&segs, &[])), Ok(base + 2 * P));
    assert_free(&host, pages(base, base + 2 * P, P));
    host.check_map(&map).unwrap();
    let reuse = [Segment::new(Prot::READ_WRITE, base, 2 * P, &[])];
    assert_eq!(map.initialize(&req(&reuse, &[])), Ok(base));
}

/// W10: orc-rt's `reserve(0)` returns null as success and records a zero-size slab. mapcore
/// rejects it without a host call, and nothing is recorded at null.
fn w10_reserve_zero_is_rejected<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    assert_eq!(map.reserve(0), Err(Error::InvalidSize { size: 0 }));
    assert_eq!(host.log(), []);
    assert_eq!(map.slab_count(), 0);
    assert_eq!(map.release(0), Err(Error::NotInAnySlab { addr: 0 }));
}

for_each_storage!(
    w1_dealloc_actions_never_lost_on_key_reuse,
    w2_every_segment_validated_before_any_side_effect,
    w3_overlaps_detected_between_regions_and_within_a_request,
    w4_address_overflow_is_rejected_not_wrapped,
    w5_invalid_later_segment_leaves_earlier_segments_untouched,
    w6_initialize_failure_rolls_back_protections_and_contents,
    w7_deinitialize_resets_protections_for_reuse,
    w8_all_content_written_before_any_protect,
    w9_finalize_segments_freed_and_finalize_only_rejected,
    w10_reserve_zero_is_rejected,
);
