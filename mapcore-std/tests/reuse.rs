//! Reuse with every protection: initialize, deinitialize, initialize again at the same address
//! with every other protection, accessing the memory wherever the protection allows.
#![cfg(target_os = "linux")]
#![cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#![expect(unsafe_code, reason = "reads, writes and runs JIT memory")]

mod common;

use common::{code, maps_perms, perms_of};
use mapcore_std::{Config, Error, InitRequest, LibcHost, Prot, Segment, StdJitMap};

fn page() -> usize {
    mapcore_std::page_size()
}

/// All eight protections.
fn all_prots() -> Vec<Prot> {
    (0..8).map(|bits| Prot::from_bits(bits).unwrap()).collect()
}

/// Initializes a two-page-and-a-bit segment at `base` with protection `prot` and a function
/// returning `tag` as content, and checks everything the protection allows. Returns the key,
/// or `None` if the map refused a W+X segment as it must.
fn initialize_and_check(map: &StdJitMap, base: usize, prot: Prot, tag: u16) -> Option<usize> {
    let p = page();
    let size = 2 * p + 100;
    let content = code::ret_const(tag);
    let seg = [Segment::new(prot, base, size, &content)];
    let result = map.initialize(&InitRequest::new(&seg, &[]));
    if prot.is_write_exec() && !map.config().allow_write_exec {
        assert_eq!(result, Err(Error::WriteExecute { segment: 0 }), "{prot}");
        assert_eq!(
            perms_of(base, base + 3 * p),
            Ok("rw-p".into()),
            "{prot} refused: nothing changed"
        );
        assert_eq!(map.region_count(), 0);
        return None;
    }
    let key = result.unwrap_or_else(|e| panic!("initialize {prot} (tag {tag}): {e}"));
    assert_eq!(key, base);
    assert_eq!(perms_of(base, base + 3 * p), Ok(maps_perms(prot)), "{prot}");
    if prot.contains(Prot::READ) {
        // SAFETY: the segment's three pages are readable.
        let bytes = unsafe { common::read(base, 3 * p) };
        assert_eq!(bytes[..content.len()], content[..], "{prot}: content");
        assert!(
            bytes[content.len()..].iter().all(|b| *b == 0),
            "{prot}: the rest reads zero"
        );
    }
    if prot.contains(Prot::WRITE) {
        let last = base + 3 * p - 8;
        // SAFETY: the segment's pages are writable and this test owns them.
        unsafe { common::write(last, &[0xAB; 8]) };
        if prot.contains(Prot::READ) {
            // SAFETY: and readable.
            let back = unsafe { common::read(last, 8) };
            assert_eq!(back, [0xAB; 8], "{prot}: write then read");
        }
    }
    if prot.contains(Prot::EXEC) {
        // SAFETY: the segment starts with `ret_const(tag)` and is executable, icache flushed.
        let returned = unsafe { common::call0(base) };
        assert_eq!(returned, u64::from(tag), "{prot}: run");
    }
    Some(key)
}

fn every_pair(config: Config) {
    let map = StdJitMap::with_config(LibcHost::new(), config);
    let base = map.reserve(4 * page()).unwrap();
    let prots = all_prots();
    let mut tag = 0;
    for &first in &prots {
        for &second in &prots {
            for prot in [first, second] {
                tag += 1;
                if let Some(key) = initialize_and_check(&map, base, prot, tag) {
                    map.deinitialize(key).unwrap();
                    assert_eq!(perms_of(base, base + 4 * page()), Ok("rw-p".into()));
                }
            }
        }
    }
    assert_eq!(map.region_count(), 0);
}

#[test]
fn every_protection_pair_reuses_the_same_pages() {
    every_pair(Config::DEFAULT);
}

#[test]
fn every_protection_pair_with_write_exec_allowed() {
    every_pair(Config {
        allow_write_exec: true,
        ..Config::DEFAULT
    });
}

#[test]
fn every_pair_with_retained_contents() {
    // Retain keeps old bytes resident; initialize must zero-fill what it reuses itself.
    every_pair(Config {
        discard: mapcore_std::DiscardPolicy::Retain,
        ..Config::DEFAULT
    });
}
