//! W5 (`--threads`, and a cheap form in `--quick`): the W1 4 KiB cycle on two threads against
//! one shared `StdJitMap`, for each of mapcore's modes, to count what a cycle costs the rest
//! of the process: system calls per op (strace N/2N, through `--ops N --only MODE/w5-2t`) and
//! TLB shootdowns per op (the `TLB` line of `/proc/interrupts`, N/2N in process).
//!
//! Each thread cycles its own page of one slab (spare pages around them, as in the other
//! workloads). An op is one cycle by either thread. Wall-clock rates are printed too, but two
//! vCPUs shared with other work cannot show scaling, and nothing here claims any.
//!
//! # Safety
//!
//! Calls the blob of regions the map has just initialized.
#![expect(unsafe_code, reason = "runs JIT code")]

use std::fmt::Write as _;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use mapcore_std::{DiscardPolicy, InitRequest, Prot, Segment, StdJitMap};

use crate::blob;
use crate::contenders::mapcore::{name, new_map};
use crate::contenders::{page_size, Security};
use crate::report::{median, si};
use crate::tlb;

/// The workload id, for `--ops N --only MODE/w5-2t`.
pub(crate) const ID: &str = "w5-2t";
/// Threads sharing the map.
const THREADS: usize = 2;
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

/// One run: `ops` cycles over both threads.
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

/// Runs at least `ops` cycles, split evenly over the threads, on a new map of `mode`; only
/// the cycling is timed and counted, not the set-up.
pub(crate) fn run((security, policy): (Security, DiscardPolicy), ops: u64) -> Run {
    let page = page_size();
    let map = new_map(security, policy);
    let code = blob::padded(page);
    let base = map.reserve((THREADS + 2) * page).expect("reserve");
    let per_thread = ops.div_ceil(THREADS as u64).max(1);
    let start = Barrier::new(THREADS + 1);
    let end = Barrier::new(THREADS + 1);
    let (wall, shootdowns) = std::thread::scope(|s| {
        for t in 0..THREADS {
            let addr = base + (1 + t) * page;
            let (map, code, start, end) = (&map, &code, &start, &end);
            s.spawn(move || {
                start.wait();
                for _ in 0..per_thread {
                    cycle(map, addr, code);
                }
                end.wait();
            });
        }
        start.wait();
        let before = tlb::shootdowns();
        let clock = Instant::now();
        end.wait();
        let wall = clock.elapsed();
        let after = tlb::shootdowns();
        (wall, after.zip(before).map(|(a, b)| a.saturating_sub(b)))
    });
    map.release(base).expect("release");
    Run {
        ops: per_thread * THREADS as u64,
        wall,
        shootdowns,
    }
}

/// The results of one mode.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    pub(crate) mode: &'static str,
    pub(crate) security: Security,
    /// Ops per second of wall time, one per run.
    pub(crate) ops_per_sec: Vec<f64>,
    /// TLB shootdowns per op, one per pair of runs of N and 2N ops.
    pub(crate) shootdowns: Vec<f64>,
    /// System calls per op (strace N/2N), if counted.
    pub(crate) syscalls: Option<crate::syscalls::PerOp>,
}

/// Measures every mode: `pairs` pairs of runs of `ops` and `2 * ops` cycles; `syscalls`
/// counts calls with strace over runs of that many ops.
pub(crate) fn measure(ops: u64, pairs: usize, syscalls: Option<u64>) -> Vec<Line> {
    MODES
        .into_iter()
        .map(|mode| {
            let mut line = Line {
                mode: name(mode.0, mode.1),
                security: mode.0,
                ops_per_sec: Vec::with_capacity(2 * pairs),
                shootdowns: Vec::with_capacity(pairs),
                syscalls: None,
            };
            for _ in 0..pairs {
                let one = run(mode, ops);
                let two = run(mode, 2 * ops);
                for r in [one, two] {
                    line.ops_per_sec.push(r.ops as f64 / r.wall.as_secs_f64());
                }
                if let (Some(a), Some(b)) = (one.shootdowns, two.shootdowns) {
                    line.shootdowns
                        .push((b as f64 - a as f64) / (two.ops - one.ops) as f64);
                }
            }
            if let Some(n) = syscalls {
                let spec = format!("{}/{ID}", line.mode);
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
    let _ = writeln!(s, "### W5: W1 4 KiB on {THREADS} threads, one shared map\n");
    let _ = writeln!(
        s,
        "`{command}`; an op is one cycle by either thread. TLB shootdowns/op: the `TLB` line of \
         `/proc/interrupts` (every CPU, every process) over runs of N = {ops} and 2N ops, \
         difference / N, median [min-max] of the pairs; background while idle: {}. \
         syscalls/op: strace N/2N. Wall ops/s: both threads together, median of the runs; \
         with {} CPUs shared with other work this shows no scaling.\n",
        background.map_or_else(|| "n/a".into(), |b| format!("{b:.0}/s")),
        std::thread::available_parallelism().map_or(0, usize::from),
    );
    let _ = writeln!(
        s,
        "| mode | W^X | syscalls/op | TLB shootdowns/op | wall ops/s |"
    );
    let _ = writeln!(s, "|---|---|---|---:|---:|");
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
            "| {} | {} | {} | {tlb} | {} |",
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
    fn every_mode_runs_on_two_threads() {
        for m in MODES {
            let r = run(m, 3);
            assert_eq!(r.ops, 4, "{}", name(m.0, m.1));
            assert_eq!(mode(name(m.0, m.1)), Some(m));
        }
        assert_eq!(mode("floor"), None);
    }
}
