//! Page protections on the real host, as the kernel reports them in `/proc/self/maps`.
#![cfg(target_os = "linux")]
#![expect(unsafe_code, reason = "reads JIT memory to check nothing was written")]

mod common;

use common::Kind;

use common::perms_of;
use mapcore_std::{InitRequest, Lifetime, Prot, Segment, StdJitMap};

fn page() -> usize {
    mapcore_std::page_size()
}

/// The perms of the `n` pages from `page_index` pages after `base`.
fn pages(base: usize, page_index: usize, n: usize) -> Result<String, String> {
    perms_of(base + page_index * page(), base + (page_index + n) * page())
}

fn a_fresh_slab_is_read_write(kind: Kind) {
    let map = StdJitMap::new(kind.host());
    let base = map.reserve(32 * page()).unwrap();
    assert_eq!(pages(base, 0, 32), Ok(kind.perms(Prot::READ_WRITE)));
}

fn each_segment_gets_its_protection_and_deinitialize_resets_them(kind: Kind) {
    let map = StdJitMap::new(kind.host());
    let p = page();
    let base = map.reserve(16 * p).unwrap();
    let code = [0xC3u8; 16]; // never run: only its protection is checked
    let segments = [
        // Out of address order on purpose.
        Segment::new(Prot::READ_WRITE, base + 3 * p, p, b"data"),
        Segment::new(Prot::READ_EXEC, base, p, &code),
        // One and a half pages: protection covers both whole pages.
        Segment::new(Prot::READ, base + p, p + p / 2, b"constants"),
        Segment::new(Prot::NONE, base + 4 * p, p, &[]),
        // Page 5 is a gap: not part of the region.
        Segment::new(Prot::READ, base + 6 * p, 1, &[]),
        // A Finalize-lifetime segment is freed again before initialize returns.
        Segment::with_lifetime(Prot::READ_EXEC, Lifetime::Finalize, base + 7 * p, p, &code),
        // Zero-size segments touch nothing.
        Segment::new(Prot::READ_EXEC, base + 9 * p, 0, &[]),
    ];
    let key = map.initialize(&InitRequest::new(&segments, &[])).unwrap();
    assert_eq!(key, base);

    assert_eq!(pages(base, 0, 1), Ok(kind.perms(Prot::READ_EXEC)));
    assert_eq!(pages(base, 1, 2), Ok(kind.perms(Prot::READ)));
    assert_eq!(pages(base, 3, 1), Ok(kind.perms(Prot::READ_WRITE)));
    assert_eq!(pages(base, 4, 1), Ok(kind.perms(Prot::NONE)));
    assert_eq!(
        pages(base, 5, 1),
        Ok(kind.perms(Prot::READ_WRITE)),
        "the gap page is untouched"
    );
    assert_eq!(pages(base, 6, 1), Ok(kind.perms(Prot::READ)));
    assert_eq!(
        pages(base, 7, 1),
        Ok(kind.perms(Prot::READ_WRITE)),
        "the Finalize segment is freed"
    );
    assert_eq!(pages(base, 8, 8), Ok(kind.perms(Prot::READ_WRITE)));

    map.deinitialize(key).unwrap();
    // The default policy discards: flip resets every page, dual makes code non-executable and
    // leaves the rest as it was.
    let freed = |prot| Ok(kind.perms(kind.freed(prot, true)));
    assert_eq!(pages(base, 0, 1), freed(Prot::READ_EXEC));
    assert_eq!(pages(base, 1, 2), freed(Prot::READ));
    assert_eq!(pages(base, 3, 1), freed(Prot::READ_WRITE));
    assert_eq!(pages(base, 4, 1), freed(Prot::NONE));
    assert_eq!(pages(base, 5, 1), freed(Prot::READ_WRITE));
    assert_eq!(pages(base, 6, 1), freed(Prot::READ));
    assert_eq!(pages(base, 7, 9), freed(Prot::READ_WRITE));
}

fn every_protection_shows_as_requested(kind: Kind) {
    // W+X allowed here so that all eight protections can be seen.
    let config = mapcore_std::Config {
        allow_write_exec: true,
        ..mapcore_std::Config::DEFAULT
    };
    let map = StdJitMap::with_config(kind.host(), config);
    let p = page();
    let base = map.reserve(8 * p).unwrap();
    let prots: Vec<Prot> = (0..8).map(|bits| Prot::from_bits(bits).unwrap()).collect();
    let segments: Vec<Segment<'_>> = prots
        .iter()
        .enumerate()
        .map(|(i, prot)| Segment::new(*prot, base + i * p, p, &[]))
        .collect();
    let key = map.initialize(&InitRequest::new(&segments, &[])).unwrap();
    for (i, prot) in prots.iter().enumerate() {
        assert_eq!(pages(base, i, 1), Ok(kind.perms(*prot)), "page {i}: {prot}");
    }
    map.deinitialize(key).unwrap();
    for (i, prot) in prots.iter().enumerate() {
        let freed = kind.freed(*prot, true);
        assert_eq!(pages(base, i, 1), Ok(kind.perms(freed)), "page {i}: {prot}");
    }
}

fn batch_deinitialize_resets_adjacent_regions(kind: Kind) {
    let map = StdJitMap::new(kind.host());
    let p = page();
    let base = map.reserve(8 * p).unwrap();
    let code = [0xC3u8; 16]; // never run
    let mut keys = Vec::new();
    let prots = [Prot::READ_EXEC, Prot::READ, Prot::NONE, Prot::READ_EXEC];
    for (i, prot) in prots.into_iter().enumerate() {
        let seg = [Segment::new(
            prot,
            base + i * p,
            p,
            if prot == Prot::NONE { &[] } else { &code },
        )];
        keys.push(map.initialize(&InitRequest::new(&seg, &[])).unwrap());
    }
    assert_eq!(pages(base, 0, 1), Ok(kind.perms(Prot::READ_EXEC)));
    assert_eq!(pages(base, 2, 1), Ok(kind.perms(Prot::NONE)));
    let mut reported = Vec::new();
    map.deinitialize_multiple(&keys, |i, e| reported.push((i, e)))
        .unwrap();
    assert!(reported.is_empty(), "{reported:?}");
    for (i, prot) in prots.into_iter().enumerate() {
        let freed = kind.freed(prot, true);
        assert_eq!(pages(base, i, 1), Ok(kind.perms(freed)), "page {i}: {prot}");
    }
    assert_eq!(pages(base, 4, 4), Ok(kind.perms(Prot::READ_WRITE)));
    assert_eq!(map.region_count(), 0);
}

fn refused_write_exec_changes_no_protection(kind: Kind) {
    let map = StdJitMap::new(kind.host());
    let p = page();
    let base = map.reserve(4 * p).unwrap();
    let segments = [
        Segment::new(Prot::READ, base, p, b"x"),
        Segment::new(Prot::ALL, base + p, p, &[]),
    ];
    let error = map
        .initialize(&InitRequest::new(&segments, &[]))
        .unwrap_err();
    assert_eq!(error, mapcore_std::Error::WriteExecute { segment: 1 });
    assert_eq!(pages(base, 0, 4), Ok(kind.perms(Prot::READ_WRITE)));
    // SAFETY: the slab's pages are free and read-write; nothing else uses them.
    assert_eq!(unsafe { common::read(base, 1) }, [0], "nothing was written");
}

for_each_host!(
    a_fresh_slab_is_read_write,
    each_segment_gets_its_protection_and_deinitialize_resets_them,
    every_protection_shows_as_requested,
    batch_deinitialize_resets_adjacent_regions,
    refused_write_exec_changes_no_protection,
);
