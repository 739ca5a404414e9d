//! This thread's CPU: pinning it (`--pin`) and reading its CPU time, the clock the samples
//! are timed with. Thread CPU time leaves out the time the thread spent preempted, which on a
//! small shared VM is most of the noise; system calls and page faults made by the thread
//! still count.
//!
//! # Safety
//!
//! `sched_setaffinity` and `clock_gettime` with structures built on the stack.
#![expect(unsafe_code, reason = "sched_setaffinity and clock_gettime")]

use std::time::Duration;

/// Pins this thread to `cpu`.
///
/// # Errors
///
/// `sched_setaffinity` failed (no such CPU, or not allowed).
pub(crate) fn pin(cpu: usize) -> Result<(), String> {
    // SAFETY: `cpu_set_t` is plain bits; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes one bit inside `set`, bounds-checked by libc against its size.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid, initialized cpu set of the size passed; pid 0 is this thread.
    let ret = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
    if ret == 0 {
        Ok(())
    } else {
        Err(format!(
            "sched_setaffinity({cpu}): {}",
            std::io::Error::last_os_error()
        ))
    }
}

/// CPU time this thread has used (`CLOCK_THREAD_CPUTIME_ID`).
pub(crate) fn thread_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux knows.
    let ret = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(ret, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
