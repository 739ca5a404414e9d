//! Resident set size from `/proc/self/statm` and `/proc/self/status`.

use std::fs;

/// Resident memory of this process, in KiB (`/proc/self/statm`, second field, in pages).
pub(crate) fn resident_kib() -> i64 {
    let statm = fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: i64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("statm resident field");
    pages * (crate::contenders::page_size() / 1024) as i64
}

/// Resident shared memory (memfd, shm) of this process, in KiB (`RssShmem` in
/// `/proc/self/status`); 0 if the kernel does not report it.
pub(crate) fn shmem_kib() -> i64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("RssShmem:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}
