//! reserve: catalogue rows A1-A4, A6 and A7 (A5, the full slab table, is in `capacity.rs`).

pub mod common;

use std::sync::Mutex;

use common::*;
use mapcore::testing::{Call, FakeError, RecordingHost};
use mapcore::{Capabilities, Config, Error, Fixed, Host, HostOp, JitMap, PageRange, Prot, Storage};

/// Reserved memory is read-write and reads as zero; the slab is recorded with one host call.
fn reserve_gives_zeroed_read_write_memory<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let base = map.reserve(4 * P).unwrap();
    assert_eq!(
        host.log(),
        [ok(Call::Reserve {
            size: 4 * P,
            base: Some(base)
        })]
    );
    assert_eq!(base % P, 0);
    assert_free(&host, pages(base, base + 4 * P, P));
    assert_eq!(map.slab_count(), 1);
    host.check_map(&map).unwrap();
}

/// A1: size 0 is rejected without any host call (orc-rt records a slab at null).
fn a1_reserve_zero_is_invalid<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let before = snapshot(&host, &map);
    assert_eq!(map.reserve(0), Err(Error::InvalidSize { size: 0 }));
    assert_unchanged(&host, &map, &before);
}

/// A2: sizes that are not page multiples are rejected without any host call.
fn a2_reserve_non_page_multiple_is_invalid<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let before = snapshot(&host, &map);
    for size in [1, P - 1, P + 1, P / 2 * 3, usize::MAX] {
        assert_eq!(map.reserve(size), Err(Error::InvalidSize { size }));
    }
    assert_unchanged(&host, &map, &before);
}

/// A3: sizes above the configured maximum are rejected by the core, not left to the host.
fn a3_reserve_above_maximum_is_too_large<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let before = snapshot(&host, &map);
    let huge = 1usize << 46;
    assert_eq!(map.reserve(huge), Err(Error::TooLarge { size: huge }));
    assert_unchanged(&host, &map, &before);

    let small = Config {
        max_reservation: 4 * P,
        ..Config::DEFAULT
    };
    let map: Map<'_, S> = JitMap::with_config(&*host, small);
    let before = snapshot(&host, &map);
    assert_eq!(map.reserve(5 * P), Err(Error::TooLarge { size: 5 * P }));
    assert_unchanged(&host, &map, &before);
    let base = map.reserve(4 * P).unwrap();
    assert_eq!(host.reservations(), [(base, 4 * P)]);
}

/// A4: sizes near `usize::MAX` never wrap: the core refuses them, and with no maximum the
/// host's refusal comes back as a host error with nothing recorded.
fn a4_reserve_near_usize_max_never_wraps<S: Storage>() {
    let host = Fixture::new(P);
    let top = usize::MAX & !(P - 1);
    let map: Map<'_, S> = JitMap::new(&*host);
    let before = snapshot(&host, &map);
    assert_eq!(map.reserve(top), Err(Error::TooLarge { size: top }));
    assert_unchanged(&host, &map, &before);

    let unlimited = Config {
        max_reservation: usize::MAX,
        ..Config::DEFAULT
    };
    let map: Map<'_, S> = JitMap::with_config(&*host, unlimited);
    let before = snapshot(&host, &map);
    assert_eq!(
        map.reserve(top),
        Err(Error::Host {
            op: HostOp::Reserve,
            segment: None,
            error: ENOMEM,
            quarantined: false,
            dealloc_failures: 0,
        })
    );
    assert_eq!(
        host.log(),
        [failed(Call::Reserve {
            size: top,
            base: None
        })]
    );
    host.clear_log();
    assert_unchanged(&host, &map, &before);
}

/// A6: the host's reserve fails: the error carries the operation and errno, nothing is
/// recorded, and the table entry held for it is given back.
fn a6_host_reserve_failure_changes_nothing<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::new(&*host);
    let before = snapshot(&host, &map);
    host.fail_op(HostOp::Reserve, ENOMEM);
    let err = map.reserve(2 * P).unwrap_err();
    assert_eq!(
        err,
        Error::Host {
            op: HostOp::Reserve,
            segment: None,
            error: ENOMEM,
            quarantined: false,
            dealloc_failures: 0,
        }
    );
    assert_eq!(err.host_error(), Some(&ENOMEM));
    assert_eq!(
        host.log(),
        [failed(Call::Reserve {
            size: 2 * P,
            base: None
        })]
    );
    host.clear_log();
    assert_unchanged(&host, &map, &before);
    host.clear_faults();
    let base = map.reserve(2 * P).unwrap();
    assert_eq!(host.reservations(), [(base, 2 * P)]);
}

/// A6 with a one-slab table: a failed reserve must not keep the only entry.
#[test]
fn a6_failed_reserve_frees_its_table_entry() {
    let host = Fixture::new(P);
    let map: Map<'_, Fixed<1, 4, 8>> = JitMap::new(&*host);
    for _ in 0..3 {
        host.fail_nth(0, ENOMEM);
        assert!(matches!(
            map.reserve(P),
            Err(Error::Host {
                op: HostOp::Reserve,
                ..
            })
        ));
    }
    let base = map.reserve(P).unwrap();
    assert_eq!(
        map.reserve(P),
        Err(Error::CapacityExceeded(mapcore::Limit::Slabs))
    );
    assert_eq!(map.release(base), Ok(()));
    host.check_map(&map).unwrap();
}

/// A host that breaks promise 1 of [`Host`] on demand: its reserve returns a chosen base
/// without reserving anything. Releases of such a lie are recorded and touch nothing.
#[derive(Debug)]
struct LyingHost<'a> {
    inner: &'a RecordingHost,
    /// The base the next reserve returns instead of reserving.
    next_lie: Mutex<Option<usize>>,
    /// `(base, size)` of lies handed out and not given back yet.
    lies: Mutex<Vec<(usize, usize)>>,
    /// `(base, size)` of lies given back.
    given_back: Mutex<Vec<(usize, usize)>>,
}

impl<'a> LyingHost<'a> {
    fn new(inner: &'a RecordingHost) -> Self {
        Self {
            inner,
            next_lie: Mutex::new(None),
            lies: Mutex::new(Vec::new()),
            given_back: Mutex::new(Vec::new()),
        }
    }

    fn lie_next(&self, base: usize) {
        *self.next_lie.lock().unwrap() = Some(base);
    }

    fn given_back(&self) -> Vec<(usize, usize)> {
        self.given_back.lock().unwrap().clone()
    }
}

#[expect(
    unsafe_code,
    reason = "a deliberately buggy host, to test the map's defence against it"
)]
// SAFETY: every method forwards to the `RecordingHost`, which keeps the trait's promises,
// except that `reserve` may return a base it did not reserve: that is the breach of promise 1
// under test, and the map must give such a base back without touching it. `release` of a lie
// forwards nothing.
unsafe impl Host for LyingHost<'_> {
    type Error = FakeError;

    fn page_size(&self) -> usize {
        self.inner.page_size()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn reserve(&self, size: usize) -> Result<usize, FakeError> {
        match self.next_lie.lock().unwrap().take() {
            Some(base) => {
                self.lies.lock().unwrap().push((base, size));
                Ok(base)
            }
            None => self.inner.reserve(size),
        }
    }

    unsafe fn release(&self, base: usize, size: usize) -> Result<(), FakeError> {
        let mut lies = self.lies.lock().unwrap();
        if let Some(i) = lies.iter().position(|l| *l == (base, size)) {
            lies.remove(i);
            self.given_back.lock().unwrap().push((base, size));
            return Ok(());
        }
        // SAFETY: the map's promise for this call is forwarded unchanged.
        unsafe { self.inner.release(base, size) }
    }

    unsafe fn protect(&self, range: PageRange, prot: Prot) -> Result<(), FakeError> {
        // SAFETY: the map's promise for this call is forwarded unchanged.
        unsafe { self.inner.protect(range, prot) }
    }

    unsafe fn discard(&self, range: PageRange) -> Result<(), FakeError> {
        // SAFETY: the map's promise for this call is forwarded unchanged.
        unsafe { self.inner.discard(range) }
    }

    unsafe fn write(&self, addr: usize, bytes: &[u8]) {
        // SAFETY: the map's promise for this call is forwarded unchanged.
        unsafe { self.inner.write(addr, bytes) }
    }

    unsafe fn fill_zero(&self, addr: usize, len: usize) {
        // SAFETY: the map's promise for this call is forwarded unchanged.
        unsafe { self.inner.fill_zero(addr, len) }
    }

    unsafe fn fill_trap(&self, addr: usize, len: usize) {
        // SAFETY: the map's promise for this call is forwarded unchanged.
        unsafe { self.inner.fill_trap(addr, len) }
    }

    unsafe fn flush_icache(&self, range: PageRange) -> Result<(), FakeError> {
        // SAFETY: the map's promise for this call is forwarded unchanged.
        unsafe { self.inner.flush_icache(range) }
    }
}

/// A7: a base that overlaps a recorded slab (inside it, or equal to its base), or is
/// unaligned, is given back and never recorded.
fn a7_host_returning_overlapping_base_is_refused<S: Storage>() {
    let recording = Fixture::new(P);
    let host = LyingHost::new(&recording);
    let map: JitMap<&LyingHost<'_>, S> = JitMap::new(&host);
    let real = map.reserve(4 * P).unwrap();
    let free_above = real + 4 * P;
    for lie in [real + P, real, real - P, free_above + 1] {
        let before = snapshot(&recording, &map);
        host.lie_next(lie);
        assert_eq!(
            map.reserve(2 * P),
            Err(Error::HostInvariant { addr: lie }),
            "lie {lie:#x}"
        );
        assert_eq!(host.given_back().last(), Some(&(lie, 2 * P)));
        assert_unchanged(&recording, &map, &before);
    }
    assert_eq!(host.given_back().len(), 4);
    // The real slab is untouched and still works.
    assert_eq!(map.release(real), Ok(()));
    assert_eq!(recording.reservations(), []);
}

/// A4/A7: a base whose end overflows the address space is refused without arithmetic
/// overflow, even when it equals the base of a recorded slab.
fn a7_host_returning_overflowing_base_is_refused<S: Storage>() {
    let recording = Fixture::new(P);
    let host = LyingHost::new(&recording);
    let unlimited = Config {
        max_reservation: usize::MAX,
        ..Config::DEFAULT
    };
    let map: JitMap<&LyingHost<'_>, S> = JitMap::with_config(&host, unlimited);
    // A (fake) slab of one page right below the top of the address space.
    let high = (usize::MAX & !(P - 1)) - P;
    host.lie_next(high);
    assert_eq!(map.reserve(P), Ok(high));
    // The next reservation lands at the same base and would end past the top.
    host.lie_next(high);
    assert_eq!(map.reserve(4 * P), Err(Error::HostInvariant { addr: high }));
    assert_eq!(host.given_back(), [(high, 4 * P)]);
    let top = usize::MAX & !(P - 1);
    host.lie_next(top);
    assert_eq!(map.reserve(2 * P), Err(Error::HostInvariant { addr: top }));
    assert_eq!(host.given_back(), [(high, 4 * P), (top, 2 * P)]);
    assert_eq!(map.slab_count(), 1);
    assert_eq!(map.release(high), Ok(()));
    assert_eq!(host.given_back(), [(high, 4 * P), (top, 2 * P), (high, P)]);
    assert_eq!(recording.log(), []);
}

for_each_storage!(
    reserve_gives_zeroed_read_write_memory,
    a1_reserve_zero_is_invalid,
    a2_reserve_non_page_multiple_is_invalid,
    a3_reserve_above_maximum_is_too_large,
    a4_reserve_near_usize_max_never_wraps,
    a6_host_reserve_failure_changes_nothing,
    a7_host_returning_overlapping_base_is_refused,
    a7_host_returning_overflowing_base_is_refused,
);
