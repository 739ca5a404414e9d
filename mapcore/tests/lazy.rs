//! Lazy protection, on a host that writes through an alias (`writes_through_alias`, as a
//! dual-mapped host does): freed pages keep their protection, their old bytes overwritten
//! (trap bytes where they were executable), and initialize protects only the pages whose
//! protection differs from the request's.

pub mod common;

use common::*;
use mapcore::testing::{Call, FakeError, RecordingHost};
use mapcore::{Config, DiscardPolicy, Error, Fixed, HostOp, JitMap, Prot, Segment, Storage};

const TRAP: u8 = RecordingHost::TRAP_BYTE;

/// A lazy map with `policy` over an aliased recording host.
fn aliased() -> Fixture {
    Fixture::with_host(RecordingHost::aliased(P))
}

fn config(policy: DiscardPolicy) -> Config {
    Config {
        discard: policy,
        ..Config::DEFAULT
    }
}

/// The protect calls of the log.
fn protects(host: &RecordingHost) -> Vec<(PageRangeT, Prot)> {
    host.log()
        .iter()
        .filter_map(|e| match e.call {
            Call::Protect { range, prot } => Some(((range.start(), range.end()), prot)),
            _ => None,
        })
        .collect()
}

type PageRangeT = (usize, usize);

/// Asserts every page of `start..end` has `prot` and reads as `byte` throughout.
#[track_caller]
fn assert_pages(host: &RecordingHost, start: usize, end: usize, prot: Prot, byte: u8) {
    for page in (start..end).step_by(P) {
        assert_eq!(host.prot_at(page), Some(prot), "page {page:#x}");
        assert!(
            host.read(page, P).iter().all(|b| *b == byte),
            "page {page:#x} does not read {byte:#x} throughout"
        );
    }
}

/// Reusing the pages of a region with the same layout makes no protect call at all, only
/// the copy (and the icache flush of the code); deinitialize makes none either.
fn same_layout_reuse_makes_no_protect<S: Storage>() {
    let host = aliased();
    let map: Map<'_, S> = JitMap::with_config(&*host, config(DiscardPolicy::Retain));
    let base = map.reserve(8 * P).unwrap();
    let (code, data) = (pattern(P, 1), pattern(P / 2, 2));
    let segs = [
        Segment::new(Prot::READ_EXEC, base, P, &code),
        Segment::new(Prot::READ, base + P, P, &data),
    ];
    assert_eq!(map.initialize(&req(&segs, &[])), Ok(base));
    assert_eq!(protects(&host).len(), 2, "first use protects");
    for round in 0..3u8 {
        host.clear_log();
        map.deinitialize(base).unwrap();
        assert_eq!(
            host.count(HostOp::Protect),
            0,
            "deinitialize protects nothing"
        );
        assert_eq!(host.count(HostOp::Discard), 0);
        // Freed code holds trap bytes, freed data zeros; both keep their protection.
        assert_pages(&host, base, base + P, Prot::READ_EXEC, TRAP);
        assert_pages(&host, base + P, base + 2 * P, Prot::READ, 0);
        host.check_map(&map).unwrap();

        let code = pattern(P, 10 + round);
        let segs = [
            Segment::new(Prot::READ_EXEC, base, P, &code),
            Segment::new(Prot::READ, base + P, P, &data),
        ];
        host.clear_log();
        assert_eq!(map.initialize(&req(&segs, &[])), Ok(base));
        assert_eq!(protects(&host), [], "reuse protects nothing");
        assert_eq!(host.count(HostOp::FlushIcache), 1);
        assert_segment(&host, &segs[0], &code);
        assert_segment(&host, &segs[1], &data);
        host.check_map(&map).unwrap();
    }
}

/// Reuse with another layout protects exactly the pages whose protection differs.
fn other_layout_protects_only_what_differs<S: Storage>() {
    let host = aliased();
    let map: Map<'_, S> = JitMap::with_config(&*host, config(DiscardPolicy::Retain));
    let base = map.reserve(8 * P).unwrap();
    let segs = [
        Segment::new(Prot::READ_EXEC, base, 2 * P, &[]),
        Segment::new(Prot::READ, base + 2 * P, P, &[]),
    ];
    assert_eq!(map.initialize(&req(&segs, &[])), Ok(base));
    map.deinitialize(base).unwrap();
    // Pages 0-1 were RX, page 2 R, pages 3.. never used (read-write).
    let segs = [
        Segment::new(Prot::READ_EXEC, base, P, &[]),
        Segment::new(Prot::READ, base + P, 2 * P, &[]),
        Segment::new(Prot::READ_WRITE, base + 3 * P, P, &[]),
    ];
    host.clear_log();
    assert_eq!(map.initialize(&req(&segs, &[])), Ok(base));
    // Segment 0 is RX already, segment 2 read-write already; segment 1 mixes RX and R.
    assert_eq!(protects(&host), [((base + P, base + 3 * P), Prot::READ)]);
    // Bytes not covered by content read zero, even where trap bytes were.
    assert_pages(&host, base, base + P, Prot::READ_EXEC, 0);
    assert_pages(&host, base + P, base + 3 * P, Prot::READ, 0);
    host.check_map(&map).unwrap();
    map.deinitialize(base).unwrap();
    // A read-write request over formerly executable pages protects them back.
    let segs = [Segment::new(Prot::READ_WRITE, base, 2 * P, &[])];
    host.clear_log();
    assert_eq!(map.initialize(&req(&segs, &[])), Ok(base));
    assert_eq!(
        protects(&host),
        [((base, base + 2 * P), Prot::READ_WRITE)],
        "page 0 was RX, page 1 R"
    );
    assert_pages(&host, base, base + 2 * P, Prot::READ_WRITE, 0);
    host.check_map(&map).unwrap();
}

/// Under the Discard policy, freed code is made non-executable and every freed page
/// discarded; other pages keep their protection.
fn discard_policy_makes_freed_code_non_executable<S: Storage>() {
    let host = aliased();
    let map: Map<'_, S> = JitMap::with_config(&*host, config(DiscardPolicy::Discard));
    let base = map.reserve(8 * P).unwrap();
    let (code, data) = (pattern(P, 3), pattern(P, 4));
    let segs = [
        Segment::new(Prot::READ_EXEC, base, P, &code),
        Segment::new(Prot::READ, base + P, P, &data),
    ];
    assert_eq!(map.initialize(&req(&segs, &[])), Ok(base));
    host.clear_log();
    map.deinitialize(base).unwrap();
    assert_eq!(
        fallible(&host.log()),
        [
            ok(Call::Protect {
                range: pages(base, base + P, P),
                prot: Prot::READ_WRITE
            }),
            ok(Call::Discard {
                range: pages(base, base + P, P)
            }),
            ok(Call::Discard {
                range: pages(base + P, base + 2 * P, P)
            }),
        ]
    );
    assert_pages(&host, base, base + P, Prot::READ_WRITE, 0);
    assert_pages(&host, base + P, base + 2 * P, Prot::READ, 0);
    host.check_map(&map).unwrap();
    // The read-only page is reused without a protect.
    host.clear_log();
    assert_eq!(map.initialize(&req(&segs, &[])), Ok(base));
    assert_eq!(protects(&host), [((base, base + P), Prot::READ_EXEC)]);
    host.check_map(&map).unwrap();
}

/// A failed protect during a lazy initialize rolls back: the pages in doubt go back to
/// read-write, the others keep their protection, code pages hold trap bytes.
fn rollback_resets_pages_in_doubt<S: Storage>() {
    let host = aliased();
    let map: Map<'_, S> = JitMap::with_config(&*host, config(DiscardPolicy::Retain));
    let base = map.reserve(8 * P).unwrap();
    let code = pattern(P, 5);
    let rx = [Segment::new(Prot::READ_EXEC, base, P, &code)];
    assert_eq!(map.initialize(&req(&rx, &[])), Ok(base));
    map.deinitialize(base).unwrap();
    // Page 0 stays RX (no protect needed); page 1 needs R, and that protect fails.
    let segs = [
        Segment::new(Prot::READ_EXEC, base, P, &code),
        Segment::new(Prot::READ, base + P, P, &code),
    ];
    host.clear_log();
    host.fail_nth(0, FakeError::ENOMEM);
    assert_eq!(
        map.initialize(&req(&segs, &[pair(1)])),
        Err(Error::Host {
            op: HostOp::Protect,
            segment: Some(1),
            error: FakeError::ENOMEM,
            quarantined: false,
            dealloc_failures: 0,
        })
    );
    assert_eq!(take_acts(), []);
    assert_pages(&host, base, base + P, Prot::READ_EXEC, TRAP);
    assert_pages(&host, base + P, base + 2 * P, Prot::READ_WRITE, 0);
    host.check_map(&map).unwrap();
    assert_eq!(map.initialize(&req(&segs, &[])), Ok(base));
    assert_segment(&host, &segs[0], &code);
    assert_segment(&host, &segs[1], &code);
    host.check_map(&map).unwrap();
}

/// Finalize-lifetime pages are freed lazily too: they keep their protection.
fn finalize_lifetime_pages_are_freed_lazily<S: Storage>() {
    let host = aliased();
    let map: Map<'_, S> = JitMap::with_config(&*host, config(DiscardPolicy::Retain));
    let base = map.reserve(8 * P).unwrap();
    let code = pattern(P, 6);
    let segs = [
        Segment::new(Prot::READ, base, P, &code),
        fin_seg(Prot::READ_EXEC, base + P, P, &code),
    ];
    assert_eq!(map.initialize(&req(&segs, &[pair(2)])), Ok(base));
    assert_pages(&host, base + P, base + 2 * P, Prot::READ_EXEC, TRAP);
    host.check_map(&map).unwrap();
    // The freed page is reused as code without a protect.
    let rx = [Segment::new(Prot::READ_EXEC, base + P, P, &code)];
    host.clear_log();
    assert_eq!(map.initialize(&req(&rx, &[])), Ok(base + P));
    assert_eq!(protects(&host), []);
    assert_segment(&host, &rx[0], &code);
    host.check_map(&map).unwrap();
}

/// A full fixed span table forgets free entries to make room; pages whose protection it
/// forgot are protected again when reused, and the map stays consistent with the host.
fn full_fixed_table_forgets_free_entries() {
    let host = aliased();
    // Room for 4 spans only.
    let map: Map<'_, Fixed<2, 8, 4>> = JitMap::with_config(&*host, config(DiscardPolicy::Retain));
    let base = map.reserve(16 * P).unwrap();
    let code = pattern(P, 7);
    // Four single-page code regions on even pages, freed: four free RX entries.
    for i in 0..4 {
        let seg = [Segment::new(Prot::READ_EXEC, base + 2 * i * P, P, &code)];
        assert_eq!(map.initialize(&req(&seg, &[])), Ok(base + 2 * i * P));
    }
    for i in 0..4 {
        map.deinitialize(base + 2 * i * P).unwrap();
    }
    host.check_map(&map).unwrap();
    // Four new read-only regions on odd pages: each needs an entry, so free ones go.
    for i in 0..4 {
        let seg = [Segment::new(Prot::READ, base + (2 * i + 1) * P, P, &code)];
        assert_eq!(map.initialize(&req(&seg, &[])), Ok(base + (2 * i + 1) * P));
        host.check_map(&map).unwrap();
    }
    // Page 0 was RX; its entry is gone, so a read-write request protects it to be sure.
    for i in 0..4 {
        map.deinitialize(base + (2 * i + 1) * P).unwrap();
    }
    let rw = [Segment::new(Prot::READ_WRITE, base, P, &[])];
    host.clear_log();
    assert_eq!(map.initialize(&req(&rw, &[])), Ok(base));
    assert_eq!(protects(&host), [((base, base + P), Prot::READ_WRITE)]);
    assert_pages(&host, base, base + P, Prot::READ_WRITE, 0);
    host.check_map(&map).unwrap();
}

for_each_storage!(
    same_layout_reuse_makes_no_protect,
    other_layout_protects_only_what_differs,
    discard_policy_makes_freed_code_non_executable,
    rollback_resets_pages_in_doubt,
    finalize_lifetime_pages_are_freed_lazily,
);

#[test]
fn fixed_table_eviction() {
    full_fixed_table_forgets_free_entries();
}
