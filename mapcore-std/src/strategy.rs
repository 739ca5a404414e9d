//! Which W^X mode this process can use: [`detect`] probes what the kernel allows and picks
//! the dual-mapped host where it works, the flip host otherwise, saying why.
//!
//! The probes: memory-deny-write-execute (`prctl(PR_GET_MDWE)`), whether a memory file may
//! be mapped executable (refused under `vm.memfd_noexec = 2` or on a `noexec` mount), and
//! whether `mprotect` may make anonymous memory executable (refused by MDWE and SELinux
//! `execmem`). Each probe maps one page at most and unmaps it before returning.
#![expect(unsafe_code, reason = "the probes are libc calls")]

use core::fmt;
use core::ptr;
use std::os::fd::AsRawFd;

use crate::memory::WxMode;
use crate::sys::cvt;

/// What [`detect`] found and chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detection {
    /// The mode chosen.
    pub mode: WxMode,
    /// Memory-deny-write-execute is on for this process (`PR_SET_MDWE`): no mapping may gain
    /// execute permission through `mprotect`.
    pub mdwe: bool,
    /// A memory file can be mapped executable.
    pub memfd_exec: bool,
    /// `mprotect` can make anonymous read-write memory executable.
    pub mprotect_exec: bool,
}

impl Detection {
    /// Why this mode, in one sentence.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match (self.mode, self.mdwe, self.memfd_exec, self.mprotect_exec) {
            (WxMode::DualMapped, true, _, _) => {
                "memory-deny-write-execute is on, which refuses mprotect to executable; \
                 a memory file mapped executable is allowed"
            }
            (WxMode::DualMapped, _, _, false) => {
                "mprotect to executable is refused; a memory file mapped executable is allowed"
            }
            (WxMode::DualMapped, ..) => {
                "memory files may be mapped executable: reuse makes no system call and no view \
                 is ever writable and executable"
            }
            (WxMode::Flip, _, false, true) => {
                "memory files may not be mapped executable (vm.memfd_noexec or a noexec \
                 mount); mprotect to executable is allowed"
            }
            (WxMode::Flip, ..) => {
                "neither a memory file mapped executable nor mprotect to executable is \
                 allowed: executable segments will fail with EACCES"
            }
        }
    }
}

impl fmt::Display for Detection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.mode, self.reason())
    }
}

/// Probes what this process may do and picks a mode: dual-mapped wherever a memory file can
/// be mapped executable, flip otherwise. Never panics, leaves no mapping or descriptor behind.
///
/// # Examples
///
/// ```
/// let detection = mapcore_std::detect();
/// println!("W^X mode: {detection}");
/// ```
#[must_use]
pub fn detect() -> Detection {
    let mdwe = mdwe_refuses_exec_gain();
    let memfd_exec = memfd_maps_executable();
    let mprotect_exec = !mdwe && mprotect_makes_executable();
    let mode = if memfd_exec {
        WxMode::DualMapped
    } else {
        WxMode::Flip
    };
    Detection {
        mode,
        mdwe,
        memfd_exec,
        mprotect_exec,
    }
}

/// `prctl(PR_GET_MDWE)` has `PR_MDWE_REFUSE_EXEC_GAIN` set; false where the kernel does not
/// know the call.
fn mdwe_refuses_exec_gain() -> bool {
    // SAFETY: PR_GET_MDWE only reads this process's flags; the unused arguments must be 0.
    let flags = unsafe { libc::prctl(libc::PR_GET_MDWE, 0, 0, 0, 0) };
    flags > 0 && (flags as libc::c_uint & libc::PR_MDWE_REFUSE_EXEC_GAIN) != 0
}

/// One page of a new memory file maps `PROT_READ | PROT_EXEC`.
fn memfd_maps_executable() -> bool {
    let page = crate::page_size();
    let Ok(file) = crate::dual_host::create_memory_file() else {
        return false;
    };
    let len = libc::off_t::try_from(page).unwrap_or(libc::off_t::MAX);
    // SAFETY: a descriptor this function owns.
    if cvt(unsafe { libc::ftruncate(file.as_raw_fd(), len) }).is_err() {
        return false;
    }
    let prot = libc::PROT_READ | libc::PROT_EXEC;
    // SAFETY: no MAP_FIXED: the kernel picks free address space.
    let mapped = cvt(unsafe {
        libc::mmap(
            ptr::null_mut(),
            page,
            prot,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    });
    match mapped {
        Ok(addr) => {
            // SAFETY: the page was mapped just above and nothing refers to it.
            unsafe { libc::munmap(addr, page) };
            true
        }
        Err(_) => false,
    }
}

/// One page of anonymous read-write memory can be `mprotect`ed `PROT_READ | PROT_EXEC`.
fn mprotect_makes_executable() -> bool {
    let page = crate::page_size();
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
    // SAFETY: no MAP_FIXED: the kernel picks free address space.
    let Ok(addr) = cvt(unsafe { libc::mmap(ptr::null_mut(), page, rw, flags, -1, 0) }) else {
        return false;
    };
    // SAFETY: the page was mapped just above; nothing refers to it.
    let ok = cvt(unsafe { libc::mprotect(addr, page, libc::PROT_READ | libc::PROT_EXEC) }).is_ok();
    // SAFETY: as above.
    unsafe { libc::munmap(addr, page) };
    ok
}
