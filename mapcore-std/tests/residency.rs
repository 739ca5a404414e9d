//! Memory goes back to the system: after a discarding deinitialize, `mincore` reports no
//! resident page for the region; with `DiscardPolicy::Retain` the pages stay resident.
#![cfg(target_os = "linux")]

mod common;

use common::Kind;

use common::resident_pages;
use mapcore_std::{Config, DiscardPolicy, InitRequest, Lifetime, Prot, Segment, StdJitMap};

const PAGES: usize = 64;

fn page() -> usize {
    mapcore_std::page_size()
}

fn discard_leaves_no_resident_page(kind: Kind) {
    let map = StdJitMap::new(kind.host());
    let p = page();
    let base = map.reserve(PAGES * p).unwrap();
    let fill = vec![0x5A; PAGES * p];
    for prot in [Prot::READ_WRITE, Prot::READ, Prot::READ_EXEC, Prot::NONE] {
        for round in 0..5 {
            // Content on every page makes every page resident.
            let seg = [Segment::new(prot, base, fill.len(), &fill)];
            let key = map.initialize(&InitRequest::new(&seg, &[])).unwrap();
            assert_eq!(
                resident_pages(base, PAGES * p),
                PAGES,
                "{prot} round {round}: after initialize"
            );
            map.deinitialize(key).unwrap();
            assert_eq!(
                resident_pages(base, PAGES * p),
                0,
                "{prot} round {round}: after deinitialize"
            );
        }
    }
}

fn batch_discard_leaves_no_resident_page(kind: Kind) {
    let map = StdJitMap::new(kind.host());
    let p = page();
    let base = map.reserve(PAGES * p).unwrap();
    let fill = vec![0x5A; 8 * p];
    let keys: Vec<usize> = (0..PAGES / 8)
        .map(|i| {
            let seg = [Segment::new(
                Prot::READ,
                base + i * 8 * p,
                fill.len(),
                &fill,
            )];
            map.initialize(&InitRequest::new(&seg, &[])).unwrap()
        })
        .collect();
    assert_eq!(resident_pages(base, PAGES * p), PAGES);
    map.deinitialize_multiple(&keys, |i, e| panic!("entry {i}: {e}"))
        .unwrap();
    assert_eq!(resident_pages(base, PAGES * p), 0);
}

fn finalize_lifetime_segments_are_discarded_by_initialize(kind: Kind) {
    let map = StdJitMap::new(kind.host());
    let p = page();
    let base = map.reserve(PAGES * p).unwrap();
    let fill = vec![0x5A; 16 * p];
    let segments = [
        Segment::new(Prot::READ, base, p, &fill[..p]),
        Segment::with_lifetime(Prot::READ, Lifetime::Finalize, base + p, fill.len(), &fill),
    ];
    let key = map.initialize(&InitRequest::new(&segments, &[])).unwrap();
    assert_eq!(resident_pages(base, p), 1, "the Standard segment stays");
    assert_eq!(
        resident_pages(base + p, 16 * p),
        0,
        "the Finalize segment is gone"
    );
    map.deinitialize(key).unwrap();
    assert_eq!(resident_pages(base, PAGES * p), 0);
}

fn retain_keeps_pages_resident(kind: Kind) {
    let config = Config {
        discard: DiscardPolicy::Retain,
        ..Config::DEFAULT
    };
    let map = StdJitMap::with_config(kind.host(), config);
    let p = page();
    let base = map.reserve(PAGES * p).unwrap();
    let fill = vec![0x5A; PAGES * p];
    let seg = [Segment::new(Prot::READ, base, fill.len(), &fill)];
    let key = map.initialize(&InitRequest::new(&seg, &[])).unwrap();
    map.deinitialize(key).unwrap();
    assert_eq!(
        resident_pages(base, PAGES * p),
        PAGES,
        "Retain must not drop the pages"
    );
}

for_each_host!(
    discard_leaves_no_resident_page,
    batch_discard_leaves_no_resident_page,
    finalize_lifetime_segments_are_discarded_by_initialize,
    retain_keeps_pages_resident,
);
