//! W5 (`--threads`, and a cheap form in `--quick`): the W1 4 KiB cycle on two threads of one
//! process with one shared `StdJitMap`, for each of mapcore's modes, to count what a cycle
//! costs the rest of the process: system calls per op (strace N/2N, through `--ops N --only
//! MODE/SHAPE`) and TLB shootdowns per op (the `TLB` line of `/proc/interrupts`, N/2N in
//! process). Two shapes ([`Shape`]): both threads cycle, or one cycles while the other runs
//! JIT code, which is where a flush of the page tables has to interrupt another CPU.
//!
//! Each thread has its own page of one slab (spare pages around them, as in the other
//! workloads). An op is one cycle by any thread. Wall-clock rates are printed too, but two
//! vCPUs shared with other work cannot show scaling, and nothing here claims any.
//!
//! # Safety
//!
//! Calls the blob of regions the map has just initialized.
#![expect(unsafe_code, reason = "runs JIT code")]

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use mapcore_std::{DiscardPolicy, InitRequest, Prot, Segment, StdJitMap};

use crate::blob;
use crate::contenders::mapcore::{name, new_map};
use crate::contenders::{page_size, Security};
use crate::report::{median, si};
use crate::tlb;

/// Threads sharing the map.
const THREADS: usize = 2;

/// What the two threads do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Both cycle, each its own page.
    BothCycle,
    /// One cycles; the other calls the code of a region it keeps live, in a loop, until the
    /// first is done: a JIT that compiles while its code runs.
    CycleBesideRunner,
}

/// Every shape, in report order.
pub(crate) const SHAPES: [Shape; 2] = [Shape::BothCycle, Shape::CycleBesideRunner];

impl Shape {
    /// The workload id, for `--ops N --only MODE/ID`.
    pub(crate) fn id(self) -> &'static str {
        match self {
            Self::BothCycle => "w5-2t",
            Self::CycleBesideRunner => "w5-run",
        }
    }

    /// What the threads do, for the table.
    fn label(self) -> &'static str {
        match self {
            Self::BothCycle => "2 cycling",
            Self::CycleBesideRunner => "1 cycling, 1 running code",
        }
    }

    /// Threads that cycle.
    fn cycling(self) -> usize {
        match self {
            Self::BothCycle => THREADS,
            Self::CycleBesideRunner => 1,
        }
    }
}

/// The shape whose id is `id`, if there is one.
pub(crate) fn shape(id: &str) -> Option<Shape> {
    SHAPES.into_iter().find(|s| s.id() == id)
}
/// mapcore's modes, in report order.
pub(crate) const MODES: [(Security, DiscardPolicy); 4] = [
    (Security::Flip, DiscardPolicy::Retain),
    (Security::Flip, DiscardPolicy::Discard),
    (Security::Dual, DiscardPolicy::Retain),
    (Security::Dual, DiscardPolicy::Discard),
];

/// The mode called `name`, if there is one.
pub(crate) fn mode(mode_name: &str) -> Option<(Security, DiscardPolicy)> {
    MODES.into_iter().find(|&(s, p)| name(s, p) == mode_name)
}

/// One run: `ops` cycles over the cycling threads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Run {
    pub(crate) ops: u64,
    /// From the moment both threads start cycling until both are done.
    pub(crate) wall: Duration,
    /// TLB shootdowns the whole machine handled in that time.
    pub(crate) shootdowns: Option<u64>,
}

/// One cycle: initialize a 4 KiB region at `addr`, call it, deinitialize it.
fn cycle(map: &StdJitMap, addr: usize, code: &[u8]) {
    let segments = [Segment::new(Prot::READ_EXEC, addr, code.len(), code)];
    let key = map
        .initialize(&InitRequest::new(&segments, &[]))
        .expect("initialize");
    // SAFETY: the map has just made `key` executable with the blob in it; this thread alone
    // uses the region until it deinitializes it below.
    unsafe { blob::call(key) };
    map.deinitialize(key).expect("deinitialize");
}

/// Calls the code of a live region at `key` until `stop` is set.
fn run_code(key: usize, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: `key` was initialized by the caller, which deinitializes it only after this
        // returns.
        unsafe { blob::call(key) };
    }
}

/// Runs at least `ops` cycles, split evenly over the cycling threads of `shape`, on a new map
/// of `mode`; only the cycling is timed and counted, not the set-up.
pub(crate) fn run(shape: Shape, (security, policy): (Security, DiscardPolicy), ops: u64) -> Run {
    let page = page_size();
    let map = new_map(security, policy);
    let code = blob::padded(page);
    let base = map.reserve((THREADS + 2) * page).expect("reserve");
    let cycling = shape.cycling();
    let per_thread = ops.div_ceil(cycling as u64).max(1);
    let start = Barrier::new(THREADS + 1);
    let end = Barrier::new(cycling + 1);
    let stop = AtomicBool::new(false);
    let (wall, shootdowns) = std::thread::scope(|s| {
        for t in 0..THREADS {
            let addr = base + (1 + t) * page;
            let (map, code, start, end, stop) = (&map, &code, &start, &end, &stop);
            s.spawn(move || {
                if t < cycling {
                    start.wait();
                    for _ in 0..per_thread {
                        cycle(map, addr, code);
                    }
                    end.wait();
                } else {
                    let segments = [Segment::new(Prot::READ_EXEC, addr, code.len(), code)];
                    let key = map
                        .initialize(&InitRequest::new(&segments, &[]))
                        .expect("initialize");
                    start.wait();
                    run_code(key, stop);
                    map.deinitialize(key).expect("deinitialize");
                }
            });
        }
        start.wait();
        let before = tlb::shootdowns();
        let clock = Instant::now();
        end.wait();
        let wall = clock.elapsed();
        let after = tlb::shootdowns();
        stop.store(true, Ordering::Relaxed);
        (wall, after.zip(before).map(|(a, b)| a.saturating_sub(b)))
    });
    map.release(base).expect("release");
    Run {
        ops: per_thread * cycling as u64,
        wall,
        shootdowns,
    }
}

/// The results of one mode in one shape.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    pub(crate) shape: Shape,
    pub(crate) mode: &'static str,
    pub(crate) security: Security,
    /// Ops per second of wall time, one per run.
    pub(crate) ops_per_sec: Vec<f64>,
    /// TLB shootdowns per op, one per pair of runs of N and 2N ops.
    pub(crate) shootdowns: Vec<f64>,
    /// System calls per op (strace N/2N), if counted.
    pub(crate) syscalls: Option<crate::syscalls::PerOp>,
}

/// Measures every mode in every shape: `pairs` pairs of runs of `ops` and `2 * ops` cycles;
/// `syscalls` counts calls with strace over runs of that many ops.
pub(crate) fn measure(ops: u64, pairs: usize, syscalls: Option<u64>) -> Vec<Line> {
    SHAPES
        .into_iter()
        .flat_map(|shape| MODES.into_iter().map(move |mode| (shape, mode)))
        .map(|(shape, mode)| {
            let mut line = Line {
                shape,
                mode: name(mode.0, mode.1),
                security: mode.0,
                ops_per_sec: Vec::with_capacity(2 * pairs),
                shootdowns: Vec::with_capacity(pairs),
                syscalls: None,
            };
            for _ in 0..pairs {
                let one = run(shape, mode, ops);
                let two = run(shape, mode, 2 * ops);
                for r in [one, two] {
                    line.ops_per_sec.push(r.ops as f64 / r.wall.as_secs_f64());
                }
                if let (Some(a), Some(b)) = (one.shootdowns, two.shootdowns) {
                    line.shootdowns
                        .push((b as f64 - a as f64) / (two.ops - one.ops) as f64);
                }
            }
            if let Some(n) = syscalls {
                let spec = format!("{}/{}", line.mode, shape.id());
                match crate::syscalls::per_op(&spec, n.div_ceil(THREADS as u64) * THREADS as u64) {
                    Ok(per) => line.syscalls = Some(per),
                    Err(e) => eprintln!("syscalls {spec}: {e}"),
                }
            }
            line
        })
        .collect()
}

/// Shootdowns per second the machine handles while this process sleeps for `idle`: the
/// background the per-op counts stand on.
pub(crate) fn background(idle: Duration) -> Option<f64> {
    let before = tlb::shootdowns()?;
    std::thread::sleep(idle);
    let after = tlb::shootdowns()?;
    Some(after.saturating_sub(before) as f64 / idle.as_secs_f64())
}

/// The W5 table, as Markdown.
pub(crate) fn markdown(lines: &[Line], ops: u64, background: Option<f64>, command: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "### W5: W1 4 KiB on {THREADS} threads of one process, one shared map\n"
    );
    let _ = writeln!(
        s,
        "`{command}`; an op is one cycle by any thread. TLB shootdowns/op: the `TLB` line of \
         `/proc/interrupts` (every CPU, every process: other jobs' shootdowns count too; \
         BENCHMARKS.md counts per process with `perf`) over runs of N = {ops} and 2N ops, \
         difference / N, median [min-max] of the pairs; background while idle: {}. \
         syscalls/op: strace N/2N. Wall ops/s: both threads together, median of the runs; \
         with {} CPUs shared with other work this shows no scaling.\n",
        background.map_or_else(|| "n/a".into(), |b| format!("{b:.0}/s")),
        std::thread::available_parallelism().map_or(0, usize::from),
    );
    let _ = writeln!(
        s,
        "| threads | mode | W^X | syscalls/op | TLB shootdowns/op | wall ops/s |"
    );
    let _ = writeln!(s, "|---|---|---|---|---:|---:|");
    for line in lines {
        let tlb = if line.shootdowns.is_empty() {
            "n/a".into()
        } else {
            let min = line
                .shootdowns
                .iter()
                .copied()
                .fold(f64::INFINITY, f64::min);
            let max = line
                .shootdowns
                .iter()
                .copied()
                .fold(f64::NEG_INFINITY, f64::max);
            format!("{:.3} [{min:.3}-{max:.3}]", median(&line.shootdowns))
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {tlb} | {} |",
            line.shape.label(),
            line.mode,
            line.security.label(),
            crate::report::syscall_cell(line.syscalls.as_ref()),
            si(median(&line.ops_per_sec))
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_runs_in_every_shape() {
        for m in MODES {
            assert_eq!(run(Shape::BothCycle, m, 3).ops, 4, "{}", name(m.0, m.1));
            assert_eq!(run(Shape::CycleBesideRunner, m, 3).ops, 3);
            assert_eq!(mode(name(m.0, m.1)), Some(m));
        }
        assert_eq!(mode("floor"), None);
        assert_eq!(shape("w5-run"), Some(Shape::CycleBesideRunner));
        assert_eq!(shape("w1-4k"), None);
    }
}
