//! deinitialize: catalogue rows D1-D3 and D9, the discard policies, the host capabilities,
//! and host failures while pages are reset.

pub mod common;

use common::*;
use mapcore::testing::{Call, RecordingHost};
use mapcore::{
    Capabilities, Config, DiscardPolicy, Error, HostOp, JitMap, Lifetime, Prot, Segment, Storage,
};

/// A region of three segments: RX (2 pages) and R touching, RW after a gap of one page;
/// pairs 0, 1, 2; its key is `base + P`. Returns the segments.
fn three_segment_region<'c, S: Storage>(
    map: &Map<'_, S>,
    base: usize,
    contents: &'c [Vec<u8>; 3],
) -> [Segment<'c>; 3] {
    let segs = [
        Segment::new(Prot::READ_EXEC, base + P, 2 * P, &contents[0]),
        Segment::new(Prot::READ, base + 3 * P, 100, &contents[1]),
        Segment::new(Prot::READ_WRITE, base + 5 * P, P, &contents[2]),
    ];
    assert_eq!(
        map.initialize(&req(&segs, &[pair(0), pair(1), pair(2)])),
        Ok(base + P)
    );
    clear_acts();
    segs
}

fn contents() -> [Vec<u8>; 3] {
    [pattern(2 * P, 1), pattern(100, 2), pattern(P, 3)]
}

/// D1: the second deinitialize of a key fails with UnknownKey; no action runs twice and no
/// host call is made.
fn d1_deinitialize_twice<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(8 * P).unwrap();
    let c = contents();
    three_segment_region(&map, base, &c);
    assert_eq!(map.deinitialize(base + P), Ok(()));
    assert_eq!(
        take_acts(),
        [Act::Dealloc(2), Act::Dealloc(1), Act::Dealloc(0)]
    );
    let before = snapshot(&host, &map);
    assert_eq!(
        map.deinitialize(base + P),
        Err(Error::UnknownKey { addr: base + P })
    );
    assert_eq!(take_acts(), []);
    assert_unchanged(&host, &map, &before);
}

/// D2: an address that is no key, one inside a region, and one outside every slab are three
/// distinct errors, and none changes anything.
fn d2_unknown_interior_and_outside_addresses<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let released = map.reserve(4 * P).unwrap();
    let base = map.reserve(8 * P).unwrap();
    assert_eq!(map.release(released), Ok(()));
    let c = contents();
    // A region with a Finalize segment on page 7, freed again by initialize.
    let scratch = pattern(10, 9);
    let segs = [
        Segment::new(Prot::READ, base + 6 * P, P, &[]),
        fin_seg(Prot::READ, base + 7 * P, P, &scratch),
    ];
    assert_eq!(map.initialize(&req(&segs, &[pair(8)])), Ok(base + 6 * P));
    three_segment_region(&map, base, &c);
    let before = snapshot(&host, &map);
    let cases = [
        (base, Error::UnknownKey { addr: base }),
        (base + 4 * P, Error::UnknownKey { addr: base + 4 * P }),
        (base + 7 * P, Error::UnknownKey { addr: base + 7 * P }),
        (base + P + 8, Error::InteriorAddress { addr: base + P + 8 }),
        (base + 2 * P, Error::InteriorAddress { addr: base + 2 * P }),
        (base + 3 * P, Error::InteriorAddress { addr: base + 3 * P }),
        (
            base + 5 * P + P - 1,
            Error::InteriorAddress {
                addr: base + 6 * P - 1,
            },
        ),
        (base + 8 * P, Error::NotInAnySlab { addr: base + 8 * P }),
        (released + P, Error::NotInAnySlab { addr: released + P }),
        (base - 1, Error::NotInAnySlab { addr: base - 1 }),
        (0, Error::NotInAnySlab { addr: 0 }),
        (usize::MAX, Error::NotInAnySlab { addr: usize::MAX }),
    ];
    for (addr, expected) in cases {
        assert_eq!(map.deinitialize(addr), Err(expected), "{addr:#x}");
    }
    assert_eq!(take_acts(), []);
    assert_unchanged(&host, &map, &before);
    assert_eq!(map.region_count(), 2);
}

/// D3: a failing dealloc action: all the others still run (newest first), the pages are
/// reset and discarded, the region is gone, and the error counts the failures.
fn d3_dealloc_failure_still_frees_the_region<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(8 * P).unwrap();
    let c = contents();
    let segs = three_segment_region(&map, base, &c);
    fail_action(Act::Dealloc(1));
    assert_eq!(
        map.deinitialize(base + P),
        Err(Error::DeallocFailed { failed: 1 })
    );
    assert_eq!(
        take_acts(),
        [Act::Dealloc(2), Act::Dealloc(1), Act::Dealloc(0)]
    );
    for seg in &segs {
        assert_free(&host, seg_pages(seg, P));
    }
    assert_eq!(map.region_count(), 0);
    host.check_map(&map).unwrap();
    // Not deinitializable again: nothing runs twice.
    assert_eq!(
        map.deinitialize(base + P),
        Err(Error::UnknownKey { addr: base + P })
    );
    assert_eq!(take_acts(), []);
    // And the pages are reusable at once.
    let again = three_segment_region(&map, base, &c);
    assert_segment(&host, &again[0], &c[0]);
}

/// The host calls of deinitialize, exactly: per run of touching pages, one protect back to
/// read-write if any page in it is not read-write, and one discard.
fn deinitialize_makes_minimal_host_calls<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(8 * P).unwrap();
    let c = contents();
    three_segment_region(&map, base, &c);
    host.clear_log();
    assert_eq!(map.deinitialize(base + P), Ok(()));
    let touching = pages(base + P, base + 4 * P, P);
    let rw = pages(base + 5 * P, base + 6 * P, P);
    assert_eq!(
        host.log(),
        [
            ok(Call::Protect {
                range: touching,
                prot: Prot::READ_WRITE
            }),
            ok(Call::Discard { range: touching }),
            ok(Call::Discard { range: rw })
        ]
    );
    // A read-write region needs no protect at all.
    let segs = [Segment::new(Prot::READ_WRITE, base, 3 * P, &c[1])];
    assert_eq!(map.initialize(&req(&segs, &[])), Ok(base));
    host.clear_log();
    assert_eq!(map.deinitialize(base), Ok(()));
    assert_eq!(
        host.log(),
        [ok(Call::Discard {
            range: pages(base, base + 3 * P, P)
        })]
    );
    host.check_map(&map).unwrap();
}

/// D9: after deinitialize the pages are read-write again (the protection of free pages) and
/// discarded; a fresh initialize of the same range without content, with any protections,
/// reads all zeros.
/// Repeated with every byte set to 0xFE (wasmtime's `memory_zeroed`, CVE-2022-39393).
fn d9_pages_reused_after_deinitialize_read_zero<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(8 * P).unwrap();
    let fe = vec![0xFE; 4 * P];
    let prots = [Prot::READ_EXEC, Prot::READ, Prot::NONE, Prot::READ_WRITE];
    let rounds = if cfg!(miri) { 2 } else { 10 };
    for round in 0..rounds {
        let prot = prots[round % prots.len()];
        let next = prots[(round + 1) % prots.len()];
        let full = [Segment::new(prot, base + P, 4 * P, &fe)];
        assert_eq!(map.initialize(&req(&full, &[])), Ok(base + P));
        assert_segment(&host, &full[0], &fe);
        assert_eq!(map.deinitialize(base + P), Ok(()));
        assert_free(&host, pages(base + P, base + 5 * P, P));
        host.check_map(&map).unwrap();
        host.clear_log();
        let empty = [Segment::new(next, base + P, 4 * P, &[])];
        assert_eq!(map.initialize(&req(&empty, &[])), Ok(base + P));
        // Discarded pages are known zero: no zero-fill needed.
        assert_eq!(
            host.count(HostOp::Protect),
            usize::from(next != Prot::READ_WRITE)
        );
        assert!(host
            .log()
            .iter()
            .all(|e| !matches!(e.call, Call::FillZero { .. } | Call::Write { .. })));
        assert_segment(&host, &empty[0], &[]);
        assert_eq!(map.deinitialize(base + P), Ok(()));
    }
}

/// The retain policy: deinitialize keeps the contents (no discard), and initialize then
/// zero-fills reused pages itself, so they still read as zero.
fn retain_policy_zero_fills_on_reuse<S: Storage>() {
    let host = Fixture::new(P);
    let retain = Config {
        discard: DiscardPolicy::Retain,
        ..Config::DEFAULT
    };
    let map: Map<'_, S> = JitMap::with_config(&*host, retain);
    let base = map.reserve(8 * P).unwrap();
    let c = contents();
    three_segment_region(&map, base, &c);
    host.clear_log();
    assert_eq!(map.deinitialize(base + P), Ok(()));
    let touching = pages(base + P, base + 4 * P, P);
    assert_eq!(
        host.log(),
        [ok(Call::Protect {
            range: touching,
            prot: Prot::READ_WRITE
        })]
    );
    // The old bytes are still there, in free pages.
    assert_eq!(host.read(base + P, 16), c[0][..16]);
    host.check_map(&map).unwrap();
    // Reuse with less content: the tail is zero-filled.
    let short = pattern(8, 4);
    let reuse = [Segment::new(Prot::READ, base + P, 5 * P, &short)];
    host.clear_log();
    assert_eq!(map.initialize(&req(&reuse, &[])), Ok(base + P));
    assert!(host.log().contains(&ok(Call::FillZero {
        addr: base + P + 8,
        len: 5 * P - 8
    })));
    assert_segment(&host, &reuse[0], &short);
    host.check_map(&map).unwrap();
}

/// Under the retain policy, pages never claimed before are fresh from the host and read as
/// zero: initialize zero-fills only what earlier regions of the slab may have left behind.
fn retain_policy_zero_fills_only_pages_claimed_before<S: Storage>() {
    let host = Fixture::new(P);
    let retain = Config {
        discard: DiscardPolicy::Retain,
        ..Config::DEFAULT
    };
    let map: Map<'_, S> = JitMap::with_config(&*host, retain);
    let base = map.reserve(16 * P).unwrap();
    let zero_fills = || {
        host.log()
            .iter()
            .filter_map(|e| match e.call {
                Call::FillZero { addr, len } => Some((addr, len)),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    // Fresh pages, short content: nothing to zero.
    let short = pattern(8, 5);
    let first = [Segment::new(Prot::READ, base + 2 * P, 2 * P, &short)];
    host.clear_log();
    assert_eq!(map.initialize(&req(&first, &[])), Ok(base + 2 * P));
    assert_eq!(zero_fills(), []);
    assert_segment(&host, &first[0], &short);
    assert_eq!(map.deinitialize(base + 2 * P), Ok(()));
    // Overlapping the old pages and fresh ones on both sides: only the old pages are zeroed.
    let second = [Segment::new(Prot::READ, base + P, 4 * P, &[])];
    host.clear_log();
    assert_eq!(map.initialize(&req(&second, &[])), Ok(base + P));
    assert_eq!(zero_fills(), [(base + 2 * P, 2 * P)]);
    assert_segment(&host, &second[0], &[]);
    host.check_map(&map).unwrap();
    // A region elsewhere widens what counts as claimed before: everything in between too.
    let far = [Segment::new(Prot::READ, base + 10 * P, P, &short)];
    assert_eq!(map.initialize(&req(&far, &[])), Ok(base + 10 * P));
    assert_eq!(map.deinitialize(base + 10 * P), Ok(()));
    let between = [Segment::new(Prot::READ, base + 6 * P, 2 * P, &short)];
    host.clear_log();
    assert_eq!(map.initialize(&req(&between, &[])), Ok(base + 6 * P));
    assert_eq!(zero_fills(), [(base + 6 * P + 8, 2 * P - 8)]);
    host.check_map(&map).unwrap();
}

/// A host that cannot discard: deinitialize does not try, initialize zero-fills reused pages.
fn host_without_discard_gets_zero_filled_pages<S: Storage>() {
    let host = Fixture::with_host(RecordingHost::with_capabilities(
        P,
        Capabilities {
            discard: false,
            reuse_executable: true,
            writes_through_alias: false,
        },
    ));
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(8 * P).unwrap();
    let c = contents();
    three_segment_region(&map, base, &c);
    host.clear_log();
    assert_eq!(map.deinitialize(base + P), Ok(()));
    assert_eq!(host.count(HostOp::Discard), 0);
    let reuse = [Segment::new(Prot::READ_EXEC, base, 6 * P, &[])];
    host.clear_log();
    assert_eq!(map.initialize(&req(&reuse, &[])), Ok(base));
    // Only the pages claimed before: the page at `base` is fresh from the host.
    assert!(host.log().contains(&ok(Call::FillZero {
        addr: base + P,
        len: 5 * P
    })));
    assert_segment(&host, &reuse[0], &[]);
    host.check_map(&map).unwrap();
}

/// A host whose executable pages may not be reused: deinitialize frees the other pages but
/// never hands the executable ones out again; releasing the slab still works.
fn host_without_exec_reuse_quarantines_executable_pages<S: Storage>() {
    let host = Fixture::with_host(RecordingHost::with_capabilities(
        P,
        Capabilities {
            discard: true,
            reuse_executable: false,
            writes_through_alias: false,
        },
    ));
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(8 * P).unwrap();
    let c = contents();
    three_segment_region(&map, base, &c);
    host.clear_log();
    assert_eq!(map.deinitialize(base + P), Ok(()));
    assert_eq!(
        take_acts(),
        [Act::Dealloc(2), Act::Dealloc(1), Act::Dealloc(0)]
    );
    // Only the non-executable pages were reset.
    let r = pages(base + 3 * P, base + 4 * P, P);
    let rw = pages(base + 5 * P, base + 6 * P, P);
    assert_eq!(
        host.log(),
        [
            ok(Call::Protect {
                range: r,
                prot: Prot::READ_WRITE
            }),
            ok(Call::Discard { range: r }),
            ok(Call::Discard { range: rw })
        ]
    );
    assert_eq!(host.prot_at(base + P), Some(Prot::READ_EXEC));
    host.check_map(&map).unwrap();
    let exec_again = [Segment::new(Prot::READ_WRITE, base + 2 * P, P, &[])];
    assert_eq!(
        map.initialize(&req(&exec_again, &[])),
        Err(Error::Overlap { segment: 0 })
    );
    let others = [Segment::new(Prot::READ_WRITE, base + 3 * P, 3 * P, &[])];
    assert_eq!(map.initialize(&req(&others, &[])), Ok(base + 3 * P));
    assert_eq!(map.deinitialize(base + 3 * P), Ok(()));
    assert_eq!(map.release(base), Ok(()));
    assert_eq!(host.reservations(), []);
    host.check_map(&map).unwrap();
}

/// A failing discard during deinitialize: the pages are zero-filled instead; deinitialize
/// succeeds and the pages read zero.
fn failed_discard_during_deinitialize_zero_fills<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(8 * P).unwrap();
    let c = contents();
    let segs = three_segment_region(&map, base, &c);
    host.clear_log();
    host.fail_op(HostOp::Discard, ENOMEM);
    assert_eq!(map.deinitialize(base + P), Ok(()));
    host.clear_faults();
    let touching = pages(base + P, base + 4 * P, P);
    let rw = pages(base + 5 * P, base + 6 * P, P);
    assert_eq!(
        host.log(),
        [
            ok(Call::Protect {
                range: touching,
                prot: Prot::READ_WRITE
            }),
            failed(Call::Discard { range: touching }),
            ok(Call::FillZero {
                addr: touching.start(),
                len: touching.len()
            }),
            failed(Call::Discard { range: rw }),
            ok(Call::FillZero {
                addr: rw.start(),
                len: rw.len()
            }),
        ]
    );
    assert_eq!(
        take_acts(),
        [Act::Dealloc(2), Act::Dealloc(1), Act::Dealloc(0)]
    );
    for seg in &segs {
        assert_free(&host, seg_pages(seg, P));
    }
    host.check_map(&map).unwrap();
}

/// A failing protect back to read-write during deinitialize: every dealloc action still
/// runs once, the region is gone, its pages are quarantined (never handed out again) and
/// the error says so; the other runs are still reset; the slab can be released.
fn failed_reset_during_deinitialize_quarantines<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(8 * P).unwrap();
    let c = contents();
    three_segment_region(&map, base, &c);
    host.clear_log();
    host.fail_nth(0, ENOMEM);
    assert_eq!(
        map.deinitialize(base + P),
        Err(Error::Host {
            op: HostOp::Protect,
            segment: None,
            error: ENOMEM,
            quarantined: true,
            dealloc_failures: 0,
        })
    );
    assert_eq!(
        take_acts(),
        [Act::Dealloc(2), Act::Dealloc(1), Act::Dealloc(0)]
    );
    assert_eq!(map.region_count(), 0);
    host.check_map(&map).unwrap();
    // The key is no key any more; deinitializing it again runs nothing.
    let before = snapshot(&host, &map);
    assert_eq!(
        map.deinitialize(base + P),
        Err(Error::UnknownKey { addr: base + P })
    );
    assert_eq!(take_acts(), []);
    assert_unchanged(&host, &map, &before);
    let stuck = [Segment::new(Prot::READ_WRITE, base + 2 * P, P, &[])];
    assert_eq!(
        map.initialize(&req(&stuck, &[])),
        Err(Error::Overlap { segment: 0 })
    );
    let free = [
        Segment::new(Prot::READ, base, P, &[]),
        Segment::new(Prot::READ, base + 4 * P, P, &[]),
    ];
    assert_eq!(map.initialize(&req(&free, &[])), Ok(base));
    assert_eq!(map.release(base), Ok(()));
    assert_eq!(host.reservations(), []);
}

/// Finalize-lifetime pages do not belong to the region: its deinitialize leaves a region
/// that took them over alone.
fn finalize_pages_are_not_part_of_the_region<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(8 * P).unwrap();
    let segs = [
        Segment::new(Prot::READ, base, P, &[]),
        Segment::with_lifetime(Prot::READ_EXEC, Lifetime::Finalize, base + P, P, &[]),
    ];
    assert_eq!(map.initialize(&req(&segs, &[])), Ok(base));
    let taker = [Segment::new(Prot::READ_EXEC, base + P, P, &[])];
    assert_eq!(map.initialize(&req(&taker, &[])), Ok(base + P));
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
    assert_eq!(host.prot_at(base + P), Some(Prot::READ_EXEC));
    host.check_map(&map).unwrap();
}

for_each_storage!(
    d1_deinitialize_twice,
    d2_unknown_interior_and_outside_addresses,
    d3_dealloc_failure_still_frees_the_region,
    deinitialize_makes_minimal_host_calls,
    d9_pages_reused_after_deinitialize_read_zero,
    retain_policy_zero_fills_on_reuse,
    retain_policy_zero_fills_only_pages_claimed_before,
    host_without_discard_gets_zero_filled_pages,
    host_without_exec_reuse_quarantines_executable_pages,
    failed_discard_during_deinitialize_zero_fills,
    failed_reset_during_deinitialize_quarantines,
    finalize_pages_are_not_part_of_the_region,
);
