//! A recording, fault-injecting host and a checker that compares a map with the memory it
//! manages. For tests of any crate: enable the `testing` feature (it needs `std`).
//!
//! [`RecordingHost`] simulates memory: addresses are plain numbers handed out first-fit (so a
//! released base is reused at once, as the kernel does), each page has a protection, contents
//! are stored sparsely, and a write to a page that is not read-write panics as a real process
//! would fault. Every call is logged, and any fallible call can be made to fail.
#![expect(
    unsafe_code,
    reason = "implements the unsafe host trait; contains no unsafe block"
)]

use std::boxed::Box;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};
use std::vec;
use std::vec::Vec;

mod counting_alloc;

pub use counting_alloc::{count_allocations, without_counting, CountingAllocator};

use crate::addr::PageRange;
use crate::host::{Capabilities, Host, HostError, HostErrorKind, HostOp};
use crate::map::{DiscardPolicy, JitMap};
use crate::prot::Prot;
use crate::regions::RegionState;
use crate::slabs::SlabState;
use crate::spans::Owner;
use crate::table::Storage;

/// The error a [`RecordingHost`] returns for an injected failure: an errno value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FakeError {
    /// The errno value (ENOMEM = 12, EACCES = 13, EINVAL = 22).
    pub errno: i32,
}

impl FakeError {
    /// ENOMEM, the default injected failure.
    pub const ENOMEM: Self = Self { errno: 12 };
    /// EACCES, as a W^X-enforcing kernel returns for execute permission.
    pub const EACCES: Self = Self { errno: 13 };
}

impl HostError for FakeError {
    fn kind(&self) -> HostErrorKind {
        match self.errno {
            12 => HostErrorKind::OutOfMemory,
            13 => HostErrorKind::PermissionDenied,
            22 => HostErrorKind::InvalidArgument,
            _ => HostErrorKind::Other,
        }
    }
}

impl core::fmt::Display for FakeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "injected failure (errno {})", self.errno)
    }
}

impl core::error::Error for FakeError {}

/// One call the host received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `reserve(size)`; `base` is what it returned.
    Reserve {
        /// Size asked for.
        size: usize,
        /// Base returned, if it succeeded.
        base: Option<usize>,
    },
    /// `release(base, size)`.
    Release {
        /// Base.
        base: usize,
        /// Size.
        size: usize,
    },
    /// `protect(range, prot)`.
    Protect {
        /// Pages.
        range: PageRange,
        /// New protection.
        prot: Prot,
    },
    /// `discard(range)`.
    Discard {
        /// Pages.
        range: PageRange,
    },
    /// `flush_icache(range)`.
    FlushIcache {
        /// Pages.
        range: PageRange,
    },
    /// `write(addr, bytes)`.
    Write {
        /// Address.
        addr: usize,
        /// Number of bytes.
        len: usize,
    },
    /// `fill_zero(addr, len)`.
    FillZero {
        /// Address.
        addr: usize,
        /// Number of bytes.
        len: usize,
    },
    /// `fill_trap(addr, len)`.
    FillTrap {
        /// Address.
        addr: usize,
        /// Number of bytes.
        len: usize,
    },
}

impl Call {
    /// The host operation, for fallible calls.
    #[must_use]
    pub fn op(&self) -> Option<HostOp> {
        match self {
            Self::Reserve { .. } => Some(HostOp::Reserve),
            Self::Release { .. } => Some(HostOp::Release),
            Self::Protect { .. } => Some(HostOp::Protect),
            Self::Discard { .. } => Some(HostOp::Discard),
            Self::FlushIcache { .. } => Some(HostOp::FlushIcache),
            Self::Write { .. } | Self::FillZero { .. } | Self::FillTrap { .. } => None,
        }
    }
}

/// A logged call and whether it succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// The call.
    pub call: Call,
    /// Whether it returned `Ok` (always true for writes).
    pub ok: bool,
}

#[derive(Debug)]
struct Reservation {
    size: usize,
    /// One protection per page.
    prots: Vec<Prot>,
}

#[derive(Debug, Default)]
struct Inner {
    reservations: BTreeMap<usize, Reservation>,
    /// Page address to contents; absent pages read as zero.
    pages: BTreeMap<usize, Box<[u8]>>,
    log: Vec<Event>,
    fallible_calls: u64,
    fail_at: BTreeMap<u64, FakeError>,
    fail_ops: Vec<(HostOp, FakeError)>,
}

/// A simulated host that records every call and fails the calls it is told to.
#[derive(Debug)]
pub struct RecordingHost {
    page_size: usize,
    capabilities: Capabilities,
    inner: Mutex<Inner>,
}

/// First address handed out.
const FIRST_BASE: usize = 0x10_0000;

impl Default for RecordingHost {
    fn default() -> Self {
        Self::new(4096)
    }
}

impl RecordingHost {
    /// The byte [`Host::fill_trap`] stores (x86's `int3`).
    pub const TRAP_BYTE: u8 = 0xcc;

    /// A host with pages of `page_size` bytes (a power of two) and full capabilities.
    #[must_use]
    pub fn new(page_size: usize) -> Self {
        Self::with_capabilities(page_size, Capabilities::FULL)
    }

    /// A host like a dual-mapped one: full capabilities, and the map's writes go through an
    /// alias, whatever the protection (JIT'd code, [`poke`](Self::poke), still faults on a
    /// page that is not writable).
    #[must_use]
    pub fn aliased(page_size: usize) -> Self {
        Self::with_capabilities(
            page_size,
            Capabilities {
                writes_through_alias: true,
                ..Capabilities::FULL
            },
        )
    }

    /// A host with the given page size and capabilities.
    #[must_use]
    pub fn with_capabilities(page_size: usize, capabilities: Capabilities) -> Self {
        assert!(page_size.is_power_of_two());
        Self {
            page_size,
            capabilities,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes the fallible call `n` calls from now fail (`n = 0`: the next one).
    pub fn fail_nth(&self, n: u64, error: FakeError) {
        let mut inner = self.inner();
        let at = inner.fallible_calls + n;
        inner.fail_at.insert(at, error);
    }

    /// Makes every call of `op` fail until [`clear_faults`](Self::clear_faults).
    pub fn fail_op(&self, op: HostOp, error: FakeError) {
        self.inner().fail_ops.push((op, error));
    }

    /// Cancels every planned failure.
    pub fn clear_faults(&self) {
        let mut inner = self.inner();
        inner.fail_at.clear();
        inner.fail_ops.clear();
    }

    /// How many fallible calls (reserve, release, protect, discard, flush) were made so far.
    #[must_use]
    pub fn fallible_calls(&self) -> u64 {
        self.inner().fallible_calls
    }

    /// The calls logged so far.
    #[must_use]
    pub fn log(&self) -> Vec<Event> {
        self.inner().log.clone()
    }

    /// Clears the log (not the memory).
    pub fn clear_log(&self) {
        self.inner().log.clear();
    }

    /// How many logged calls were of `op`.
    #[must_use]
    pub fn count(&self, op: HostOp) -> usize {
        self.inner()
            .log
            .iter()
            .filter(|e| e.call.op() == Some(op))
            .count()
    }

    /// The protection of the page holding `addr`, or `None` if it is not reserved.
    #[must_use]
    pub fn prot_at(&self, addr: usize) -> Option<Prot> {
        let inner = self.inner();
        let (base, r) = inner.reservations.range(..=addr).next_back()?;
        (addr < base + r.size).then(|| r.prots[(addr - base) / self.page_size])
    }

    /// The reservations currently held, as `(base, size)`.
    #[must_use]
    pub fn reservations(&self) -> Vec<(usize, usize)> {
        self.inner()
            .reservations
            .iter()
            .map(|(b, r)| (*b, r.size))
            .collect()
    }

    /// Reads `len` bytes at `addr`, whatever the protection.
    ///
    /// # Panics
    ///
    /// If the bytes are not all reserved.
    #[must_use]
    pub fn read(&self, addr: usize, len: usize) -> Vec<u8> {
        let inner = self.inner();
        let mut out = vec![0; len];
        // One page at a time: look each page up once, not each byte.
        let mut done = 0;
        while done < len {
            let a = addr + done;
            assert!(
                Self::reserved(&inner, a),
                "read of unreserved address {a:#x}"
            );
            let page = a & !(self.page_size - 1);
            let n = (page + self.page_size - a).min(len - done);
            if let Some(p) = inner.pages.get(&page) {
                out[done..done + n].copy_from_slice(&p[a - page..a - page + n]);
            }
            done += n;
        }
        out
    }

    /// Reads a native-endian u64 at `addr`.
    #[must_use]
    pub fn read_u64(&self, addr: usize) -> u64 {
        let bytes = self.read(addr, 8);
        u64::from_ne_bytes(bytes.try_into().unwrap_or([0; 8]))
    }

    /// Writes through the simulated memory as JIT'd code would: only to read-write pages.
    ///
    /// # Panics
    ///
    /// If a page is not reserved or not writable (a real process would fault).
    pub fn poke(&self, addr: usize, bytes: &[u8]) {
        self.store(addr, bytes.len(), false, |i| bytes[i]);
    }

    /// Writes as the caller of a dual-mapped host does, through its read-write alias: whatever
    /// the protection if the host has [`Capabilities::writes_through_alias`], otherwise as
    /// [`poke`](Self::poke).
    ///
    /// # Panics
    ///
    /// If a page is not reserved, or not writable on a host without an alias.
    pub fn poke_through_alias(&self, addr: usize, bytes: &[u8]) {
        self.store(addr, bytes.len(), true, |i| bytes[i]);
    }

    fn reserved(inner: &Inner, addr: usize) -> bool {
        inner
            .reservations
            .range(..=addr)
            .next_back()
            .is_some_and(|(b, r)| addr < b + r.size)
    }

    /// Stores bytes; `alias`: through the host's alias, if it has one (no protection check).
    fn store(&self, addr: usize, len: usize, alias: bool, byte: impl Fn(usize) -> u8) {
        let alias = alias && self.capabilities.writes_through_alias;
        let page_size = self.page_size;
        let mut inner = self.inner();
        // One page at a time: look each page up once, not each byte.
        let mut done = 0;
        while done < len {
            let a = addr + done;
            let (base, r) = inner
                .reservations
                .range(..=a)
                .next_back()
                .filter(|(b, r)| a < *b + r.size)
                .unwrap_or_else(|| panic!("write to unreserved address {a:#x}"));
            let prot = r.prots[(a - base) / page_size];
            assert!(
                alias || prot.contains(Prot::WRITE),
                "write to {a:#x}, a {prot} page: segmentation fault"
            );
            let page = a & !(page_size - 1);
            let n = (page + page_size - a).min(len - done);
            let values = (done..done + n).map(&byte);
            if let Some(p) = inner.pages.get_mut(&page) {
                p[a - page..a - page + n]
                    .iter_mut()
                    .zip(values)
                    .for_each(|(d, v)| *d = v);
            } else {
                let mut p = vec![0u8; page_size].into_boxed_slice();
                let mut any = false;
                for (d, v) in p[a - page..a - page + n].iter_mut().zip(values) {
                    *d = v;
                    any |= v != 0;
                }
                // Pages that would hold only zeros stay absent (they read as zero).
                if any {
                    inner.pages.insert(page, p);
                }
            }
            done += n;
        }
    }

    /// Counts a fallible call and decides whether it fails.
    fn fallible(inner: &mut Inner, op: HostOp) -> Result<(), FakeError> {
        let index = inner.fallible_calls;
        inner.fallible_calls += 1;
        if let Some(error) = inner.fail_at.remove(&index) {
            return Err(error);
        }
        match inner.fail_ops.iter().find(|(o, _)| *o == op) {
            Some((_, error)) => Err(*error),
            None => Ok(()),
        }
    }

    fn pages_of(inner: &mut Inner, range: PageRange, page_size: usize) -> &mut [Prot] {
        let (base, r) = inner
            .reservations
            .range_mut(..=range.start())
            .next_back()
            .filter(|(b, r)| range.end() <= **b + r.size)
            .unwrap_or_else(|| panic!("host call on unreserved pages {range:?}"));
        let first = (range.start() - base) / page_size;
        &mut r.prots[first..first + range.len() / page_size]
    }

    /// Checks that `map`'s bookkeeping agrees with this host's memory: the same slabs; each
    /// live region's pages with their segment's protection; free pages at the protection the
    /// map recorded (read-write where it recorded none) and, when the map discards or
    /// protects lazily, holding no old bytes (trap bytes or zeros on executable free pages); the
    /// tables' own invariants.
    ///
    /// # Errors
    ///
    /// A description of the first disagreement.
    pub fn check_map<H: Host, S: Storage>(
        &self,
        map: &JitMap<H, S>,
    ) -> Result<(), std::string::String> {
        map.check_invariants()?;
        let discarding =
            map.config().discard == DiscardPolicy::Discard && self.capabilities.discard;
        let lazy = self.capabilities.writes_through_alias;
        map.with_state(|state| {
            let inner = self.inner();
            let slabs: Vec<(usize, usize)> = state.slabs().map(|s| (s.base, s.size)).collect();
            let held: Vec<(usize, usize)> = inner
                .reservations
                .iter()
                .map(|(b, r)| (*b, r.size))
                .collect();
            if slabs != held {
                return Err(std::format!(
                    "map slabs {slabs:x?} but host reservations {held:x?}"
                ));
            }
            // Per recorded page: the protection it should have, and who holds it.
            let mut expected: BTreeMap<usize, (Prot, Holder)> = BTreeMap::new();
            let mut quarantined = BTreeSet::new();
            for page_span in state.page_spans() {
                let span = page_span.span;
                let pages = (span.range.start()..span.range.end()).step_by(self.page_size);
                let holder = match page_span.owner {
                    Owner::Region(id) => {
                        let live = state
                            .region(id)
                            .is_some_and(|r| r.state == RegionState::Live);
                        if live {
                            Holder::LiveRegion
                        } else {
                            Holder::RegionInProgress
                        }
                    }
                    Owner::Free => Holder::Free,
                    Owner::Quarantined => {
                        quarantined.extend(pages);
                        continue;
                    }
                };
                for page in pages {
                    expected.insert(page, (span.prot, holder));
                }
            }
            // Slabs being released or whose release failed, and slabs whose free pages may
            // have lost their recorded protection.
            let unsettled: Vec<(usize, usize)> = state
                .slabs()
                .filter(|s| s.state != SlabState::Live)
                .map(|s| (s.base, s.base + s.size))
                .collect();
            let lost: Vec<(usize, usize)> = state
                .slabs()
                .filter(|s| s.lost_prots)
                .map(|s| (s.base, s.base + s.size))
                .collect();
            let within = |list: &[(usize, usize)], page: usize| {
                list.iter().any(|(b, e)| *b <= page && page < *e)
            };
            let settled = |page: usize| !quarantined.contains(&page) && !within(&unsettled, page);
            for (base, r) in &inner.reservations {
                for (i, prot) in r.prots.iter().enumerate() {
                    let page = base + i * self.page_size;
                    if !settled(page) {
                        continue;
                    }
                    let (want, holder) = match expected.get(&page) {
                        Some(&found) => found,
                        None if within(&lost, page) => continue,
                        None => (Prot::READ_WRITE, Holder::Free),
                    };
                    if *prot != want && holder != Holder::RegionInProgress {
                        return Err(std::format!(
                            "page {page:#x} is {prot}, expected {want} ({holder:?})"
                        ));
                    }
                    let free = holder == Holder::Free;
                    if free && (discarding || lazy) {
                        let trap = lazy && !discarding && want.contains(Prot::EXEC);
                        let bytes = inner.pages.get(&page);
                        // Freed code: trap bytes where it was written, zeros elsewhere.
                        let clean = if trap {
                            bytes.is_none_or(|b| b.iter().all(|&v| v == Self::TRAP_BYTE || v == 0))
                        } else {
                            bytes.is_none_or(|b| b.iter().all(|&v| v == 0))
                        };
                        if !clean {
                            let what = if trap { "trap bytes or zeros" } else { "zeros" };
                            return Err(std::format!(
                                "free page {page:#x} ({want}) holds old bytes, not {what}"
                            ));
                        }
                    }
                }
            }
            Ok(())
        })
        .map_err(|e: std::string::String| e)
    }
}

/// Who holds a page, for [`RecordingHost::check_map`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holder {
    LiveRegion,
    /// A region being initialized or torn down: its pages may be mid-change.
    RegionInProgress,
    Free,
}

// SAFETY: (1) reserve hands out first-fit, page-aligned, disjoint ranges of simulated memory
// that read as zero and are read-write; (2) protect applies the whole range on Ok; (3) discard
// drops contents so pages read zero; (4) write and fill_zero store exactly the given bytes;
// (5) nothing calls back into a map; (6) the page size is fixed at construction. (4) holds for
// fill_trap too, and with `writes_through_alias` the stores skip the protection check as an
// alias would.
unsafe impl Host for RecordingHost {
    type Error = FakeError;

    fn page_size(&self) -> usize {
        self.page_size
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    fn reserve(&self, size: usize) -> Result<usize, FakeError> {
        let mut inner = self.inner();
        let result = Self::fallible(&mut inner, HostOp::Reserve).and_then(|()| {
            let mut base = FIRST_BASE;
            for (b, r) in &inner.reservations {
                if base.checked_add(size).is_some_and(|end| end <= *b) {
                    break;
                }
                base = b + r.size;
            }
            base.checked_add(size).ok_or(FakeError::ENOMEM)?;
            let pages = size / self.page_size;
            inner.reservations.insert(
                base,
                Reservation {
                    size,
                    prots: vec![Prot::READ_WRITE; pages],
                },
            );
            Ok(base)
        });
        inner.log.push(Event {
            call: Call::Reserve {
                size,
                base: result.ok(),
            },
            ok: result.is_ok(),
        });
        result
    }

    unsafe fn release(&self, base: usize, size: usize) -> Result<(), FakeError> {
        let mut inner = self.inner();
        let result = Self::fallible(&mut inner, HostOp::Release);
        inner.log.push(Event {
            call: Call::Release { base, size },
            ok: result.is_ok(),
        });
        result?;
        let r = inner
            .reservations
            .remove(&base)
            .unwrap_or_else(|| panic!("release of unknown {base:#x}"));
        assert_eq!(r.size, size, "release with the wrong size");
        let dropped: Vec<usize> = inner
            .pages
            .range(base..base + size)
            .map(|(p, _)| *p)
            .collect();
        for page in dropped {
            inner.pages.remove(&page);
        }
        Ok(())
    }

    unsafe fn protect(&self, range: PageRange, prot: Prot) -> Result<(), FakeError> {
        let page_size = self.page_size;
        let mut inner = self.inner();
        let result = Self::fallible(&mut inner, HostOp::Protect);
        inner.log.push(Event {
            call: Call::Protect { range, prot },
            ok: result.is_ok(),
        });
        let pages = Self::pages_of(&mut inner, range, page_size);
        // A failing mprotect may have changed part of the range (it does, on Linux): apply
        // the first half.
        let applied = if result.is_ok() {
            pages.len()
        } else {
            pages.len() / 2
        };
        pages[..applied].iter_mut().for_each(|p| *p = prot);
        result
    }

    unsafe fn discard(&self, range: PageRange) -> Result<(), FakeError> {
        let page_size = self.page_size;
        let mut inner = self.inner();
        let result = Self::fallible(&mut inner, HostOp::Discard);
        inner.log.push(Event {
            call: Call::Discard { range },
            ok: result.is_ok(),
        });
        let _ = Self::pages_of(&mut inner, range, page_size);
        if result.is_ok() && self.capabilities.discard {
            let dropped: Vec<usize> = inner
                .pages
                .range(range.start()..range.end())
                .map(|(p, _)| *p)
                .collect();
            for page in dropped {
                inner.pages.remove(&page);
            }
        }
        result
    }

    unsafe fn write(&self, addr: usize, bytes: &[u8]) {
        self.inner().log.push(Event {
            call: Call::Write {
                addr,
                len: bytes.len(),
            },
            ok: true,
        });
        self.store(addr, bytes.len(), true, |i| bytes[i]);
    }

    unsafe fn fill_zero(&self, addr: usize, len: usize) {
        self.inner().log.push(Event {
            call: Call::FillZero { addr, len },
            ok: true,
        });
        self.store(addr, len, true, |_| 0);
    }

    unsafe fn fill_trap(&self, addr: usize, len: usize) {
        self.inner().log.push(Event {
            call: Call::FillTrap { addr, len },
            ok: true,
        });
        self.store(addr, len, true, |_| Self::TRAP_BYTE);
    }

    unsafe fn flush_icache(&self, range: PageRange) -> Result<(), FakeError> {
        let page_size = self.page_size;
        let mut inner = self.inner();
        let result = Self::fallible(&mut inner, HostOp::FlushIcache);
        inner.log.push(Event {
            call: Call::FlushIcache { range },
            ok: result.is_ok(),
        });
        let _ = Self::pages_of(&mut inner, range, page_size);
        result
    }
}
