//! The shared-memory guard: a forked child that unlinks this executor's shared-memory names
//! once the executor is gone, however it went (SIGKILL included).
//!
//! A name must exist from the moment reserve creates it until the controller has opened it;
//! the executor unlinks it itself at release, at initialize (the controller has opened it by
//! then) and at the end of the session, and LLVM's controller unlinks it as soon as it has
//! opened it. If the executor is killed in between, no code of its own runs: the guard, which
//! holds the read end of a pipe whose only write end the executor keeps, sees EOF when the
//! executor dies, and unlinks every entry of `/dev/shm` named `<prefix>`, the prefix that only
//! this executor's names start with. The names left then are those of an executor and guard
//! that are both killed before the guard has run (the guard has a session of its own, so a
//! terminal's or a process group's signals do not reach it; a cgroup kill does). A child that
//! JIT'd code forks without exec keeps the pipe open too, and delays the cleanup until it exits.
//!
//! The guard is forked when the first name is about to be created, possibly from a process
//! with threads, so the child runs nothing but async-signal-safe system calls on memory that
//! was ready before the fork: no allocation, no lock, no formatting.
//!
//! Not under a debugger ([`traced`]): gdb's `follow-fork-mode child`, which follows
//! llvm-jitlink into the executor, would follow the guard next and leave the JIT'd code
//! undebugged. A debugged executor killed between a reserve and the controller's open leaves
//! that name behind.
//!
//! # Safety
//!
//! `fork`, and the raw system calls of the child (`setsid`, `dup2`, `close_range`, `read`,
//! `open`, `getdents64`, `unlinkat`, `_exit`), each on descriptors and buffers the child owns.
#![expect(
    unsafe_code,
    reason = "fork and the guard's async-signal-safe system calls"
)]

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Where glibc's `shm_open` puts the objects.
const SHM_DIR: &std::ffi::CStr = c"/dev/shm";

/// The running guard: dropping it (or the executor's death) closes the pipe, and the guard
/// unlinks what is left.
#[derive(Debug)]
pub(crate) struct ShmGuard {
    /// The pipe's write end; nothing is ever written.
    _pipe: OwnedFd,
}

impl ShmGuard {
    /// Forks the guard of the names starting with `prefix` (as in `/dev/shm`, no `/`).
    ///
    /// # Errors
    ///
    /// `pipe2` or `fork` failed, or `prefix` holds a NUL byte.
    pub(crate) fn start(prefix: &str) -> io::Result<Self> {
        let prefix = CString::new(prefix).map_err(|_| io::ErrorKind::InvalidInput)?;
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 returns.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just returned by pipe2 and are owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: the child runs only `guard`, which makes async-signal-safe system calls on
        // memory prepared before the fork and never returns.
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            0 => guard(fds[0], prefix.as_bytes()),
            _ => {
                drop(read);
                Ok(Self { _pipe: write })
            }
        }
    }
}

/// Whether a debugger traces this process (`TracerPid` in `/proc/self/status` is not 0).
pub(crate) fn traced() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("TracerPid:"))
        .is_some_and(|pid| pid.trim() != "0")
}

/// The child: waits for EOF on `pipe`, unlinks the names starting with `prefix`, exits.
fn guard(pipe: RawFd, prefix: &[u8]) -> ! {
    // SAFETY: async-signal-safe calls on the child's own descriptors: a session of its own
    // (a terminal's or a process group's signals for the executor do not reach it), the pipe
    // as descriptor 0, every other inherited descriptor closed (so that it keeps no stream of
    // the controller's open).
    unsafe {
        libc::setsid();
        libc::dup2(pipe, 0);
        if libc::close_range(1, libc::c_uint::MAX, 0) != 0 {
            for fd in 1..1024 {
                libc::close(fd);
            }
        }
    }
    let mut byte = [0u8; 64];
    loop {
        // SAFETY: reads into the child's own buffer.
        let n = unsafe { libc::read(0, byte.as_mut_ptr().cast(), byte.len()) };
        if n == 0 || (n < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR)) {
            break;
        }
    }
    // A second pass catches what a directory read concurrent with the unlinks could skip.
    for _ in 0..2 {
        unlink_matching(prefix);
    }
    // SAFETY: ends the child without running anything of the parent's.
    unsafe { libc::_exit(0) }
}

/// `getdents64` records, 8-byte aligned as the kernel writes them.
#[repr(C, align(8))]
struct DirBuf([u8; 4096]);

/// Unlinks every entry of [`SHM_DIR`] whose name starts with `prefix`.
fn unlink_matching(prefix: &[u8]) {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    // SAFETY: a valid C string; the descriptor is closed below.
    let dir = unsafe { libc::open(SHM_DIR.as_ptr(), flags) };
    if dir < 0 {
        return;
    }
    let mut buf = DirBuf([0; 4096]);
    loop {
        // SAFETY: the kernel writes at most `buf.0.len()` bytes of records into `buf`.
        let n =
            unsafe { libc::syscall(libc::SYS_getdents64, dir, buf.0.as_mut_ptr(), buf.0.len()) };
        let Ok(n) = usize::try_from(n) else { break };
        if n == 0 {
            break;
        }
        let mut at = 0;
        // Each record: u64 inode, i64 offset, u16 record length, u8 type, NUL-terminated name.
        while let Some(len) = buf.0.get(at + 16..at + 18) {
            let len = usize::from(u16::from_ne_bytes([len[0], len[1]]));
            let Some(name) = buf.0.get(at + 19..at + len) else {
                break;
            };
            if len == 0 || at + len > n {
                break;
            }
            if name.starts_with(prefix) && name.contains(&0) {
                // SAFETY: `name` is NUL-terminated inside `buf`, relative to `dir`.
                unsafe { libc::unlinkat(dir, name.as_ptr().cast(), 0) };
            }
            at += len;
            if at >= n {
                break;
            }
        }
    }
    // SAFETY: `dir` was opened above.
    unsafe { libc::close(dir) };
}
