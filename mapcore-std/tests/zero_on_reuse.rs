//! Zero on reuse (wasmtime's `memory_zeroed`; CVE-2022-39393 was this bug): bytes a region
//! held are never visible to the next region at the same addresses, whether deinitialize
//! discards them or keeps them resident.
#![cfg(target_os = "linux")]
#![expect(unsafe_code, reason = "reads and writes JIT memory")]

mod common;

use common::Kind;

use mapcore_std::{Config, DiscardPolicy, InitRequest, Prot, Segment, StdJitMap};

fn page() -> usize {
    mapcore_std::page_size()
}

fn map_with(kind: Kind, discard: DiscardPolicy) -> StdJitMap {
    StdJitMap::with_config(
        kind.host(),
        Config {
            discard,
            ..Config::DEFAULT
        },
    )
}

/// Fills a 3½-page region with 0xFE as content, deinitializes it, initializes the same pages
/// again without content (with `again` protection) and reads every byte of the pages.
fn fill_then_reuse(kind: Kind, discard: DiscardPolicy, again: Prot) {
    let map = map_with(kind, discard);
    let p = page();
    let size = 3 * p + p / 2;
    let base = map.reserve(8 * p).unwrap();
    let fill = vec![0xFE; size];
    for round in 0..10 {
        let seg = [Segment::new(Prot::READ_WRITE, base, size, &fill)];
        let key = map.initialize(&InitRequest::new(&seg, &[])).unwrap();
        // SAFETY: the region's four pages are read-write.
        let bytes = unsafe { common::read(base, 4 * p) };
        assert!(
            bytes[..size].iter().all(|b| *b == 0xFE),
            "round {round}: content copied"
        );
        // Dirty the tail of the last page too, beyond the segment's size.
        // SAFETY: the whole last page belongs to the region and is read-write.
        unsafe { common::write(base + size, &vec![0xFE; 4 * p - size]) };
        map.deinitialize(key).unwrap();

        let seg = [Segment::new(again, base, size, &[])];
        let key = map.initialize(&InitRequest::new(&seg, &[])).unwrap();
        // SAFETY: the pages are readable with `again`.
        let bytes = unsafe { common::read(base, 4 * p) };
        let stale = bytes.iter().filter(|b| **b != 0).count();
        assert_eq!(
            stale, 0,
            "{discard:?}, {again}, round {round}: {stale} stale bytes"
        );
        map.deinitialize(key).unwrap();
    }
}

fn discard_policy_reads_zero_on_reuse(kind: Kind) {
    fill_then_reuse(kind, DiscardPolicy::Discard, Prot::READ_WRITE);
    fill_then_reuse(kind, DiscardPolicy::Discard, Prot::READ);
}

fn retain_policy_reads_zero_on_reuse(kind: Kind) {
    fill_then_reuse(kind, DiscardPolicy::Retain, Prot::READ_WRITE);
    fill_then_reuse(kind, DiscardPolicy::Retain, Prot::READ);
}

fn shorter_content_on_reuse_is_followed_by_zeros(kind: Kind) {
    for discard in [DiscardPolicy::Discard, DiscardPolicy::Retain] {
        let map = map_with(kind, discard);
        let p = page();
        let base = map.reserve(4 * p).unwrap();
        let fill = vec![0xFE; 2 * p];
        let seg = [Segment::new(Prot::READ, base, 2 * p, &fill)];
        let key = map.initialize(&InitRequest::new(&seg, &[])).unwrap();
        map.deinitialize(key).unwrap();
        let seg = [Segment::new(Prot::READ, base, 2 * p, &[0x11; 10])];
        let key = map.initialize(&InitRequest::new(&seg, &[])).unwrap();
        // SAFETY: the two pages are readable.
        let bytes = unsafe { common::read(base, 2 * p) };
        assert_eq!(bytes[..10], [0x11; 10], "{discard:?}");
        assert!(
            bytes[10..].iter().all(|b| *b == 0),
            "{discard:?}: stale bytes after the content"
        );
        map.deinitialize(key).unwrap();
    }
}

fn reuse_after_a_batch_reads_zero(kind: Kind) {
    // Adjacent regions freed in one batch (merged host calls) are all clean afterwards.
    for discard in [DiscardPolicy::Discard, DiscardPolicy::Retain] {
        let map = map_with(kind, discard);
        let p = page();
        let base = map.reserve(8 * p).unwrap();
        let fill = vec![0xFE; p];
        let keys: Vec<usize> = (0..6)
            .map(|i| {
                let prot = [Prot::READ, Prot::READ_WRITE, Prot::NONE][i % 3];
                let seg = [Segment::new(prot, base + i * p, p, &fill)];
                map.initialize(&InitRequest::new(&seg, &[])).unwrap()
            })
            .collect();
        map.deinitialize_multiple(&keys, |i, e| panic!("entry {i}: {e}"))
            .unwrap();
        let seg = [Segment::new(Prot::READ, base, 6 * p, &[])];
        let key = map.initialize(&InitRequest::new(&seg, &[])).unwrap();
        // SAFETY: the six pages are readable.
        let bytes = unsafe { common::read(base, 6 * p) };
        assert!(
            bytes.iter().all(|b| *b == 0),
            "{discard:?}: stale bytes after a batch"
        );
        map.deinitialize(key).unwrap();
    }
}

for_each_host!(
    discard_policy_reads_zero_on_reuse,
    retain_policy_reads_zero_on_reuse,
    shorter_content_on_reuse_is_followed_by_zeros,
    reuse_after_a_batch_reads_zero,
);
