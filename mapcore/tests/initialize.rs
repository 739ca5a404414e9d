//! initialize: validation (catalogue rows B1-B13, every one before any side effect) and the
//! host calls of a successful initialize.

pub mod common;

use common::*;
use mapcore::testing::{Call, RecordingHost};
use mapcore::{
    ActionPair, Config, Error, HostOp, JitMap, Limit, Prot, Segment, Storage, MAX_ACTION_PAIRS,
    MAX_SEGMENTS,
};

/// Asserts that `segments` (with two action pairs attached) are rejected with `expected`, and
/// that nothing happened: no host call (not even a write), no action, same tables and pages.
#[track_caller]
fn assert_rejected<S: Storage>(
    host: &RecordingHost,
    map: &Map<'_, S>,
    segments: &[Segment<'_>],
    expected: E,
) {
    let before = snapshot(host, map);
    clear_acts();
    assert_eq!(
        map.initialize(&req(segments, &[pair(0), pair(1)])),
        Err(expected)
    );
    assert_eq!(take_acts(), [], "an action ran");
    assert_unchanged(host, map, &before);
}

/// B1: a request without segments, or with Finalize-lifetime segments only, has no key.
fn b1_no_standard_segment<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(8 * P).unwrap();
    assert_rejected(&host, &map, &[], Error::NoStandardSegment);
    let content = pattern(10, 1);
    let only_finalize = [
        fin_seg(Prot::READ_WRITE, base, P, &content),
        fin_seg(Prot::READ, base + P, P, &[]),
    ];
    assert_rejected(&host, &map, &only_finalize, Error::NoStandardSegment);
}

/// B1: at most `MAX_SEGMENTS` segments per request; one more is a capacity error.
fn b1_too_many_segments<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve((MAX_SEGMENTS + 1) * P).unwrap();
    let segs: Vec<Segment<'_>> = (0..=MAX_SEGMENTS)
        .map(|i| Segment::new(Prot::READ, base + i * P, P, &[]))
        .collect();
    assert_rejected(&host, &map, &segs, Error::CapacityExceeded(Limit::Segments));
    let key = map.initialize(&req(&segs[..MAX_SEGMENTS], &[])).unwrap();
    assert_eq!(key, base);
    assert_eq!(
        host.count(HostOp::Protect),
        1,
        "touching R segments merge into one protect"
    );
    host.check_map(&map).unwrap();
}

/// B1: at most `MAX_ACTION_PAIRS` pairs per request; one more is a capacity error.
fn b1_too_many_action_pairs<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(4 * P).unwrap();
    let segs = [Segment::new(Prot::READ_WRITE, base, P, &[])];
    let pairs: Vec<ActionPair> = (0..=MAX_ACTION_PAIRS as u32).map(pair).collect();
    let before = snapshot(&host, &map);
    assert_eq!(
        map.initialize(&req(&segs, &pairs)),
        Err(Error::CapacityExceeded(Limit::ActionPairs))
    );
    assert_eq!(take_acts(), []);
    assert_unchanged(&host, &map, &before);
    let full = &pairs[..MAX_ACTION_PAIRS];
    let key = map.initialize(&req(&segs, full)).unwrap();
    assert_eq!(take_acts(), fins_of(full));
    assert_eq!(map.deinitialize(key), Ok(()));
    assert_eq!(take_acts(), deallocs_of(full));
}

/// B2: a segment address that is not page-aligned is rejected, with its index.
fn b2_misaligned_address<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(8 * P).unwrap();
    for offset in [1, P / 2, P - 1] {
        let segs = [
            Segment::new(Prot::READ, base, P, &[]),
            Segment::new(Prot::READ, base + P + offset, P, &[]),
        ];
        assert_rejected(&host, &map, &segs, Error::Misaligned { segment: 1 });
    }
}

/// B2: zero-size segments are not an error: they are allowed anywhere in the slab, including
/// exactly at its end, and touch nothing; they may give the key.
fn b2_zero_size_segments_touch_nothing<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(4 * P).unwrap();
    // The slab right after, so that "exactly at the end" is also the next slab's base.
    let next = map.reserve(4 * P).unwrap();
    assert_eq!(
        next,
        base + 4 * P,
        "the recording host places slabs first-fit"
    );
    let content = pattern(100, 2);
    let segs = [
        Segment::new(Prot::READ_EXEC, base + 3 * P, 0, &[]),
        Segment::new(Prot::READ_WRITE, base + P, 100, &content),
        Segment::new(Prot::READ, base + 4 * P, 0, &[]),
        Segment::with_lifetime(
            Prot::READ,
            mapcore::Lifetime::Finalize,
            base + 2 * P,
            0,
            &[],
        ),
    ];
    host.clear_log();
    assert_eq!(map.initialize(&req(&segs, &[])), Ok(base + P));
    assert_eq!(
        host.log(),
        [ok(Call::Write {
            addr: base + P,
            len: 100
        })]
    );
    assert_segment(&host, &segs[1], &content);
    assert_free(&host, pages(base + 2 * P, base + 4 * P, P));
    assert_free(&host, pages(next, next + P, P));
    host.check_map(&map).unwrap();

    // A zero-size Standard segment as the key: the region owns no page at all.
    let segs = [Segment::new(Prot::READ, base + 3 * P, 0, &[])];
    host.clear_log();
    assert_eq!(map.initialize(&req(&segs, &[pair(7)])), Ok(base + 3 * P));
    assert_eq!(host.log(), []);
    assert_eq!(map.region_count(), 2);
    assert_eq!(map.deinitialize(base + 3 * P), Ok(()));
    assert_eq!(take_acts(), [Act::Fin(7), Act::Dealloc(7)]);
    assert_eq!(host.log(), []);
    host.check_map(&map).unwrap();
}

/// B2: sizes need not be page multiples; protection covers whole pages (the last one rounded
/// up) and the rest of the last page reads as zero.
fn b2_unaligned_size_rounds_protection_up<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(4 * P).unwrap();
    let content = pattern(P + 1, 3);
    let segs = [Segment::new(Prot::READ_EXEC, base, P + 1, &content)];
    host.clear_log();
    assert_eq!(map.initialize(&req(&segs, &[])), Ok(base));
    let two_pages = pages(base, base + 2 * P, P);
    assert_eq!(
        host.log(),
        [
            ok(Call::Write {
                addr: base,
                len: P + 1
            }),
            ok(Call::Protect {
                range: two_pages,
                prot: Prot::READ_EXEC
            }),
            ok(Call::FlushIcache { range: two_pages })
        ]
    );
    assert_segment(&host, &segs[0], &content);
    assert_free(&host, pages(base + 2 * P, base + 4 * P, P));
    host.check_map(&map).unwrap();
}

/// B3: an end that overflows the address space is rejected, never wrapped.
fn b3_address_overflow<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(4 * P).unwrap();
    let top = usize::MAX & !(P - 1);
    let ok_seg = Segment::new(Prot::READ, base, P, &[]);
    assert_rejected(
        &host,
        &map,
        &[ok_seg, Segment::new(Prot::READ, top, 2 * P, &[])],
        Error::Overflow { segment: 1 },
    );
    assert_rejected(
        &host,
        &map,
        &[ok_seg, Segment::new(Prot::READ, top, P, &[])],
        Error::Overflow { segment: 1 },
    );
    assert_rejected(
        &host,
        &map,
        &[Segment::new(Prot::READ, base, usize::MAX, &[]), ok_seg],
        Error::Overflow { segment: 0 },
    );
    assert_rejected(
        &host,
        &map,
        &[Segment::new(
            Prot::READ,
            base + P,
            usize::MAX - base - P,
            &[],
        )],
        Error::Overflow { segment: 0 },
    );
}

/// B4: a segment outside every slab, including one inside a released slab.
fn b4_segment_outside_every_slab<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let gone = map.reserve(4 * P).unwrap();
    let base = map.reserve(4 * P).unwrap();
    assert_eq!(map.release(gone), Ok(()));
    let inside = Segment::new(Prot::READ, base, P, &[]);
    for addr in [gone, gone + 2 * P, base + 4 * P, base + 64 * P, 0] {
        let segs = [inside, Segment::new(Prot::READ, addr, P, &[])];
        assert_rejected(&host, &map, &segs, Error::NotInSlab { segment: 1 });
        assert_rejected(
            &host,
            &map,
            &[Segment::new(Prot::READ, addr, P, &[])],
            Error::NotInSlab { segment: 0 },
        );
    }
}

/// B5: a segment that starts in a slab and runs past its end, into the adjacent slab or into
/// nothing, also when only the rounding of its size crosses the end.
fn b5_segment_crossing_slab_end<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let a = map.reserve(4 * P).unwrap();
    let b = map.reserve(4 * P).unwrap();
    assert_eq!(b, a + 4 * P, "the recording host places slabs first-fit");
    for (addr, size) in [
        (a + 3 * P, 2 * P),
        (a + 3 * P, P + 1),
        (a, 8 * P),
        (b + 3 * P, 2 * P),
        (b + 2 * P, 2 * P + 1),
    ] {
        assert_rejected(
            &host,
            &map,
            &[Segment::new(Prot::READ, addr, size, &[])],
            Error::SpansSlabs { segment: 0 },
        );
    }
    // Exactly up to the end is fine.
    let segs = [Segment::new(Prot::READ, a + 3 * P, P, &[])];
    assert_eq!(map.initialize(&req(&segs, &[])), Ok(a + 3 * P));
    host.check_map(&map).unwrap();
}

/// B6: the segments of one request must share one slab.
fn b6_segments_in_different_slabs<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let a = map.reserve(4 * P).unwrap();
    let b = map.reserve(4 * P).unwrap();
    let in_a = Segment::new(Prot::READ, a, P, &[]);
    let in_b = Segment::new(Prot::READ_WRITE, b + P, P, &[]);
    assert_rejected(&host, &map, &[in_a, in_b], Error::SpansSlabs { segment: 1 });
    assert_rejected(&host, &map, &[in_b, in_a], Error::SpansSlabs { segment: 0 });
    let fin_in_b = fin_seg(Prot::READ, b, P, &[]);
    assert_rejected(
        &host,
        &map,
        &[in_a, fin_in_b],
        Error::SpansSlabs { segment: 1 },
    );
}

/// B7: segments of one request that share a page, identical or not, also through rounding.
fn b7_segments_sharing_a_page<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(8 * P).unwrap();
    let seg = |prot, page: usize, size| Segment::new(prot, base + page * P, size, &[]);
    let cases: [(&[Segment<'_>], usize); 5] = [
        (&[seg(Prot::READ, 0, P), seg(Prot::READ, 0, P)], 1),
        (&[seg(Prot::READ, 0, 2 * P), seg(Prot::READ_EXEC, 1, P)], 1),
        (&[seg(Prot::READ, 0, P + 1), seg(Prot::READ_WRITE, 1, P)], 1),
        (
            &[
                seg(Prot::READ, 2, P),
                seg(Prot::READ, 4, P),
                seg(Prot::READ_WRITE, 1, 2 * P),
            ],
            2,
        ),
        (
            &[
                seg(Prot::READ, 3, P),
                fin_seg(Prot::READ_WRITE, base + 3 * P, 10, &[]),
            ],
            1,
        ),
    ];
    for (segs, later) in cases {
        assert_rejected(&host, &map, segs, Error::SharedPage { segment: later });
    }
}

/// B8: overlap with a live region anywhere, not only at its key; touching is fine.
fn b8_overlap_with_live_region_anywhere<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(16 * P).unwrap();
    let content = pattern(2 * P + 1, 4);
    // A live RX region on pages 2..5 (its size rounds up to the third page).
    let live = [Segment::new(
        Prot::READ_EXEC,
        base + 2 * P,
        2 * P + 1,
        &content,
    )];
    assert_eq!(map.initialize(&req(&live, &[pair(9)])), Ok(base + 2 * P));
    clear_acts();
    let seg = |prot, page: usize, size| Segment::new(prot, base + page * P, size, &[]);
    let cases: [(&[Segment<'_>], usize); 6] = [
        (&[seg(Prot::READ, 2, P)], 0),
        (&[seg(Prot::READ, 3, P)], 0),
        (&[seg(Prot::READ, 4, 1)], 0),
        (&[seg(Prot::READ_WRITE, 0, 2 * P + 1)], 0),
        (&[seg(Prot::READ_WRITE, 8, P), seg(Prot::READ, 1, 4 * P)], 1),
        (
            &[
                seg(Prot::READ_WRITE, 8, P),
                fin_seg(Prot::READ, base + 4 * P, P, &[]),
            ],
            1,
        ),
    ];
    for (segs, segment) in cases {
        assert_rejected(&host, &map, segs, Error::Overlap { segment });
    }
    assert_segment(&host, &live[0], &content);
    // Touching on both sides is not overlapping.
    let touching = [seg(Prot::READ, 1, P), seg(Prot::READ_WRITE, 5, P)];
    assert_eq!(map.initialize(&req(&touching, &[])), Ok(base + P));
    assert_segment(&host, &live[0], &content);
    host.check_map(&map).unwrap();
    assert_eq!(map.region_count(), 2);
}

/// B9: content longer than its segment (size + 1 is the edge) is rejected; equal is fine.
fn b9_content_longer_than_segment<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(8 * P).unwrap();
    let content = pattern(P + 1, 5);
    let ok_seg = Segment::new(Prot::READ, base, P, &[]);
    assert_rejected(
        &host,
        &map,
        &[
            ok_seg,
            Segment::new(Prot::READ, base + P, 100, &content[..101]),
        ],
        Error::ContentTooLong { segment: 1 },
    );
    assert_rejected(
        &host,
        &map,
        &[Segment::new(Prot::READ, base, P, &content)],
        Error::ContentTooLong { segment: 0 },
    );
    assert_rejected(
        &host,
        &map,
        &[Segment::new(Prot::READ, base, 0, &content[..1])],
        Error::ContentTooLong { segment: 0 },
    );
    assert_rejected(
        &host,
        &map,
        &[Segment::in_place(Prot::READ, base, 10, 11)],
        Error::ContentTooLong { segment: 0 },
    );
    let exact = [Segment::new(Prot::READ, base, 100, &content[..100])];
    assert_eq!(map.initialize(&req(&exact, &[])), Ok(base));
    assert_segment(&host, &exact[0], &content[..100]);
}

/// B10: a key that is already the key of a live region is refused before any finalize
/// action runs, and the live region keeps its dealloc actions.
fn b10_key_in_use_detected_before_side_effects<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(8 * P).unwrap();
    // A region whose key page is not its own: a zero-size Standard segment at `base`.
    let first = [
        Segment::new(Prot::READ, base, 0, &[]),
        Segment::new(Prot::READ_WRITE, base + 2 * P, P, &[]),
    ];
    assert_eq!(map.initialize(&req(&first, &[pair(5)])), Ok(base));
    clear_acts();
    assert_rejected(
        &host,
        &map,
        &[Segment::new(Prot::READ_WRITE, base, P, &[])],
        Error::KeyInUse { key: base },
    );
    // The usual case, the same request again, is an overlap.
    let second = [Segment::new(Prot::READ, base + 4 * P, P, &[])];
    assert_eq!(map.initialize(&req(&second, &[])), Ok(base + 4 * P));
    assert_rejected(&host, &map, &second, Error::Overlap { segment: 0 });
    assert_eq!(map.deinitialize(base), Ok(()));
    assert_eq!(take_acts(), [Act::Dealloc(5)]);
}

/// B12: W+X segments are refused unless the map allows them.
fn b12_write_execute_rejected_unless_allowed<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(4 * P).unwrap();
    let ok_seg = Segment::new(Prot::READ, base, P, &[]);
    for wx in [Prot::ALL, Prot::WRITE | Prot::EXEC] {
        assert_rejected(
            &host,
            &map,
            &[ok_seg, Segment::new(wx, base + P, P, &[])],
            Error::WriteExecute { segment: 1 },
        );
        assert_rejected(
            &host,
            &map,
            &[ok_seg, fin_seg(wx, base + P, P, &[])],
            Error::WriteExecute { segment: 1 },
        );
    }
    drop(map);
    let allowing = Config {
        allow_write_exec: true,
        ..Config::DEFAULT
    };
    let map: Map<'_, S> = JitMap::with_config(&*host, allowing);
    let base = map.reserve(4 * P).unwrap();
    let content = pattern(64, 6);
    let segs = [Segment::new(Prot::ALL, base, P, &content)];
    assert_eq!(map.initialize(&req(&segs, &[])), Ok(base));
    assert_segment(&host, &segs[0], &content);
    host.check_map(&map).unwrap();
}

/// B13: empty content, content exactly the size, a PROT_NONE segment with content: all fine;
/// every byte is written while the pages are still writable, before any protect.
fn b13_content_edge_cases<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(8 * P).unwrap();
    let exact = pattern(100, 7);
    let hidden = pattern(50, 8);
    let segs = [
        Segment::new(Prot::READ_WRITE, base, P, &[]),
        Segment::new(Prot::READ, base + P, 100, &exact),
        Segment::new(Prot::NONE, base + 3 * P, P, &hidden),
    ];
    host.clear_log();
    assert_eq!(map.initialize(&req(&segs, &[])), Ok(base));
    assert_segment(&host, &segs[0], &[]);
    assert_segment(&host, &segs[1], &exact);
    assert_segment(&host, &segs[2], &hidden);
    let log = host.log();
    let last_write = log
        .iter()
        .rposition(|e| matches!(e.call, Call::Write { .. }))
        .unwrap();
    let first_protect = log
        .iter()
        .position(|e| matches!(e.call, Call::Protect { .. }))
        .unwrap();
    assert!(
        last_write < first_protect,
        "content written after a protect: {log:?}"
    );
    assert_eq!(host.count(HostOp::Protect), 2);
    host.check_map(&map).unwrap();
}

/// The host calls of a successful initialize, exactly: content written once (fresh pages are
/// not zero-filled), one icache flush per executable run, one protect per maximal run of
/// equal non-RW protection, none for RW pages.
fn initialize_makes_minimal_host_calls<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(8 * P).unwrap();
    let (c0, c1, c2, c3) = (
        pattern(10, 1),
        pattern(P, 2),
        pattern(20, 3),
        pattern(30, 4),
    );
    let segs = [
        Segment::new(Prot::READ_EXEC, base + 3 * P, P, &c2),
        Segment::new(Prot::READ_WRITE, base, P, &c0),
        Segment::new(Prot::READ_EXEC, base + P, 2 * P, &c1),
        Segment::new(Prot::READ, base + 6 * P, 40, &c3),
    ];
    host.clear_log();
    assert_eq!(map.initialize(&req(&segs, &[])), Ok(base));
    let mut log = host.log();
    let mut writes: Vec<_> = log
        .iter()
        .filter(|e| matches!(e.call, Call::Write { .. }))
        .copied()
        .collect();
    writes.sort_by_key(|e| match e.call {
        Call::Write { addr, .. } => addr,
        _ => 0,
    });
    assert_eq!(
        writes,
        [
            ok(Call::Write {
                addr: base,
                len: 10
            }),
            ok(Call::Write {
                addr: base + P,
                len: P
            }),
            ok(Call::Write {
                addr: base + 3 * P,
                len: 20
            }),
            ok(Call::Write {
                addr: base + 6 * P,
                len: 30
            }),
        ]
    );
    log.retain(|e| !matches!(e.call, Call::Write { .. }));
    let exec = pages(base + P, base + 4 * P, P);
    let mut rest = log.clone();
    rest.sort_by_key(|e| format!("{:?}", e.call));
    let mut expected = vec![
        ok(Call::FlushIcache { range: exec }),
        ok(Call::Protect {
            range: exec,
            prot: Prot::READ_EXEC,
        }),
        ok(Call::Protect {
            range: pages(base + 6 * P, base + 7 * P, P),
            prot: Prot::READ,
        }),
    ];
    expected.sort_by_key(|e| format!("{:?}", e.call));
    assert_eq!(rest, expected);
    for (seg, content) in segs.iter().zip([&c2, &c0, &c1, &c3]) {
        assert_segment(&host, seg, content);
    }
    host.check_map(&map).unwrap();

    // A read-write-only request needs no protect and no flush.
    let rw = [Segment::new(Prot::READ_WRITE, base + 4 * P, 2 * P, &c0)];
    host.clear_log();
    assert_eq!(map.initialize(&req(&rw, &[])), Ok(base + 4 * P));
    assert_eq!(
        host.log(),
        [ok(Call::Write {
            addr: base + 4 * P,
            len: 10
        })]
    );
}

/// In-place content (the Cranelift path): bytes written into free pages before initialize
/// are kept, not copied and not zeroed; the rest reads as zero.
fn in_place_content_is_kept<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(4 * P).unwrap();
    let code = pattern(P + 8, 9);
    host.poke(base + P, &code);
    let segs = [Segment::in_place(
        Prot::READ_EXEC,
        base + P,
        2 * P,
        code.len(),
    )];
    host.clear_log();
    assert_eq!(map.initialize(&req(&segs, &[])), Ok(base + P));
    assert_eq!(host.count(HostOp::Protect), 1);
    assert!(host
        .log()
        .iter()
        .all(|e| !matches!(e.call, Call::Write { .. } | Call::FillZero { .. })));
    assert_segment(&host, &segs[0], &code);
    host.check_map(&map).unwrap();
}

/// Finalize-lifetime segments are written, protected and visible to the finalize actions,
/// then reset to read-write and discarded before initialize returns; they never belong to
/// the region.
fn finalize_lifetime_segments_are_freed_before_return<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(8 * P).unwrap();
    let scratch = pattern(P, 10);
    let code = pattern(64, 11);
    let segs = [
        Segment::new(Prot::READ_EXEC, base, P, &code),
        fin_seg(Prot::READ, base + 2 * P, P, &scratch),
    ];
    // The finalize action reads the Finalize segment while it is still there.
    let pairs = [ActionPair {
        finalize: Some(read_action(0, base + 2 * P)),
        dealloc: None,
    }];
    host.clear_log();
    assert_eq!(map.initialize(&req(&segs, &pairs)), Ok(base));
    assert_eq!(
        sentinel(0),
        u64::from_ne_bytes(scratch[..8].try_into().unwrap())
    );
    let log = host.log();
    let scratch_pages = pages(base + 2 * P, base + 3 * P, P);
    assert_eq!(
        log[log.len() - 2..],
        [
            ok(Call::Protect {
                range: scratch_pages,
                prot: Prot::READ_WRITE
            }),
            ok(Call::Discard {
                range: scratch_pages
            })
        ]
    );
    assert_free(&host, scratch_pages);
    assert_segment(&host, &segs[0], &code);
    host.check_map(&map).unwrap();
    // The freed pages can be used at once by another region.
    let reuse = [Segment::new(Prot::READ, base + 2 * P, P, &[])];
    assert_eq!(map.initialize(&req(&reuse, &[])), Ok(base + 2 * P));
    // The first region's deinitialize does not touch them.
    host.clear_log();
    assert_eq!(map.deinitialize(base), Ok(()));
    let first = pages(base, base + P, P);
    assert_eq!(
        host.log(),
        [
            ok(Call::Protect {
                range: first,
                prot: Prot::READ_WRITE
            }),
            ok(Call::Discard { range: first })
        ]
    );
    assert_eq!(host.prot_at(base + 2 * P), Some(Prot::READ));
    host.check_map(&map).unwrap();
}

for_each_storage!(
    b1_no_standard_segment,
    b1_too_many_segments,
    b1_too_many_action_pairs,
    b2_misaligned_address,
    b2_zero_size_segments_touch_nothing,
    b2_unaligned_size_rounds_protection_up,
    b3_address_overflow,
    b4_segment_outside_every_slab,
    b5_segment_crossing_slab_end,
    b6_segments_in_different_slabs,
    b7_segments_sharing_a_page,
    b8_overlap_with_live_region_anywhere,
    b9_content_longer_than_segment,
    b10_key_in_use_detected_before_side_effects,
    b12_write_execute_rejected_unless_allowed,
    b13_content_edge_cases,
    initialize_makes_minimal_host_calls,
    in_place_content_is_kept,
    finalize_lifetime_segments_are_freed_before_return,
);
