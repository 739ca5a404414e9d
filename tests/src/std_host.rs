//! mapcore-std's real hosts as a [`Probe`], the flip host (`LibcHost`) or, with the setup's
//! alias bit, the dual-mapped one (`DualMappedHost`): the same operations and model as on the
//! recording host, with the kernel as the oracle. No faults can be injected into a real host,
//! so the model is told none.
//!
//! - protections: `/proc/self/maps`, for every page of every slab;
//! - leaks: a released slab's range must be unmapped right after the release;
//! - residency: freed pages must not be resident (`/proc/self/pagemap`, the `mincore`
//!   information without unsafe code) when the map discards;
//! - contents: read through `/proc/self/mem`, which ignores page protections; in-place content
//!   is written the same way on the flip host, and through the read-write alias on the
//!   dual-mapped one (whose free pages may be at any protection, and whose shared mappings
//!   `/proc/self/mem` cannot write where they are not writable).

use std::fs::File;
use std::os::unix::fs::FileExt;

use mapcore::{Capabilities, Growable, Host, JitMap, Prot, Storage};
use mapcore_std::{DualMappedHost, LibcHost, OsError};

use crate::driver::{configs, drive, Mapped, Probe, SmallStorage, Sweep, Tally};
use crate::input::{Op, Setup};
use crate::model::{CallM, FaultPlan, FreeBytes, Model, PageState};

/// `/proc/self` files of this process, and the dual-mapped host whose alias in-place content
/// is written through, if the map is on one.
#[derive(Debug)]
pub struct Libc<'h> {
    alias: Option<&'h DualMappedHost>,
    mem: File,
    pagemap: File,
    page: usize,
    /// Check that a released slab's range is unmapped right after the release. Only sound
    /// when no other thread maps memory meanwhile (the fuzz target; not a multi-threaded test
    /// harness, where another thread may get the range at once).
    pub check_released: bool,
}

impl Libc<'_> {
    /// Opens the files.
    ///
    /// # Panics
    ///
    /// If `/proc/self` cannot be read (not Linux, or no procfs).
    #[must_use]
    pub fn new(page: usize) -> Self {
        let open = |name: &str| {
            File::options()
                .read(true)
                .write(name == "mem")
                .open(format!("/proc/self/{name}"))
                .unwrap_or_else(|e| panic!("/proc/self/{name}: {e}"))
        };
        Self {
            alias: None,
            mem: open("mem"),
            pagemap: open("pagemap"),
            page,
            check_released: true,
        }
    }

    /// Whether the page holding `addr` is resident (or swapped).
    fn resident(&self, addr: usize) -> bool {
        let mut entry = [0u8; 8];
        let offset = (addr / self.page * 8) as u64;
        match self.pagemap.read_exact_at(&mut entry, offset) {
            Ok(()) => u64::from_le_bytes(entry) >> 62 != 0,
            Err(e) => panic!("/proc/self/pagemap at {addr:#x}: {e}"),
        }
    }
}

/// The mappings of this process: `(start, end, prot)`.
fn mappings() -> Vec<(usize, usize, Prot)> {
    let maps = std::fs::read_to_string("/proc/self/maps")
        .unwrap_or_else(|e| panic!("/proc/self/maps: {e}"));
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (start, end) = fields.next()?.split_once('-')?;
            let perms = fields.next()?.as_bytes();
            let bit = |i: usize, c: u8, v: u8| if perms.get(i) == Some(&c) { v } else { 0 };
            let prot = Prot::from_bits(bit(0, b'r', 1) | bit(1, b'w', 2) | bit(2, b'x', 4))?;
            Some((
                usize::from_str_radix(start, 16).ok()?,
                usize::from_str_radix(end, 16).ok()?,
                prot,
            ))
        })
        .collect()
}

/// A map over a real host as a [`Subject`](crate::driver::Subject), checked with
/// [`JitMap::check_invariants`] after every operation.
pub fn libc_subject<H: Host<Error = OsError>, S: Storage>(map: JitMap<H, S>) -> Mapped<H, S> {
    Mapped {
        map,
        errno: |e| e.raw_os_error(),
        check: |map| {
            map.check_invariants()
                .map_err(|e| format!("check_invariants: {e}"))
        },
    }
}

impl Probe for Libc<'_> {
    fn injects_faults(&self) -> bool {
        false
    }

    fn fallible_calls(&self) -> Option<Vec<CallM>> {
        None
    }

    fn arm(&self, _faults: &FaultPlan) {}

    fn disarm(&self) {}

    fn predict_base(&self, _model: &Model, _size: usize) -> Option<usize> {
        None
    }

    fn poke(&self, addr: usize, bytes: &[u8]) {
        let at = self
            .alias
            .map_or(Some(addr), |host| host.alias_address(addr));
        let Some(at) = at else {
            panic!("in-place content at {addr:#x}, in no slab of the dual-mapped host");
        };
        if let Err(e) = self.mem.write_all_at(bytes, at as u64) {
            panic!("/proc/self/mem write at {addr:#x}: {e}");
        }
    }

    fn read(&self, addr: usize, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        if let Err(e) = self.mem.read_exact_at(&mut out, addr as u64) {
            panic!("/proc/self/mem read at {addr:#x}: {e}");
        }
        out
    }

    fn check(&self, model: &Model, _sweep: Sweep, _pokes: &[(usize, usize)]) -> Result<(), String> {
        // /proc/self/maps is read whole anyway: every page's protection, whatever `sweep`.
        let maps = mappings();
        let vma = |addr: usize| maps.iter().find(|m| m.0 <= addr && addr < m.1);
        for (&addr, state) in model.pages() {
            let Some(&(_, _, prot)) = vma(addr) else {
                return Err(format!("slab page {addr:#x} is not mapped"));
            };
            if state.expected_prot().is_some_and(|want| want != prot) {
                return Err(format!(
                    "page {addr:#x} ({state:?}) is {prot} in /proc/self/maps"
                ));
            }
        }
        for &(base, size) in model.released.iter().filter(|_| self.check_released) {
            if let Some(m) = maps.iter().find(|m| m.0 < base + size && base < m.1) {
                return Err(format!(
                    "released slab {base:#x}+{size:#x} is still mapped: {m:x?}"
                ));
            }
        }
        // Residency only for the pages this operation freed: a free page the driver wrote
        // in place and zeroed again (a rejected request) is resident without the map's fault.
        if model.cfg.discarding() {
            for &addr in &model.touched {
                let zero = matches!(
                    model.page_state(addr),
                    Some(PageState::Free {
                        bytes: FreeBytes::Zero,
                        ..
                    })
                );
                if zero && self.resident(addr) {
                    return Err(format!(
                        "free page {addr:#x} is still resident after discard"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Replays operations on one of mapcore-std's real hosts (the dual-mapped one if the setup's
/// alias bit is set, else the flip host); panics on any disagreement. Faults in the input are
/// ignored; the setup's page size and capability flags are the real host's.
#[inline]
pub fn run_std(setup: &Setup, ops: &[Op]) {
    run_std_with(setup, ops, None, true);
}

/// [`run_std`] with an outcome tally; `check_released` as in [`Libc`]
/// (false in a multi-threaded test harness).
#[inline]
pub fn run_std_with(setup: &Setup, ops: &[Op], tally: Option<&mut Tally>, check_released: bool) {
    if setup.writes_through_alias() {
        let host = DualMappedHost::new();
        let probe = Libc {
            check_released,
            alias: Some(&host),
            ..Libc::new(host.page_size())
        };
        run_on(&host, setup, ops, tally, &probe);
    } else {
        let host = LibcHost::new();
        let probe = Libc {
            check_released,
            ..Libc::new(host.page_size())
        };
        run_on(host, setup, ops, tally, &probe);
    }
}

/// Drives `ops` on a map over `host` with `probe`.
fn run_on<H: Host<Error = OsError>>(
    host: H,
    setup: &Setup,
    ops: &[Op],
    tally: Option<&mut Tally>,
    probe: &Libc<'_>,
) {
    let page = host.page_size();
    let capabilities: Capabilities = host.capabilities();
    if setup.growable() {
        let (config, model) = configs(setup, page, capabilities, (None, None, None));
        let map: JitMap<H, Growable> = JitMap::with_config(host, config);
        drive(
            Box::new(libc_subject(map)),
            probe,
            Model::new(model),
            ops,
            tally,
        );
    } else {
        let (config, model) = configs(setup, page, capabilities, (Some(4), Some(6), Some(12)));
        let map: JitMap<H, SmallStorage> = JitMap::with_config(host, config);
        drive(
            Box::new(libc_subject(map)),
            probe,
            Model::new(model),
            ops,
            tally,
        );
    }
}
