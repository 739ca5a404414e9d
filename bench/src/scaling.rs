//! The scaling workloads (`--scaling`, and a cheap form in `--quick`): what one map operation
//! costs with 1k, 4k and 16k live regions or slabs, to show how the cost grows with the size
//! of the map's tables. Only mapcore runs them, as `StdJitMap` over `LibcHost` with
//! `DiscardPolicy::Retain`, like the `mapcore-retain` contender. Every size runs in the same
//! process with the same method; nothing asserts on timing.
//!
//! The measured region or slab sits among the others in address order, which is the order
//! of the map's sorted tables, never at the end where an insert or a removal moves nothing:
//!
//! - initialize/deinitialize: [`MEASURED`] regions (or slabs) spread evenly through the address
//!   order, visited in a shuffled order;
//! - the reserve, initialize, release cycle: its slab lands in a hole left in the middle of the
//!   others (the table prints where it landed);
//! - release of a slab of N regions: they were initialized in a shuffled address order, and
//!   release retires them newest first, so removals hit random table positions;
//! - shutdown: newest slab first, as shutdown does; the kernel maps each new slab below the
//!   previous one, so that is the front of the address order.
//!
//! Every region is one page between free pages, so each is its own mapping (VMA) and every
//! `mprotect` splits or merges one, the same at every N. The kernel's lookups of those
//! mappings are O(log n) too: a line without the map (the same `mprotect`s in the same layout)
//! shows their share.
//!
//! # Safety
//!
//! Calls the blob of regions the map has just initialized; the line without the map calls
//! `mmap`, `mprotect` and `munmap` on a mapping of its own.
#![expect(
    unsafe_code,
    reason = "runs JIT code; the line without the map calls libc"
)]

use std::fmt::Write as _;
use std::time::Duration;

use mapcore_std::{Config, DiscardPolicy, InitRequest, LibcHost, Prot, Segment, StdJitMap};

use crate::blob;
use crate::contenders::page_size;
use crate::cpu::thread_time;
use crate::report::median;
use crate::rng::Rng;

/// Live regions or slabs in `--scaling`.
pub(crate) const FULL: [usize; 3] = [1024, 4096, 16384];
/// Live regions or slabs in `--quick`: the first two of [`FULL`], so the ratio column still has
/// its reference.
pub(crate) const QUICK: [usize; 2] = [1024, 4096];
/// Regions (or slabs) initialized and deinitialized per round, spread among the N others.
pub(crate) const MEASURED: usize = 64;
/// Pages of one slab in the workloads with one region per slab: the region's page between
/// two free pages.
const SLAB_PAGES: usize = 3;
/// Pages of the slab cycled by the release workload: larger than the others, so that the
/// kernel puts it only into a hole at least this big.
const HOLE_PAGES: usize = 8;
/// Cycles of the release workload between two reads of the clock.
const CHUNK: usize = 16;
/// Seed of the shuffles, the same at every N.
const SEED: u64 = 0x7363_616c_696e_6721;
/// Size of the blob each region holds.
const BLOB: usize = 64;

/// Sampling parameters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Params {
    /// Samples per line; the table shows their median, min and max.
    pub(crate) samples: usize,
    /// CPU time one sample of the repeated workloads runs for, at least.
    pub(crate) sample: Duration,
}

/// One measured operation at one N.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    pub(crate) op: &'static str,
    pub(crate) n: usize,
    /// Nanoseconds of thread CPU time per operation, one value per sample.
    pub(crate) ns: Vec<f64>,
    /// Where the measured region or slab sat among the others.
    pub(crate) place: String,
}

/// A map like the `mapcore-retain` contender's.
fn new_map() -> StdJitMap {
    let config = Config {
        discard: DiscardPolicy::Retain,
        ..Config::DEFAULT
    };
    StdJitMap::with_config(LibcHost::new(), config)
}

/// Initializes a one-page code region at `addr` holding `code`; returns its key.
fn init(map: &StdJitMap, addr: usize, code: &[u8]) -> usize {
    let segments = [Segment::new(Prot::READ_EXEC, addr, page_size(), code)];
    map.initialize(&InitRequest::new(&segments, &[]))
        .expect("initialize")
}

/// Calls the blob of a region just initialized by [`init`].
fn call(key: usize) {
    // SAFETY: `key` is the address of a live region's code segment, which holds the blob and
    // was made executable (and coherent) by `initialize`.
    unsafe { blob::call(key) };
}

/// `m` positions in `0..n + m`, evenly spread and centred: the measured ones among `n` others.
fn spread(n: usize, m: usize) -> Vec<usize> {
    let total = n + m;
    (0..m).map(|k| (2 * k + 1) * total / (2 * m)).collect()
}

/// Nanoseconds per operation.
fn per_op(time: Duration, ops: usize) -> f64 {
    time.as_secs_f64() * 1e9 / ops as f64
}

/// Times rounds of initializing a region at each of `addrs` (in that order), calling it, and
/// deinitializing them again; returns the samples of ns per initialize and per deinitialize.
fn init_deinit(map: &StdJitMap, addrs: &[usize], code: &[u8], p: Params) -> [Vec<f64>; 2] {
    let mut keys = Vec::with_capacity(addrs.len());
    let mut out = [Vec::new(), Vec::new()];
    for _ in 0..p.samples {
        let (mut inits, mut deinits, mut ops) = (Duration::ZERO, Duration::ZERO, 0);
        while ops == 0 || inits + deinits < p.sample {
            let start = thread_time();
            keys.extend(addrs.iter().map(|&a| init(map, a, code)));
            inits += thread_time() - start;
            keys.iter().copied().for_each(call);
            let start = thread_time();
            for key in keys.drain(..) {
                map.deinitialize(key).expect("deinitialize");
            }
            deinits += thread_time() - start;
            ops += addrs.len();
        }
        out[0].push(per_op(inits, ops));
        out[1].push(per_op(deinits, ops));
    }
    out
}

/// Initialize and deinitialize with `n` other regions live in the same slab.
fn regions_in_slab(n: usize, code: &[u8], p: Params) -> [Line; 2] {
    let page = page_size();
    let map = new_map();
    let slots = n + MEASURED;
    // A spare page, then slots of two pages: the region's, and a free one after it.
    let base = map.reserve((1 + 2 * slots) * page).expect("reserve");
    let addr = |slot: usize| base + page + 2 * slot * page;
    let mut measured = spread(n, MEASURED);
    for slot in (0..slots).filter(|s| measured.binary_search(s).is_err()) {
        init(&map, addr(slot), code);
    }
    Rng(SEED).shuffle(&mut measured);
    let addrs: Vec<usize> = measured.into_iter().map(addr).collect();
    let [i, d] = init_deinit(&map, &addrs, code, p);
    let place = format!("{MEASURED} spread");
    [
        Line {
            op: "initialize, N regions in its slab",
            n,
            ns: i,
            place: place.clone(),
        },
        Line {
            op: "deinitialize, N regions in its slab",
            n,
            ns: d,
            place,
        },
    ]
}

/// Panics with errno if a libc call returned -1.
fn check(ret: libc::c_int, what: &str) {
    assert!(ret == 0, "{what}: {}", std::io::Error::last_os_error());
}

/// `mprotect` of one page at `addr`.
///
/// # Safety
///
/// `addr` is a page of the floor's own mapping, which nothing refers to.
unsafe fn protect(addr: usize, prot: libc::c_int) {
    let p: *mut libc::c_void = std::ptr::with_exposed_provenance_mut(addr);
    // SAFETY: the caller's page; no reference into it exists.
    check(unsafe { libc::mprotect(p, page_size(), prot) }, "mprotect");
}

/// The kernel's share of [`regions_in_slab`], without a map: the same layout in a plain
/// mapping, `n` other pages read-execute, and per operation one `mprotect` to read-execute and
/// one back to read-write of a measured page. What the kernel's mapping lookups cost at this N.
fn floor_in_slab(n: usize, p: Params) -> Line {
    let page = page_size();
    let slots = n + MEASURED;
    let len = (1 + 2 * slots) * page;
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let rx = libc::PROT_READ | libc::PROT_EXEC;
    // SAFETY: a new private anonymous mapping at an address the kernel picks.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            rw,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(base, libc::MAP_FAILED, "mmap");
    let base = base.expose_provenance();
    let addr = |slot: usize| base + page + 2 * slot * page;
    let mut measured = spread(n, MEASURED);
    for slot in (0..slots).filter(|s| measured.binary_search(s).is_err()) {
        // SAFETY: a page of the mapping above, which holds nothing.
        unsafe { protect(addr(slot), rx) };
    }
    Rng(SEED).shuffle(&mut measured);
    let addrs: Vec<usize> = measured.into_iter().map(addr).collect();
    let mut ns = Vec::with_capacity(p.samples);
    for _ in 0..p.samples {
        let (mut time, mut ops) = (Duration::ZERO, 0);
        while ops == 0 || time < p.sample {
            let start = thread_time();
            for &a in &addrs {
                // SAFETY: as above.
                unsafe { protect(a, rx) };
            }
            for &a in &addrs {
                // SAFETY: as above.
                unsafe { protect(a, rw) };
            }
            time += thread_time() - start;
            ops += addrs.len();
        }
        ns.push(per_op(time, ops));
    }
    let p: *mut libc::c_void = std::ptr::with_exposed_provenance_mut(base);
    // SAFETY: the whole mapping made above; nothing refers to it.
    check(unsafe { libc::munmap(p, len) }, "munmap");
    Line {
        op: "no map: mprotect RX + RW, N pages RX in the mapping",
        n,
        ns,
        place: format!("{MEASURED} spread"),
    }
}

/// Initialize and deinitialize one region per slab, with `n` other slabs live (one region
/// each).
fn regions_in_slabs(n: usize, code: &[u8], p: Params) -> [Line; 2] {
    let page = page_size();
    let map = new_map();
    let mut bases: Vec<usize> = (0..n + MEASURED)
        .map(|_| map.reserve(SLAB_PAGES * page).expect("reserve"))
        .collect();
    bases.sort_unstable();
    let mut measured = spread(n, MEASURED);
    for (i, &b) in bases.iter().enumerate() {
        if measured.binary_search(&i).is_err() {
            init(&map, b + page, code);
        }
    }
    Rng(SEED).shuffle(&mut measured);
    let addrs: Vec<usize> = measured.into_iter().map(|i| bases[i] + page).collect();
    let [i, d] = init_deinit(&map, &addrs, code, p);
    let place = format!("{MEASURED} spread");
    [
        Line {
            op: "initialize, N slabs of 1 region",
            n,
            ns: i,
            place: place.clone(),
        },
        Line {
            op: "deinitialize, N slabs of 1 region",
            n,
            ns: d,
            place,
        },
    ]
}

/// Reserve a slab, initialize one region in it and release it, with `n` other slabs live (one
/// region each). The other slabs are reserved around a placeholder that is then released,
/// which leaves a hole in the middle of them for the cycled slab.
fn release_among_slabs(n: usize, code: &[u8], p: Params) -> Line {
    let page = page_size();
    let map = new_map();
    let mut bases = Vec::with_capacity(n);
    let other = |bases: &mut Vec<usize>| {
        let b = map.reserve(SLAB_PAGES * page).expect("reserve");
        init(&map, b + page, code);
        bases.push(b);
    };
    (0..n / 2).for_each(|_| other(&mut bases));
    let placeholder = map.reserve(HOLE_PAGES * page).expect("reserve");
    (n / 2..n).for_each(|_| other(&mut bases));
    map.release(placeholder).expect("release");
    bases.sort_unstable();
    let (mut lowest, mut highest) = (usize::MAX, 0);
    let mut ns = Vec::with_capacity(p.samples);
    for _ in 0..p.samples {
        let (mut time, mut ops) = (Duration::ZERO, 0);
        while ops == 0 || time < p.sample {
            let mut cycled = [0; CHUNK];
            let start = thread_time();
            for b in &mut cycled {
                *b = map.reserve(HOLE_PAGES * page).expect("reserve");
                call(init(&map, *b + page, code));
                map.release(*b).expect("release");
            }
            time += thread_time() - start;
            ops += CHUNK;
            for b in cycled {
                let rank = bases.partition_point(|&x| x < b);
                lowest = lowest.min(rank);
                highest = highest.max(rank);
            }
        }
        ns.push(per_op(time, ops));
    }
    let place = if lowest == highest {
        format!("{lowest} below it")
    } else {
        format!("{lowest}-{highest} below it")
    };
    Line {
        op: "reserve + initialize + release, N other slabs of 1 region",
        n,
        ns,
        place,
    }
}

/// Release one slab holding `n` regions, initialized in a shuffled address order; ns per
/// region. Each sample builds the slab again (untimed).
fn release_of_regions(n: usize, code: &[u8], p: Params) -> Line {
    let page = page_size();
    let map = new_map();
    let mut order: Vec<usize> = (0..n).collect();
    Rng(SEED).shuffle(&mut order);
    let mut ns = Vec::with_capacity(p.samples);
    for _ in 0..p.samples {
        // A spare page, then slots of two pages: the region's, and a free one after it.
        let base = map.reserve((1 + 2 * n) * page).expect("reserve");
        for &slot in &order {
            init(&map, base + page + 2 * slot * page, code);
        }
        let start = thread_time();
        map.release(base).expect("release");
        ns.push(per_op(thread_time() - start, n));
    }
    Line {
        op: "release of 1 slab of N regions, per region",
        n,
        ns,
        place: "newest first, random".into(),
    }
}

/// Shut down a map of `n` slabs with one region each; ns per slab. Each sample builds a new
/// map (untimed).
fn shutdown(n: usize, code: &[u8], p: Params) -> Line {
    let page = page_size();
    let mut ns = Vec::with_capacity(p.samples);
    for _ in 0..p.samples {
        let map = new_map();
        for _ in 0..n {
            let b = map.reserve(SLAB_PAGES * page).expect("reserve");
            init(&map, b + page, code);
        }
        let start = thread_time();
        map.shutdown().expect("shutdown");
        ns.push(per_op(thread_time() - start, n));
        assert_eq!(map.slab_count(), 0, "shutdown left slabs");
    }
    Line {
        op: "shutdown of N slabs of 1 region, per slab",
        n,
        ns,
        place: "newest first, lowest".into(),
    }
}

/// Runs every scaling workload at every size in `sizes`, smallest first; `progress` hears of
/// each step.
pub(crate) fn run(sizes: &[usize], p: Params, mut progress: impl FnMut(&str)) -> Vec<Line> {
    let code = blob::padded(BLOB);
    let mut lines = Vec::new();
    for &n in sizes {
        progress(&format!("scaling: regions in one slab, N={n}"));
        lines.extend(regions_in_slab(n, &code, p));
        lines.push(floor_in_slab(n, p));
    }
    for &n in sizes {
        progress(&format!("scaling: slabs of one region, N={n}"));
        lines.extend(regions_in_slabs(n, &code, p));
    }
    for &n in sizes {
        progress(&format!("scaling: release among slabs, N={n}"));
        lines.push(release_among_slabs(n, &code, p));
    }
    for &n in sizes {
        progress(&format!("scaling: release of N regions, N={n}"));
        lines.push(release_of_regions(n, &code, p));
    }
    for &n in sizes {
        progress(&format!("scaling: shutdown, N={n}"));
        lines.push(shutdown(n, &code, p));
    }
    // Grouped by operation, in the order above.
    let ops: Vec<&str> = lines.iter().map(|l| l.op).fold(Vec::new(), |mut v, op| {
        if !v.contains(&op) {
            v.push(op);
        }
        v
    });
    lines.sort_by_key(|l| (ops.iter().position(|&o| o == l.op), l.n));
    lines
}

/// `12,345` style.
fn grouped(v: f64) -> String {
    let digits = format!("{:.0}", v);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The Markdown table: op, N, ns/op median [min-max], ratio to the same op at N=1k, and
/// where the measured region or slab sat.
pub(crate) fn markdown(lines: &[Line], p: Params, command: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "### Scaling: cost per operation against live regions and slabs\n"
    );
    let _ = writeln!(
        s,
        "`{command}`; mapcore-retain (`StdJitMap`, `LibcHost`); {} samples of at least {} ms \
         each (release and shutdown: one operation per sample); thread CPU time.\n",
        p.samples,
        p.sample.as_millis()
    );
    let _ = writeln!(
        s,
        "| op | N | ns/op median [min-max] | x N=1k | measured at |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---|");
    for line in lines {
        let med = median(&line.ns);
        let min = line.ns.iter().copied().fold(f64::INFINITY, f64::min);
        let max = line.ns.iter().copied().fold(0.0, f64::max);
        let reference = lines
            .iter()
            .find(|l| l.op == line.op && l.n == 1024)
            .map(|l| median(&l.ns));
        let ratio = reference.map_or_else(|| "n/a".into(), |r| format!("{:.2}", med / r));
        let _ = writeln!(
            s,
            "| {} | {} | {} [{}-{}] | {ratio} | {} |",
            line.op,
            line.n,
            grouped(med),
            grouped(min),
            grouped(max),
            line.place
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_even_and_centred() {
        assert_eq!(spread(6, 2), vec![2, 6]);
        let s = spread(1024, MEASURED);
        assert_eq!(s.len(), MEASURED);
        assert!(s.windows(2).all(|w| w[1] - w[0] == 17));
        assert_eq!((s[0], s[MEASURED - 1]), (8, 1079));
    }

    #[test]
    fn grouped_inserts_commas() {
        assert_eq!(grouped(1234567.4), "1,234,567");
        assert_eq!(grouped(999.0), "999");
        assert_eq!(grouped(1000.0), "1,000");
    }

    #[test]
    fn every_workload_runs_and_reports_every_size() {
        let p = Params {
            samples: 1,
            sample: Duration::ZERO,
        };
        let lines = run(&[64, 128], p, |_| {});
        assert_eq!(lines.len(), 8 * 2);
        assert!(lines.iter().all(|l| l.ns.len() == 1 && l.ns[0] > 0.0));
        let table = markdown(&lines, p, "test");
        assert_eq!(table.matches("| 64 |").count(), 8, "{table}");
    }
}
