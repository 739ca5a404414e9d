//! System calls per operation, counted by `strace -f -c` over two runs of this binary in
//! `--ops` mode, with N and 2N operations: the difference cancels set-up and tear-down.
//! Every system call is counted, not only the memory ones, so a contender cannot hide a
//! per-operation call (a `fallocate`, a `membarrier`) from the count.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Per-operation counts of each traced call (only those that occur).
pub(crate) type PerOp = BTreeMap<String, f64>;

/// Whether `strace` can be run.
pub(crate) fn available() -> bool {
    Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Parses the `-c` summary: `% time  seconds  usecs/call  calls  [errors]  syscall`.
pub(crate) fn parse_summary(text: &str) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 5 || !fields[0].chars().next().is_some_and(|c| c.is_ascii_digit()) {
            continue;
        }
        let name = fields[fields.len() - 1];
        if name == "total" {
            continue;
        }
        if let Ok(calls) = fields[3].parse::<u64>() {
            counts.insert(name.to_owned(), calls);
        }
    }
    counts
}

/// Runs `exe --ops ops --only spec` under strace and returns the call counts.
fn traced_run(exe: &Path, spec: &str, ops: u64) -> Result<BTreeMap<String, u64>, String> {
    let out = std::env::temp_dir().join(format!(
        "mapcore-bench-strace-{}-{}.txt",
        std::process::id(),
        spec.replace('/', "_")
    ));
    let status = Command::new("strace")
        .args(["-f", "-c", "-o"])
        .arg(&out)
        .arg("--")
        .arg(exe)
        .args(["--ops", &ops.to_string(), "--only", spec])
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("strace: {e}"))?;
    if !status.success() {
        return Err(format!("strace {spec} --ops {ops}: {status}"));
    }
    let text = std::fs::read_to_string(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let _ = std::fs::remove_file(&out);
    Ok(parse_summary(&text))
}

/// Per-op differences smaller than this are left out: jitter between the two runs (a thread's
/// start-up and exit, a lock that happened to be contended), which rounds to 0.00 anyway.
pub(crate) const NOISE: f64 = 0.005;

/// Per-operation counts for `spec` (`contender/workload`), from runs of `ops` and `2 * ops`
/// operations (`ops` a multiple of the workload's unit).
pub(crate) fn per_op(spec: &str, ops: u64) -> Result<PerOp, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let one = traced_run(&exe, spec, ops)?;
    let two = traced_run(&exe, spec, 2 * ops)?;
    let mut per = PerOp::new();
    for (name, &calls) in &two {
        let base = one.get(name).copied().unwrap_or(0);
        let diff = (calls as f64 - base as f64) / ops as f64;
        if diff.abs() >= NOISE {
            per.insert(name.clone(), diff);
        }
    }
    Ok(per)
}

/// The total of per-operation counts.
pub(crate) fn total(per: &PerOp) -> f64 {
    per.values().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strace_summary() {
        let text = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 60.00    0.000600           0      2002           mprotect
 30.00    0.000300           1        30         1 mmap
 10.00    0.000100           1        10           munmap
------ ----------- ----------- --------- --------- ----------------
100.00    0.001000           0      2042         1 total
";
        let counts = parse_summary(text);
        assert_eq!(counts.get("mprotect"), Some(&2002));
        assert_eq!(counts.get("mmap"), Some(&30));
        assert_eq!(counts.get("munmap"), Some(&10));
        assert_eq!(counts.len(), 3);
    }
}
