//! Reuse with every protection: initialize, deinitialize, initialize again at the same address
//! with every other protection, accessing the memory wherever the protection allows.
#![cfg(target_os = "linux")]
#![cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#![expect(unsafe_code, reason = "reads, writes and runs JIT memory")]

mod common;

use common::Kind;

use common::{code, perms_of};
use mapcore_std::{Config, DiscardPolicy, Error, InitRequest, Prot, Segment, StdJitMap};

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
fn initialize_and_check(
    kind: Kind,
    map: &StdJitMap,
    base: usize,
    prot: Prot,
    tag: u16,
) -> Option<usize> {
    let p = page();
    let before = perms_of(base, base + 3 * p);
    let size = 2 * p + 100;
    let content = code::ret_const(tag);
    let seg = [Segment::new(prot, base, size, &content)];
    let result = map.initialize(&InitRequest::new(&seg, &[]));
    if prot.is_write_exec() && !map.config().allow_write_exec {
        assert_eq!(result, Err(Error::WriteExecute { segment: 0 }), "{prot}");
        assert_eq!(
            perms_of(base, base + 3 * p),
            before,
            "{prot} refused: nothing changed"
        );
        assert_eq!(map.region_count(), 0);
        return None;
    }
    let key = result.unwrap_or_else(|e| panic!("initialize {prot} (tag {tag}): {e}"));
    assert_eq!(key, base);
    assert_eq!(perms_of(base, base + 3 * p), Ok(kind.perms(prot)), "{prot}");
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

fn every_pair(kind: Kind, config: Config) {
    let map = StdJitMap::with_config(kind.host(), config);
    let base = map.reserve(4 * page()).unwrap();
    let prots = all_prots();
    let mut tag = 0;
    for &first in &prots {
        for &second in &prots {
            for prot in [first, second] {
                tag += 1;
                if let Some(key) = initialize_and_check(kind, &map, base, prot, tag) {
                    map.deinitialize(key).unwrap();
                    let freed = kind.freed(prot, config.discard == DiscardPolicy::Discard);
                    assert_eq!(perms_of(base, base + 3 * page()), Ok(kind.perms(freed)));
                    assert_eq!(
                        perms_of(base + 3 * page(), base + 4 * page()),
                        Ok(kind.perms(Prot::READ_WRITE))
                    );
                }
            }
        }
    }
    assert_eq!(map.region_count(), 0);
}

fn every_protection_pair_reuses_the_same_pages(kind: Kind) {
    every_pair(kind, Config::DEFAULT);
}

fn every_protection_pair_with_write_exec_allowed(kind: Kind) {
    every_pair(
        kind,
        Config {
            allow_write_exec: true,
            ..Config::DEFAULT
        },
    );
}

fn every_pair_with_retained_contents(kind: Kind) {
    // Retain keeps old bytes resident; initialize must zero-fill what it reuses itself.
    every_pair(
        kind,
        Config {
            discard: DiscardPolicy::Retain,
            ..Config::DEFAULT
        },
    );
}

for_each_host!(
    every_protection_pair_reuses_the_same_pages,
    every_protection_pair_with_write_exec_allowed,
    every_pair_with_retained_contents,
);
