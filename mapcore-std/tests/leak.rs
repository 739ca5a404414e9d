//! Leak check on both hosts: many reserve / initialize / deinitialize / release cycles leave
//! VmSize unchanged, RSS within 512 KiB and the mapping count not growing. One test in its own
//! binary, so that no other test thread changes the process's numbers while it measures.
//! `CYCLES=<n>` changes the count (default 100,000).
#![cfg(target_os = "linux")]

use std::fs;

mod common;

use common::Kind;

use mapcore_std::{page_size, InitRequest, Prot, Segment, StdJitMap};

/// A `/proc/self/status` field, in KiB.
fn status_kib(field: &str) -> usize {
    let status = fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

fn mappings() -> usize {
    fs::read_to_string("/proc/self/maps")
        .expect("/proc/self/maps")
        .lines()
        .count()
}

/// One full cycle: a slab, a three-segment region (code, read-only data, zero-filled data),
/// deinitialize, release.
fn cycle(map: &StdJitMap, content: &[u8]) {
    let page = page_size();
    let base = map.reserve(4 * page).unwrap();
    let segments = [
        Segment::new(Prot::READ_EXEC, base, page, content),
        Segment::new(Prot::READ, base + page, 16, &content[..16]),
        Segment::new(Prot::READ_WRITE, base + 2 * page, 2 * page, &[]),
    ];
    let key = map.initialize(&InitRequest::new(&segments, &[])).unwrap();
    map.deinitialize(key).unwrap();
    map.release(base).unwrap();
}

fn cycles_leak_no_memory_and_no_mappings(kind: Kind) {
    let cycles: usize = std::env::var("CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let map = StdJitMap::new(kind.host());
    let content = [0xfe_u8; 256];
    for _ in 0..1_000 {
        cycle(&map, &content);
    }
    let (size0, rss0, maps0) = (status_kib("VmSize:"), status_kib("VmRSS:"), mappings());
    for _ in 0..cycles {
        cycle(&map, &content);
    }
    let (size1, rss1, maps1) = (status_kib("VmSize:"), status_kib("VmRSS:"), mappings());
    println!(
        "{cycles} cycles: VmSize {size0} -> {size1} kB, VmRSS {rss0} -> {rss1} kB, mappings {maps0} -> {maps1}"
    );
    assert_eq!(size1, size0, "VmSize grew");
    assert!(rss1 <= rss0 + 512, "VmRSS grew by {} kB", rss1 - rss0);
    assert!(maps1 <= maps0, "mapping count grew from {maps0} to {maps1}");
    assert_eq!((map.slab_count(), map.region_count()), (0, 0));
}

/// Both hosts, one after the other: a second test thread would disturb the measurements.
#[test]
fn cycles_leak_nothing_on_either_host() {
    cycles_leak_no_memory_and_no_mappings(Kind::Flip);
    cycles_leak_no_memory_and_no_mappings(Kind::Dual);
}
