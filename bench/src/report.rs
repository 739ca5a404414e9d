//! Results and their rendering as Markdown tables (printed, and written with `--markdown`); the
//! chart is [`crate::chart`].

use std::fmt::Write as _;
use std::process::Command;

use crate::contenders::Security;
use crate::syscalls::{self, PerOp};
use crate::workload::{RssResult, Workload};

/// One contender in one timed workload.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) name: &'static str,
    pub(crate) security: Security,
    /// ops per second of thread CPU time, of each sample.
    pub(crate) samples: Vec<f64>,
    /// ops per second of wall time, of each sample.
    pub(crate) wall: Vec<f64>,
    pub(crate) allocs_per_op: f64,
    pub(crate) syscalls: Option<PerOp>,
    /// Why the contender did not run this workload.
    pub(crate) skipped: Option<&'static str>,
}

impl Row {
    pub(crate) fn median(&self) -> f64 {
        median(&self.samples)
    }

    /// Whether the contender keeps W^X by a read-write alias.
    pub(crate) fn is_dual(&self) -> bool {
        self.security == Security::Dual
    }

    pub(crate) fn min(&self) -> f64 {
        self.samples.iter().copied().fold(f64::INFINITY, f64::min)
    }

    pub(crate) fn max(&self) -> f64 {
        self.samples.iter().copied().fold(0.0, f64::max)
    }
}

/// The median of `values`.
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Every contender in one timed workload; the first row is the floor.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    pub(crate) workload: Workload,
    pub(crate) rows: Vec<Row>,
}

impl Case {
    fn floor(&self) -> Option<&Row> {
        self.rows.iter().find(|r| r.name == "floor")
    }
}

/// The machine the numbers come from.
#[derive(Debug, Clone)]
pub(crate) struct Machine {
    pub(crate) cpu: String,
    pub(crate) cpus: usize,
    pub(crate) kernel: String,
    pub(crate) rustc: String,
    pub(crate) thp: String,
    pub(crate) memfd_noexec: String,
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path).map_or_else(|_| "unknown".into(), |s| s.trim().to_owned())
}

impl Machine {
    pub(crate) fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".into(), |(_, m)| m.trim().to_owned());
        let rustc = Command::new("rustc")
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map_or_else(|| "unknown".into(), |s| s.trim().to_owned());
        Self {
            cpu,
            // Counted from /proc/cpuinfo: `--pin` narrows what available_parallelism sees.
            cpus: cpuinfo
                .lines()
                .filter(|l| l.starts_with("processor"))
                .count(),
            kernel: read_trim("/proc/sys/kernel/osrelease"),
            rustc,
            thp: read_trim("/sys/kernel/mm/transparent_hugepage/enabled"),
            memfd_noexec: read_trim("/proc/sys/vm/memfd_noexec"),
        }
    }
}

/// A whole run.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub(crate) cases: Vec<Case>,
    pub(crate) rss: Vec<(&'static str, RssResult)>,
    pub(crate) machine: Machine,
    pub(crate) command: String,
    pub(crate) samples: usize,
    pub(crate) sample_ms: u64,
    pub(crate) seconds: f64,
}

/// `265k`, `9.01M` style.
pub(crate) fn si(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// A syscalls/op cell: the total and each call's share.
pub(crate) fn syscall_cell(per: Option<&PerOp>) -> String {
    match per {
        None => "n/a".into(),
        Some(per) if per.is_empty() => "0".into(),
        Some(per) => {
            let parts: Vec<String> = per.iter().map(|(k, v)| format!("{v:.2} {k}")).collect();
            format!("{:.2} ({})", syscalls::total(per), parts.join(", "))
        }
    }
}

impl Report {
    /// The tables, as Markdown.
    pub(crate) fn markdown(&self) -> String {
        let mut s = String::new();
        let m = &self.machine;
        let _ = writeln!(
            s,
            "Machine: {} ({} CPUs), Linux {}, {}, THP `{}`, vm.memfd_noexec {}.  ",
            m.cpu, m.cpus, m.kernel, m.rustc, m.thp, m.memfd_noexec
        );
        let _ = writeln!(
            s,
            "{} samples x {} ms per contender and workload, round-robin; wall time {:.0} s.  ",
            self.samples, self.sample_ms, self.seconds
        );
        let _ = writeln!(s, "Command: `{}`\n", self.command);
        let _ = writeln!(
            s,
            "ops/s: operations per second of the benchmark thread's CPU time \
             (`CLOCK_THREAD_CPUTIME_ID`: system calls and page faults count, time preempted \
             does not), median [min-max] over the samples; wall ops/s: the same samples \
             timed by the wall clock; x floor: median / the floor's median in \
             the same run; syscalls/op: `strace -f -c` (every system call), runs of N and 2N \
             ops, difference / N; allocs/op: counting global allocator.\n"
        );
        self.summary(&mut s);
        self.headline(&mut s);
        for case in &self.cases {
            let _ = writeln!(s, "#### {}\n", case.workload.label());
            let _ = writeln!(
                s,
                "| contender | W^X | ops/s median [min-max] | x floor | wall ops/s | syscalls/op | allocs/op |"
            );
            let _ = writeln!(s, "|---|---|---:|---:|---:|---|---:|");
            let floor = case.floor().map(Row::median);
            for row in &case.rows {
                if let Some(why) = row.skipped {
                    let _ = writeln!(
                        s,
                        "| {} | {} | not run: {why} | | | | |",
                        row.name,
                        row.security.label()
                    );
                    continue;
                }
                let ratio =
                    floor.map_or_else(|| "-".into(), |f| format!("{:.2}", row.median() / f));
                let _ = writeln!(
                    s,
                    "| {} | {} | {} [{}-{}] | {} | {} | {} | {:.2} |",
                    row.name,
                    row.security.label(),
                    si(row.median()),
                    si(row.min()),
                    si(row.max()),
                    ratio,
                    si(median(&row.wall)),
                    syscall_cell(row.syscalls.as_ref()),
                    row.allocs_per_op
                );
            }
            s.push('\n');
        }
        if !self.rss.is_empty() {
            let _ = writeln!(
                s,
                "#### W4 RSS: {} live 4 KiB regions, then deinitialize all, then release\n",
                crate::workload::RSS_REGIONS
            );
            let _ = writeln!(
                s,
                "| contender | RSS live | of which shmem | after deinitialize all | after release |"
            );
            let _ = writeln!(s, "|---|---:|---:|---:|---:|");
            for (name, r) in &self.rss {
                let _ = writeln!(
                    s,
                    "| {name} | {:+} KiB | {:+} KiB | {:+} KiB | {:+} KiB |",
                    r.live, r.live_shmem, r.deinitialized, r.released
                );
            }
            s.push_str(
                "\nRSS deltas against `/proc/self/statm` (shmem: `RssShmem` of \
                 `/proc/self/status`) just before the contender's W4 set-up; heap growth of a \
                 contender's own tables counts.\n",
            );
        }
        s
    }

    /// mapcore against the hand-written floor of the same mechanism: flip Retain against the
    /// plain floor, flip Discard against the decommitting floor (the same system calls), dual
    /// Retain against the dual floor (none).
    fn headline(&self, s: &mut String) {
        let ratio = |case: &Case, a: &str, b: &str| {
            let find = |n: &str| {
                case.rows
                    .iter()
                    .find(|r| r.name == n && r.skipped.is_none())
            };
            Some(find(a)?.median() / find(b)?.median())
        };
        let _ = write!(s, "| mapcore / floor of the same mechanism |");
        for case in &self.cases {
            let _ = write!(s, " {} |", case.workload.label());
        }
        let _ = write!(s, "\n|---|");
        for _ in &self.cases {
            s.push_str("---:|");
        }
        s.push('\n');
        for (a, b) in [
            ("mapcore-retain", "floor"),
            ("mapcore-discard", "floor-madvise"),
            ("mapcore-dual", "floor-dual"),
        ] {
            let _ = write!(s, "| {a} / {b} |");
            for case in &self.cases {
                match ratio(case, a, b) {
                    Some(r) => {
                        let _ = write!(s, " {r:.3} |");
                    }
                    None => s.push_str(" - |"),
                }
            }
            s.push('\n');
        }
        s.push('\n');
    }

    /// One line per contender: medians of every workload and the W4 RSS left after deinit.
    fn summary(&self, s: &mut String) {
        let Some(first) = self.cases.first() else {
            return;
        };
        let _ = write!(s, "| contender |");
        for case in &self.cases {
            let _ = write!(s, " {} |", case.workload.label());
        }
        let with_rss = !self.rss.is_empty();
        if with_rss {
            let _ = write!(s, " W4 RSS after deinit |");
        }
        let _ = write!(s, "\n|---|");
        for _ in &self.cases {
            let _ = write!(s, "---:|");
        }
        if with_rss {
            let _ = write!(s, "---:|");
        }
        s.push('\n');
        for (i, row) in first.rows.iter().enumerate() {
            let _ = write!(s, "| {} |", row.name);
            for case in &self.cases {
                let r = &case.rows[i];
                if r.skipped.is_some() {
                    s.push_str(" not run |");
                    continue;
                }
                let ratio = case
                    .floor()
                    .map(|f| format!(" ({:.2}x)", r.median() / f.median()))
                    .unwrap_or_default();
                let _ = write!(s, " {}{} |", si(r.median()), ratio);
            }
            if with_rss {
                match self.rss.iter().find(|(n, _)| *n == row.name) {
                    Some((_, r)) => {
                        let _ = write!(s, " {:+} KiB |", r.deinitialized);
                    }
                    None => s.push_str(" - |"),
                }
            }
            s.push('\n');
        }
        s.push_str(
            "\nMedian ops/s; in parentheses the ratio to the floor in the same workload.\n\n",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn si_formats() {
        assert_eq!(si(265_300.0), "265k");
        assert_eq!(si(9_010_000.0), "9.01M");
        assert_eq!(si(950.0), "950");
    }
}
