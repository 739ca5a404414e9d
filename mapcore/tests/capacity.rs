//! Capacity: catalogue rows A5, B11 and E1 for every fixed table (slabs, regions, page
//! spans), and the growable tables' lack of such limits.

pub mod common;

use common::*;
use mapcore::{DefaultStorage, Error, Fixed, Growable, JitMap, Limit, Prot, Segment};

/// A5 / E1: a full slab table refuses the next reserve with no host call; freeing one slab
/// makes room for exactly one; freeing all gives the full capacity back.
#[test]
fn a5_e1_slab_table_full() {
    let host = Fixture::new(P);
    let map: Map<'_, Fixed<3, 8, 16>> = JitMap::new(&*host);
    for round in 0..2 {
        let bases: Vec<usize> = (0..3).map(|_| map.reserve(2 * P).unwrap()).collect();
        let before = snapshot(&host, &map);
        assert_eq!(
            map.reserve(2 * P),
            Err(Error::CapacityExceeded(Limit::Slabs)),
            "round {round}"
        );
        assert_unchanged(&host, &map, &before);
        assert_eq!(map.release(bases[1]), Ok(()));
        let again = map.reserve(2 * P).unwrap();
        assert_eq!(again, bases[1], "first-fit reuse");
        let before = snapshot(&host, &map);
        assert_eq!(map.reserve(P), Err(Error::CapacityExceeded(Limit::Slabs)));
        assert_unchanged(&host, &map, &before);
        for base in [bases[0], again, bases[2]] {
            assert_eq!(map.release(base), Ok(()));
        }
        assert_eq!(host.reservations(), []);
    }
}

/// A5 with the default storage: its documented 8 slabs, then a capacity error.
#[test]
fn a5_default_storage_slab_limit() {
    let host = Fixture::new(P);
    let map: Map<'_, DefaultStorage> = JitMap::new(&*host);
    for i in 0..8 {
        assert!(map.reserve(P).is_ok(), "slab {i}");
    }
    let before = snapshot(&host, &map);
    assert_eq!(map.reserve(P), Err(Error::CapacityExceeded(Limit::Slabs)));
    assert_unchanged(&host, &map, &before);
}

/// B11 / E1: a full region table refuses the next initialize before any side effect (no
/// write, no action); one deinitialize makes room for exactly one more; after freeing all,
/// the full capacity is available again, in any slot order.
#[test]
fn b11_e1_region_table_full() {
    let host = Fixture::new(P);
    let map: Map<'_, Fixed<2, 3, 16>> = JitMap::new(&*host);
    let base = map.reserve(16 * P).unwrap();
    let init = |page: usize| {
        let content = [page as u8 + 1; 8];
        let segs = [Segment::new(Prot::READ_EXEC, base + page * P, P, &content)];
        map.initialize(&req(&segs, &[pair(page as u32)]))
    };
    for order in [[0, 1, 2], [2, 0, 1], [1, 2, 0]] {
        for page in 0..3 {
            assert_eq!(init(page), Ok(base + page * P));
        }
        clear_acts();
        let before = snapshot(&host, &map);
        assert_eq!(init(5), Err(Error::CapacityExceeded(Limit::Regions)));
        assert_eq!(take_acts(), []);
        assert_unchanged(&host, &map, &before);
        // Free one (in varying slot order): exactly one more fits.
        assert_eq!(map.deinitialize(base + order[0] * P), Ok(()));
        assert_eq!(init(5), Ok(base + 5 * P));
        assert_eq!(init(6), Err(Error::CapacityExceeded(Limit::Regions)));
        host.check_map(&map).unwrap();
        for page in [order[1], 5, order[2]] {
            assert_eq!(map.deinitialize(base + page * P), Ok(()));
            host.check_map(&map).unwrap();
        }
        assert_eq!(map.region_count(), 0);
        clear_acts();
    }
}

/// E1: a full page-span table (one entry per segment of every live region) refuses the next
/// initialize with nothing changed; freeing a region's spans makes room again.
#[test]
fn e1_span_table_full() {
    let host = Fixture::new(P);
    let map: Map<'_, Fixed<2, 8, 4>> = JitMap::new(&*host);
    let base = map.reserve(16 * P).unwrap();
    let three = [
        Segment::new(Prot::READ_EXEC, base, P, &[]),
        Segment::new(Prot::READ, base + P, P, &[]),
        Segment::new(Prot::READ_WRITE, base + 2 * P, P, &[]),
    ];
    assert_eq!(map.initialize(&req(&three, &[])), Ok(base));
    let one = |page: usize| [Segment::new(Prot::READ, base + page * P, P, &[])];
    assert_eq!(map.initialize(&req(&one(4), &[])), Ok(base + 4 * P));
    let before = snapshot(&host, &map);
    assert_eq!(
        map.initialize(&req(&one(6), &[pair(0)])),
        Err(Error::CapacityExceeded(Limit::Spans))
    );
    assert_eq!(take_acts(), []);
    assert_unchanged(&host, &map, &before);
    assert_eq!(map.deinitialize(base + 4 * P), Ok(()));
    let two = [one(6)[0], one(8)[0]];
    let before = snapshot(&host, &map);
    assert_eq!(
        map.initialize(&req(&two, &[])),
        Err(Error::CapacityExceeded(Limit::Spans))
    );
    assert_unchanged(&host, &map, &before);
    assert_eq!(map.initialize(&req(&one(6), &[])), Ok(base + 6 * P));
    assert_eq!(map.deinitialize(base), Ok(()));
    assert_eq!(
        map.initialize(&req(&two, &[])),
        Err(Error::Overlap { segment: 0 })
    );
    let three_more = [one(8)[0], one(10)[0], one(12)[0]];
    assert_eq!(map.initialize(&req(&three_more, &[])), Ok(base + 8 * P));
    host.check_map(&map).unwrap();
}

/// Growable tables have no fixed limit: more slabs and regions than the default fixed
/// storage holds (8 and 64).
#[test]
fn growable_tables_exceed_the_default_capacities() {
    let host = Fixture::new(P);
    let map: Map<'_, Growable> = JitMap::new(&*host);
    let slabs: Vec<usize> = (0..20).map(|_| map.reserve(P).unwrap()).collect();
    let big = map.reserve(100 * P).unwrap();
    for i in 0..100 {
        let segs = [Segment::new(Prot::READ, big + i * P, P, &[])];
        assert_eq!(map.initialize(&req(&segs, &[])), Ok(big + i * P));
    }
    assert_eq!((map.slab_count(), map.region_count()), (21, 100));
    host.check_map(&map).unwrap();
    let mut reported = Vec::new();
    assert_eq!(
        map.release_multiple(&slabs, |i, e| reported.push((i, e))),
        Ok(())
    );
    assert_eq!(map.release(big), Ok(()));
    assert_eq!(reported, []);
    assert_eq!(host.reservations(), []);
}
