//! orc-rt's own tests, restated against mapcore's public API, numbered T1-T35 here.
//!
//! T1-T9 are the `SimpleNativeMemoryMap` tests, with orc-rt's mock page size of 16 KiB and its
//! 1 GiB slabs. T18-T24 are the `AllocAction` tests, here driven through `initialize` and
//! `deinitialize` (the bare action runner is unit-tested as T15-T24 in `src/action.rs`; T33-T35
//! are unit tests in `src/prot.rs`). T10-T14 and T25-T32 concern orc-rt's wire layer, which
//! mapcore does not have.

pub mod common;

use common::*;
use mapcore::testing::Call;
use mapcore::{ActionPair, Error, JitMap, Prot, Segment, Storage};

/// orc-rt's 1 GiB slab; 1 MiB under miri, where checking every page of 1 GiB (65536 pages of
/// 16 KiB) takes minutes.
const GIB: usize = if cfg!(miri) { 1 << 20 } else { 1 << 30 };
const KIB64: usize = 64 * 1024;

/// T1 CreateAndDestroy: a map that did nothing makes no host call, not even when dropped.
fn t1_create_and_destroy<S: Storage>() {
    let host = Fixture::new(UPSTREAM_PAGE);
    let map: Map<'_, S> = JitMap::new(&*host);
    assert_eq!((map.slab_count(), map.region_count()), (0, 0));
    host.check_map(&map).unwrap();
    drop(map);
    assert_eq!(host.log(), []);
}

/// T2 ReserveAndRelease: reserve 1 GiB, release it through the batch call.
fn t2_reserve_and_release<S: Storage>() {
    let host = Fixture::new(UPSTREAM_PAGE);
    let map: Map<'_, S> = JitMap::new(&*host);
    let a = map.reserve(GIB).unwrap();
    assert_eq!(a % UPSTREAM_PAGE, 0);
    assert_eq!(host.reservations(), [(a, GIB)]);
    host.check_map(&map).unwrap();
    let mut reported = Vec::new();
    assert_eq!(
        map.release_multiple(&[a], |i, e| reported.push((i, e))),
        Ok(())
    );
    assert_eq!(reported, []);
    assert_eq!(host.reservations(), []);
    assert_eq!(
        host.log(),
        [
            ok(Call::Reserve {
                size: GIB,
                base: Some(a)
            }),
            ok(Call::Release { base: a, size: GIB })
        ]
    );
    assert_eq!(map.slab_count(), 0);
}

/// T3 FullPipelineForOneRWSegment: content is copied, the rest zero-filled, finalize actions
/// see both, and the dealloc action runs at deinitialize and reads what finalize wrote.
fn t3_full_pipeline_for_one_rw_segment<S: Storage>() {
    let host = Fixture::new(UPSTREAM_PAGE);
    let map: Map<'_, S> = JitMap::new(&*host);
    let a = map.reserve(GIB).unwrap();
    let b = a + KIB64;
    let mut content = [0u8; 16];
    content[..8].copy_from_slice(&42u64.to_ne_bytes());
    let segs = [Segment::new(Prot::READ_WRITE, b, KIB64, &content)];
    let pairs = [
        ActionPair {
            finalize: Some(read_action(1, b)),
            dealloc: None,
        },
        ActionPair::new(write_action(b + 8, 42), read_action(2, b + 8)),
        ActionPair {
            finalize: Some(read_action(3, b + 16)),
            dealloc: None,
        },
    ];
    // S3 starts non-zero, so that reading the zero-filled part is visible.
    set_sentinel(3, 42);
    let key = map.initialize(&req(&segs, &pairs)).unwrap();
    assert_eq!(key, b);
    assert_eq!((sentinel(1), sentinel(2), sentinel(3)), (42, 0, 0));
    host.check_map(&map).unwrap();

    let mut reported = Vec::new();
    assert_eq!(
        map.deinitialize_multiple(&[key], |i, e| reported.push((i, e))),
        Ok(())
    );
    assert_eq!((sentinel(1), sentinel(2), sentinel(3)), (42, 42, 0));
    assert_eq!(map.region_count(), 0);
    host.check_map(&map).unwrap();

    assert_eq!(
        map.release_multiple(&[a], |i, e| reported.push((i, e))),
        Ok(())
    );
    assert_eq!(reported, []);
    assert_eq!(host.reservations(), []);
}

/// T4 ReserveRejectsNonPageSizeMultiple.
fn t4_reserve_rejects_non_page_size_multiple<S: Storage>() {
    let host = Fixture::new(UPSTREAM_PAGE);
    let map: Map<'_, S> = JitMap::new(&*host);
    assert_eq!(
        map.reserve(UPSTREAM_PAGE + 1),
        Err(Error::InvalidSize { size: 16385 })
    );
    assert_eq!(host.log(), []);
    assert_eq!(map.slab_count(), 0);
}

/// T5 ReserveAcceptsPageSizeMultiple.
fn t5_reserve_accepts_page_size_multiple<S: Storage>() {
    let host = Fixture::new(UPSTREAM_PAGE);
    let map: Map<'_, S> = JitMap::new(&*host);
    let a = map.reserve(UPSTREAM_PAGE).unwrap();
    assert_eq!(host.reservations(), [(a, UPSTREAM_PAGE)]);
    assert_eq!(map.release_multiple(&[a], |_, e| panic!("{e}")), Ok(()));
    assert_eq!(host.reservations(), []);
}

/// T6 ReleaseMultipleReportsErrors: an address that is no slab yields exactly one report.
fn t6_release_multiple_reports_errors<S: Storage>() {
    let host = Fixture::new(UPSTREAM_PAGE);
    let map: Map<'_, S> = JitMap::new(&*host);
    let local = 0u8;
    let addr = core::ptr::from_ref(&local).addr();
    let mut reported = Vec::new();
    assert_eq!(
        map.release_multiple(&[addr], |i, e| reported.push((i, e))),
        Err(Error::Batch { failed: 1 })
    );
    assert_eq!(reported, [(0, Error::NotInAnySlab { addr })]);
    assert_eq!(host.log(), []);
}

/// T7 DeinitializeMultipleReportsErrors: a slab base that is not a key yields exactly one
/// report, and the slab can still be released.
fn t7_deinitialize_multiple_reports_errors<S: Storage>() {
    let host = Fixture::new(UPSTREAM_PAGE);
    let map: Map<'_, S> = JitMap::new(&*host);
    let a = map.reserve(GIB).unwrap();
    host.clear_log();
    let mut reported = Vec::new();
    assert_eq!(
        map.deinitialize_multiple(&[a], |i, e| reported.push((i, e))),
        Err(Error::Batch { failed: 1 })
    );
    assert_eq!(reported, [(0, Error::UnknownKey { addr: a })]);
    assert_eq!(host.log(), []);
    assert_eq!(map.release_multiple(&[a], |_, e| panic!("{e}")), Ok(()));
    assert_eq!(host.reservations(), []);
}

/// The setup of T8 and T9: a region at A + 64 KiB whose finalize action writes 42 and whose
/// dealloc action reads it back into sentinel 0.
fn init_write_then_read_back<S: Storage>(map: &Map<'_, S>) -> usize {
    let a = map.reserve(GIB).unwrap();
    let b = a + KIB64;
    let segs = [Segment::new(Prot::READ_WRITE, b, KIB64, &[])];
    let pairs = [ActionPair::new(write_action(b, 42), read_action(0, b))];
    set_sentinel(0, 0);
    assert_eq!(map.initialize(&req(&segs, &pairs)), Ok(b));
    assert_eq!(sentinel(0), 0);
    a
}

/// T8 ReserveInitializeShutdown: shutdown runs the outstanding dealloc action before it unmaps.
fn t8_reserve_initialize_shutdown<S: Storage>() {
    let host = Fixture::new(UPSTREAM_PAGE);
    let map: Map<'_, S> = JitMap::new(&*host);
    let a = init_write_then_read_back(&map);
    host.clear_log();
    assert_eq!(map.shutdown(), Ok(()));
    assert_eq!(sentinel(0), 42);
    assert_eq!(host.log(), [ok(Call::Release { base: a, size: GIB })]);
    assert_eq!((map.slab_count(), map.region_count()), (0, 0));
    // The map stays usable after shutdown, and a second shutdown finds nothing to do.
    host.clear_log();
    assert_eq!(map.shutdown(), Ok(()));
    assert_eq!(host.log(), []);
    let again = map.reserve(UPSTREAM_PAGE).unwrap();
    assert_eq!(map.release(again), Ok(()));
}

/// T8 through `Drop`: dropping the map does what shutdown does.
fn t8_drop_runs_outstanding_dealloc_actions<S: Storage>() {
    let host = Fixture::new(UPSTREAM_PAGE);
    let map: Map<'_, S> = JitMap::new(&*host);
    init_write_then_read_back(&map);
    drop(map);
    assert_eq!(sentinel(0), 42);
    assert_eq!(host.reservations(), []);
}

/// T9 ReserveInitializeDetachShutdown: mapcore has no detach; "detach" is doing nothing. No
/// action runs and no host call happens until shutdown, and the map keeps serving calls
/// meanwhile (JIT'd code may still use it).
fn t9_detach_is_nothing_until_shutdown<S: Storage>() {
    let host = Fixture::new(UPSTREAM_PAGE);
    let map: Map<'_, S> = JitMap::new(&*host);
    let a = init_write_then_read_back(&map);
    host.clear_log();
    // Detached: time passes, nothing runs.
    std::thread::yield_now();
    assert_eq!(sentinel(0), 0);
    assert_eq!(host.log(), []);
    assert_eq!(take_acts(), []);
    // Still usable while detached.
    let other = map.reserve(UPSTREAM_PAGE).unwrap();
    assert_eq!(sentinel(0), 0);
    assert_eq!(map.region_count(), 1);
    assert_eq!(map.shutdown(), Ok(()));
    assert_eq!(sentinel(0), 42);
    // Newest slab first.
    assert_eq!(
        host.log()[1..],
        [
            ok(Call::Release {
                base: other,
                size: UPSTREAM_PAGE
            }),
            ok(Call::Release { base: a, size: GIB })
        ]
    );
    assert_eq!(host.reservations(), []);
}

/// A small slab for the action tests.
fn small_slab<S: Storage>(map: &Map<'_, S>) -> usize {
    map.reserve(8 * UPSTREAM_PAGE).unwrap()
}

/// T18 RunFinalizationActionsComplete, through the map: finalize actions run in order at
/// initialize, their dealloc actions newest first at deinitialize.
fn t18_finalize_then_dealloc_through_map<S: Storage>() {
    let host = Fixture::new(UPSTREAM_PAGE);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = small_slab(&map);
    let segs = [Segment::new(Prot::READ_WRITE, base, UPSTREAM_PAGE, &[])];
    let pairs = [pair(0), pair(1)];
    let key = map.initialize(&req(&segs, &pairs)).unwrap();
    assert_eq!(take_acts(), [Act::Fin(0), Act::Fin(1)]);
    assert_eq!(map.deinitialize(key), Ok(()));
    assert_eq!(take_acts(), [Act::Dealloc(1), Act::Dealloc(0)]);
}

/// T19 RunFinalizeActionsFail, through the map: the earlier pair's dealloc runs, the failing
/// pair's own dealloc and the later finalize actions do not.
fn t19_finalize_failure_through_map<S: Storage>() {
    let host = Fixture::new(UPSTREAM_PAGE);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = small_slab(&map);
    let segs = [Segment::new(Prot::READ_WRITE, base, UPSTREAM_PAGE, &[])];
    let pairs = [pair(0), pair(1), pair(2)];
    fail_action(Act::Fin(1));
    assert_eq!(
        map.initialize(&req(&segs, &pairs)),
        Err(Error::FinalizeFailed {
            action: 1,
            error: code(Act::Fin(1)),
            cleanup_failures: 0,
            quarantined: false
        })
    );
    assert_eq!(take_acts(), [Act::Fin(0), Act::Fin(1), Act::Dealloc(0)]);
    assert_eq!(map.region_count(), 0);
    host.check_map(&map).unwrap();
}

/// T20 RunFinalizeActionsNullFinalize, through the map: a pair without finalize action still
/// registers its dealloc action.
fn t20_null_finalize_keeps_dealloc_through_map<S: Storage>() {
    let host = Fixture::new(UPSTREAM_PAGE);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = small_slab(&map);
    let segs = [Segment::new(Prot::READ_WRITE, base, UPSTREAM_PAGE, &[])];
    let pairs = [pair(0), pair_of(None, Some(1))];
    let key = map.initialize(&req(&segs, &pairs)).unwrap();
    assert_eq!(take_acts(), [Act::Fin(0)]);
    assert_eq!(map.deinitialize(key), Ok(()));
    assert_eq!(take_acts(), [Act::Dealloc(1), Act::Dealloc(0)]);
}

/// T21 RunFinalizeActionsNullDealloc, through the map: a pair without dealloc action
/// registers nothing.
fn t21_null_dealloc_is_dropped_through_map<S: Storage>() {
    let host = Fixture::new(UPSTREAM_PAGE);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = small_slab(&map);
    let segs = [Segment::new(Prot::READ_WRITE, base, UPSTREAM_PAGE, &[])];
    let pairs = [pair(0), pair_of(Some(1), None)];
    let key = map.initialize(&req(&segs, &pairs)).unwrap();
    assert_eq!(take_acts(), [Act::Fin(0), Act::Fin(1)]);
    assert_eq!(map.deinitialize(key), Ok(()));
    assert_eq!(take_acts(), [Act::Dealloc(0)]);
}

/// T22 RunDeallocActionsReportsError, through the map: deinitialize runs newest first, keeps
/// going after a failure and reports it.
fn t22_dealloc_failure_keeps_going_through_map<S: Storage>() {
    let host = Fixture::new(UPSTREAM_PAGE);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = small_slab(&map);
    let segs = [Segment::new(Prot::READ_WRITE, base, UPSTREAM_PAGE, &[])];
    let pairs = [pair(0), pair(1)];
    let key = map.initialize(&req(&segs, &pairs)).unwrap();
    clear_acts();
    fail_action(Act::Dealloc(1));
    assert_eq!(
        map.deinitialize(key),
        Err(Error::DeallocFailed { failed: 1 })
    );
    assert_eq!(take_acts(), [Act::Dealloc(1), Act::Dealloc(0)]);
    assert_eq!(map.region_count(), 0);
    host.check_map(&map).unwrap();
}

/// T23 RunDeallocActionsReportsAllErrors, through the map: every failure is counted.
fn t23_all_dealloc_failures_counted_through_map<S: Storage>() {
    let host = Fixture::new(UPSTREAM_PAGE);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = small_slab(&map);
    let segs = [Segment::new(Prot::READ_WRITE, base, UPSTREAM_PAGE, &[])];
    let pairs = [pair(0), pair(1)];
    let key = map.initialize(&req(&segs, &pairs)).unwrap();
    clear_acts();
    fail_action(Act::Dealloc(0));
    fail_action(Act::Dealloc(1));
    assert_eq!(
        map.deinitialize(key),
        Err(Error::DeallocFailed { failed: 2 })
    );
    assert_eq!(take_acts(), [Act::Dealloc(1), Act::Dealloc(0)]);
}

/// T24 RunFinalizeActionsFailReportsCleanupErrors, through the map: the finalize error is
/// reported, the failed cleanup counted, and the cleanup still ran to the end.
fn t24_cleanup_failures_counted_through_map<S: Storage>() {
    let host = Fixture::new(UPSTREAM_PAGE);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = small_slab(&map);
    let segs = [Segment::new(Prot::READ_WRITE, base, UPSTREAM_PAGE, &[])];
    let pairs = [pair(0), pair(1), pair_of(Some(2), None)];
    fail_action(Act::Dealloc(1));
    fail_action(Act::Fin(2));
    assert_eq!(
        map.initialize(&req(&segs, &pairs)),
        Err(Error::FinalizeFailed {
            action: 2,
            error: code(Act::Fin(2)),
            cleanup_failures: 1,
            quarantined: false
        })
    );
    assert_eq!(
        take_acts(),
        [
            Act::Fin(0),
            Act::Fin(1),
            Act::Fin(2),
            Act::Dealloc(1),
            Act::Dealloc(0)
        ]
    );
    assert_eq!(map.region_count(), 0);
    host.check_map(&map).unwrap();
}

for_each_storage!(
    t1_create_and_destroy,
    t2_reserve_and_release,
    t3_full_pipeline_for_one_rw_segment,
    t4_reserve_rejects_non_page_size_multiple,
    t5_reserve_accepts_page_size_multiple,
    t6_release_multiple_reports_errors,
    t7_deinitialize_multiple_reports_errors,
    t8_reserve_initialize_shutdown,
    t8_drop_runs_outstanding_dealloc_actions,
    t9_detach_is_nothing_until_shutdown,
    t18_finalize_then_dealloc_through_map,
    t19_finalize_failure_through_map,
    t20_null_finalize_keeps_dealloc_through_map,
    t21_null_dealloc_is_dropped_through_map,
    t22_dealloc_failure_keeps_going_through_map,
    t23_all_dealloc_failures_counted_through_map,
    t24_cleanup_failures_counted_through_map,
);
