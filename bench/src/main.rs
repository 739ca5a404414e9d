//! `mapcore-bench`: mapcore-std against the hand-written syscall floor and its peers
//! (`region` 4.0.1, `jit-allocator` 0.2.8, `cranelift-jit` 0.135.8 memory providers), in one
//! process, with the same machine-code blob executed once per operation by every contender.
//!
//! ```text
//! mapcore-bench [--quick] [--samples N] [--sample-ms MS] [--warm-ms MS] [--pin CPU]
//!               [--only CONTENDER/WORKLOAD] [--syscalls] [--syscall-ops N]
//!               [--markdown FILE] [--svg FILE]
//! mapcore-bench --scaling [--quick] [--samples N] [--sample-ms MS] [--pin CPU] [--markdown FILE]
//! mapcore-bench --threads [--quick] [--samples N] [--syscalls] [--syscall-ops N] [--markdown FILE]
//! mapcore-bench --ops N --only CONTENDER/WORKLOAD     (one untimed run, for strace)
//! mapcore-bench --list
//! ```
//!
//! `--scaling` runs only the [`scaling`] workloads (mapcore's cost per operation against 1k, 4k
//! and 16k live regions or slabs); `--quick` without `--only` runs a cheap form of them after
//! the others. `--threads` runs only the [`threads`] workload (W5: the 4 KiB cycle on two
//! threads sharing one map, in each of mapcore's modes, with TLB shootdowns per op); `--quick`
//! without `--only` runs a cheap form of it too.
//!
//! Nothing here asserts on timing: the output is a report, never a verdict.

mod alloc_count;
mod blob;
mod chart;
mod contenders;
mod cpu;
mod report;
mod rng;
mod rss;
mod scaling;
mod syscalls;
mod threads;
mod tlb;
mod workload;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use contenders::Contender;
use report::{Case, Machine, Report, Row};
use workload::{Bench, Workload};

#[global_allocator]
static ALLOCATOR: alloc_count::Counting = alloc_count::Counting;

/// Command-line options.
#[derive(Debug, Clone)]
struct Options {
    quick: bool,
    scaling: bool,
    threads: bool,
    samples: usize,
    sample_ms: u64,
    warm_ms: u64,
    pin: Option<usize>,
    only: Option<(String, String)>,
    ops: Option<u64>,
    syscalls: bool,
    syscall_ops: u64,
    markdown: Option<String>,
    svg: Option<String>,
    list: bool,
}

const USAGE: &str = "usage: mapcore-bench [--quick] [--samples N] [--sample-ms MS] [--warm-ms MS] \
[--pin CPU] [--only CONTENDER/WORKLOAD] [--syscalls] [--syscall-ops N] [--markdown FILE] \
[--svg FILE] | --scaling [--quick] [--samples N] [--sample-ms MS] [--pin CPU] [--markdown FILE] \
| --threads [--quick] [--samples N] [--syscalls] [--syscall-ops N] [--markdown FILE] \
| --ops N --only CONTENDER/WORKLOAD | --list
  CONTENDER or WORKLOAD may be '*'; see --list for the names";

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        quick: false,
        scaling: false,
        threads: false,
        samples: 11,
        sample_ms: 150,
        warm_ms: 30,
        pin: None,
        only: None,
        ops: None,
        syscalls: false,
        syscall_ops: 2048,
        markdown: None,
        svg: None,
        list: false,
    };
    let mut explicit = (false, false, false);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or(format!("{name} needs a value"));
        let num = |v: String, name: &str| v.parse::<u64>().map_err(|e| format!("{name}: {e}"));
        match arg.as_str() {
            "--quick" => o.quick = true,
            "--scaling" => o.scaling = true,
            "--threads" => o.threads = true,
            "--samples" => {
                o.samples = num(value(arg)?, arg)? as usize;
                explicit.0 = true;
            }
            "--sample-ms" => {
                o.sample_ms = num(value(arg)?, arg)?;
                explicit.1 = true;
            }
            "--warm-ms" => {
                o.warm_ms = num(value(arg)?, arg)?;
                explicit.2 = true;
            }
            "--pin" => o.pin = Some(num(value(arg)?, arg)? as usize),
            "--only" => {
                let spec = value(arg)?;
                let (c, w) = spec.split_once('/').unwrap_or((spec.as_str(), "*"));
                o.only = Some((c.to_owned(), w.to_owned()));
            }
            "--ops" => o.ops = Some(num(value(arg)?, arg)?),
            "--syscalls" => o.syscalls = true,
            "--syscall-ops" => o.syscall_ops = num(value(arg)?, arg)?,
            "--markdown" => o.markdown = Some(value(arg)?),
            "--svg" => o.svg = Some(value(arg)?),
            "--list" => o.list = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if o.quick {
        if !explicit.0 {
            o.samples = 5;
        }
        if !explicit.1 {
            o.sample_ms = 2;
        }
        if !explicit.2 {
            o.warm_ms = 1;
        }
    }
    if o.samples == 0 {
        return Err("--samples must be at least 1".into());
    }
    Ok(o)
}

/// Whether `name` matches a `--only` part.
fn matches(pattern: &str, name: &str) -> bool {
    pattern == "*" || pattern.is_empty() || pattern == name
}

/// `--ops N --only C/W`: set up, run N operations, tear down; nothing timed. For strace.
fn ops_mode(o: &Options, ops: u64) -> Result<(), String> {
    let (c, w) = o
        .only
        .clone()
        .ok_or("--ops needs --only CONTENDER/WORKLOAD")?;
    if let Some(shape) = threads::shape(&w) {
        let mode = threads::mode(&c).ok_or(format!("{c} has no {w}; see --list"))?;
        let run = threads::run(shape, mode, ops);
        println!("{c}/{w}: {} ops", run.ops);
        return Ok(());
    }
    let mut contender = contenders::all()
        .into_iter()
        .find(|x| x.name() == c)
        .ok_or(format!("unknown contender {c}; see --list"))?;
    let workload = workload::ALL
        .into_iter()
        .find(|x| x.id() == w)
        .ok_or(format!("unknown workload {w}; see --list"))?;
    if !workload.timed() {
        return Err(format!("{w} has no operations to count"));
    }
    let mut bench = Bench::new(workload, contender.as_mut());
    let done = bench.run(contender.as_mut(), ops);
    bench.finish(contender.as_mut());
    println!("{c}/{w}: {done} ops");
    Ok(())
}

/// Times every selected contender on one workload, round-robin.
fn run_case(o: &Options, workload: Workload, all: &mut [Box<dyn Contender>]) -> Case {
    let warm = Duration::from_millis(o.warm_ms);
    let target = Duration::from_millis(o.sample_ms);
    let mut rows: Vec<Row> = all
        .iter()
        .map(|c| Row {
            name: c.name(),
            security: c.security(),
            samples: Vec::with_capacity(o.samples),
            wall: Vec::with_capacity(o.samples),
            allocs_per_op: 0.0,
            syscalls: None,
            skipped: c.unsupported(workload),
        })
        .collect();
    let mut benches: Vec<Option<(Bench, u64)>> = all
        .iter_mut()
        .zip(&rows)
        .map(|(c, row)| {
            row.skipped.is_none().then(|| {
                let mut bench = Bench::new(workload, c.as_mut());
                let count = workload::calibrate(&mut bench, c.as_mut(), warm, target);
                (bench, count)
            })
        })
        .collect();
    let mut allocs = vec![(0u64, 0u64); all.len()];
    for round in 0..o.samples {
        for k in 0..all.len() {
            // Rotate who goes first, so that drift of the machine hits everyone alike.
            let i = (k + round) % all.len();
            let Some((bench, count)) = &mut benches[i] else {
                continue;
            };
            let s = workload::sample(bench, all[i].as_mut(), *count);
            rows[i].samples.push(s.ops_per_sec);
            rows[i].wall.push(s.wall_ops_per_sec);
            allocs[i].0 += s.allocations;
            allocs[i].1 += s.ops;
        }
    }
    for (i, c) in all.iter_mut().enumerate() {
        if let Some((bench, _)) = benches[i].take() {
            bench.finish(c.as_mut());
            rows[i].allocs_per_op = allocs[i].0 as f64 / allocs[i].1 as f64;
        }
    }
    Case { workload, rows }
}

fn run(o: &Options) -> Result<(), String> {
    if o.list {
        let names: Vec<&str> = contenders::all().iter().map(|c| c.name()).collect();
        let works: Vec<String> = workload::ALL.iter().map(|w| w.id()).collect();
        let modes: Vec<&str> = threads::MODES
            .iter()
            .map(|&(s, p)| contenders::mapcore::name(s, p))
            .collect();
        println!(
            "contenders: {}\nworkloads:  {}\nthreads:    {} ({})",
            names.join(" "),
            works.join(" "),
            threads::SHAPES.map(threads::Shape::id).join(" "),
            modes.join(" ")
        );
        return Ok(());
    }
    if let Some(cpu) = o.pin {
        cpu::pin(cpu)?;
    }
    if let Some(ops) = o.ops {
        return ops_mode(o, ops);
    }
    let started = Instant::now();
    let mut command: Vec<String> = vec!["cargo run --release -p mapcore-bench --".into()];
    command.extend(std::env::args().skip(1));
    let command = command.join(" ");
    let mut markdown = String::new();
    // Without a section flag, the peer workloads; `--quick` adds cheap forms of the others.
    let all = !o.scaling && !o.threads;
    let extras = all && o.quick && o.only.is_none();
    if all {
        let report = peers(o, started, &command)?;
        markdown = report.markdown();
        println!("{markdown}");
        if let Some(path) = &o.svg {
            std::fs::write(path, chart::svg(&report)).map_err(|e| format!("{path}: {e}"))?;
        }
    }
    if o.scaling || extras {
        let sizes: &[usize] = if o.quick {
            &scaling::QUICK
        } else {
            &scaling::FULL
        };
        let p = scaling::Params {
            samples: o.samples,
            sample: Duration::from_millis(o.sample_ms),
        };
        let lines = scaling::run(sizes, p, |step| {
            eprintln!("[{:6.1} s] {step}", started.elapsed().as_secs_f64());
        });
        let table = scaling::markdown(&lines, p, &command);
        println!("{table}");
        if !markdown.is_empty() {
            markdown.push('\n');
        }
        markdown.push_str(&table);
    }
    if o.threads || extras {
        let table = threads_section(o, started, &command);
        println!("{table}");
        if !markdown.is_empty() {
            markdown.push('\n');
        }
        markdown.push_str(&table);
    }
    if let Some(path) = &o.markdown {
        std::fs::write(path, &markdown).map_err(|e| format!("{path}: {e}"))?;
    }
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// W5: every mapcore mode on two threads; the table.
fn threads_section(o: &Options, started: Instant, command: &str) -> String {
    // Cycles per run: N of the N/2N pairs.
    let ops = if o.quick { 256 } else { 4096 };
    let use_strace = o.syscalls && syscalls::available();
    if o.syscalls && !use_strace {
        eprintln!("strace not found: syscalls/op will read n/a (apt-get install strace)");
    }
    eprintln!("[{:6.1} s] w5", started.elapsed().as_secs_f64());
    let background = threads::background(Duration::from_millis(if o.quick { 50 } else { 500 }));
    let lines = threads::measure(ops, o.samples, use_strace.then_some(o.syscall_ops));
    threads::markdown(&lines, ops, background, command)
}

/// Times every selected contender on every selected peer workload (W1-W4).
fn peers(o: &Options, started: Instant, command: &str) -> Result<Report, String> {
    let (only_c, only_w) = o.only.clone().unwrap_or(("*".into(), "*".into()));
    let mut all: Vec<Box<dyn Contender>> = contenders::all()
        .into_iter()
        .filter(|c| matches(&only_c, c.name()))
        .collect();
    if all.is_empty() {
        return Err(format!("no contender matches {only_c}; see --list"));
    }
    let workloads: Vec<Workload> = workload::ALL
        .into_iter()
        .filter(|w| matches(&only_w, &w.id()))
        .collect();
    let use_strace = o.syscalls && syscalls::available();
    if o.syscalls && !use_strace {
        eprintln!("strace not found: syscalls/op will read n/a (apt-get install strace)");
    }
    let mut cases = Vec::new();
    let mut rss = Vec::new();
    for &w in &workloads {
        if !w.timed() {
            for c in all.iter_mut().filter(|c| c.unsupported(w).is_none()) {
                eprintln!(
                    "[{:6.1} s] {} {}",
                    started.elapsed().as_secs_f64(),
                    w.id(),
                    c.name()
                );
                rss.push((c.name(), workload::rss(c.as_mut())));
            }
            continue;
        }
        eprintln!(
            "[{:6.1} s] {} ({} contenders)",
            started.elapsed().as_secs_f64(),
            w.id(),
            all.len()
        );
        let mut case = run_case(o, w, &mut all);
        if use_strace {
            for row in case.rows.iter_mut().filter(|r| r.skipped.is_none()) {
                let ops = o.syscall_ops.div_ceil(w.unit()).max(1) * w.unit();
                let spec = format!("{}/{}", row.name, w.id());
                match syscalls::per_op(&spec, ops) {
                    Ok(per) => row.syscalls = Some(per),
                    Err(e) => eprintln!("syscalls {spec}: {e}"),
                }
            }
        }
        cases.push(case);
    }
    Ok(Report {
        cases,
        rss,
        machine: Machine::detect(),
        command: command.to_owned(),
        samples: o.samples,
        sample_ms: o.sample_ms,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse_args(&args).and_then(|o| run(&o)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn quick_shrinks_samples_unless_given() {
        let o = parse_args(&args(&["--quick"])).unwrap();
        assert_eq!((o.samples, o.sample_ms), (5, 2));
        let o = parse_args(&args(&["--quick", "--samples", "3"])).unwrap();
        assert_eq!((o.samples, o.sample_ms), (3, 2));
    }

    #[test]
    fn scaling_is_a_flag_that_combines_with_quick() {
        let o = parse_args(&args(&["--scaling", "--quick"])).unwrap();
        assert!(o.scaling && o.quick);
        assert!(!parse_args(&args(&["--quick"])).unwrap().scaling);
    }

    #[test]
    fn threads_is_a_flag_and_its_workload_runs_in_ops_mode() {
        let o = parse_args(&args(&["--threads", "--syscalls"])).unwrap();
        assert!(o.threads && o.syscalls && !o.scaling);
        let o = parse_args(&args(&["--ops", "4", "--only", "mapcore-dual/w5-2t"])).unwrap();
        assert_eq!(ops_mode(&o, 4), Ok(()));
        let o = parse_args(&args(&["--ops", "4", "--only", "floor/w5-2t"])).unwrap();
        assert!(ops_mode(&o, 4).is_err());
    }

    #[test]
    fn only_splits_contender_and_workload() {
        let o = parse_args(&args(&["--ops", "10", "--only", "floor/w1-4k"])).unwrap();
        assert_eq!(o.only, Some(("floor".into(), "w1-4k".into())));
        assert_eq!(o.ops, Some(10));
        assert!(parse_args(&args(&["--bogus"])).is_err());
    }

    #[test]
    fn every_contender_runs_every_workload_once() {
        for mut c in contenders::all() {
            for w in workload::ALL {
                if c.unsupported(w).is_some() {
                    continue;
                }
                if w.timed() {
                    let mut b = Bench::new(w, c.as_mut());
                    assert_eq!(b.run(c.as_mut(), 1), w.unit());
                    b.finish(c.as_mut());
                } else {
                    let r = workload::rss(c.as_mut());
                    assert!(r.live > 0, "{} {r:?}", c.name());
                }
            }
        }
    }
}
