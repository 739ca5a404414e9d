//! The plumbing of the crate's libc calls: [`cvt`] turns a C failure value into the
//! [`OsError`] in `errno`, [`prot_bits`] translates a [`Prot`], and [`sysconf_page_size`] asks
//! for the page size.
//!
//! A leaf: it uses no other module of the crate but [`error`](crate::error), which uses none.
#![expect(unsafe_code, reason = "the sysconf call")]

use core::ffi::{c_int, c_void};

use mapcore::Prot;

use crate::error::OsError;

/// A libc return value that has a failure sentinel.
pub(crate) trait Sentinel: Copy {
    /// Whether this value means "failed, see errno".
    fn is_failure(self) -> bool;
}

// `c_int` is `i32` everywhere; `c_long` is `i32` or `i64`: implementing both fixed-width types
// covers both without a conflicting impl on 32-bit targets.
impl Sentinel for i32 {
    fn is_failure(self) -> bool {
        self == -1
    }
}

impl Sentinel for i64 {
    fn is_failure(self) -> bool {
        self == -1
    }
}

impl Sentinel for *mut c_void {
    fn is_failure(self) -> bool {
        self == libc::MAP_FAILED
    }
}

/// Turns a libc return value into a `Result`: the failure sentinel (`-1`, `MAP_FAILED`)
/// becomes the [`OsError`] in `errno`, anything else is returned as is.
///
/// # Errors
///
/// The call failed; the error holds `errno`.
pub(crate) fn cvt<T: Sentinel>(value: T) -> Result<T, OsError> {
    if value.is_failure() {
        Err(OsError::last_os_error())
    } else {
        Ok(value)
    }
}

/// `sysconf(_SC_PAGESIZE)`: the system page size.
///
/// # Errors
///
/// `sysconf` failed (it never does for `_SC_PAGESIZE` on Linux).
pub(crate) fn sysconf_page_size() -> Result<usize, OsError> {
    // SAFETY: `sysconf` has no preconditions; it only reads a system value.
    let size = cvt(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })?;
    usize::try_from(size).map_err(|_| OsError::from_raw_os_error(libc::EINVAL))
}

/// The `mmap`/`mprotect` protection bits for `prot`.
pub(crate) fn prot_bits(prot: Prot) -> c_int {
    let mut bits = libc::PROT_NONE;
    if prot.contains(Prot::READ) {
        bits |= libc::PROT_READ;
    }
    if prot.contains(Prot::WRITE) {
        bits |= libc::PROT_WRITE;
    }
    if prot.contains(Prot::EXEC) {
        bits |= libc::PROT_EXEC;
    }
    bits
}

#[cfg(test)]
mod tests {
    use core::ffi::c_long;

    use super::*;

    #[test]
    fn cvt_passes_values_and_reads_errno_on_failure() {
        assert_eq!(cvt(0 as c_int), Ok(0));
        assert_eq!(cvt(7 as c_long), Ok(7));
        // SAFETY: closing an invalid descriptor has no effect beyond setting errno.
        let failed = cvt(unsafe { libc::close(-1) });
        assert_eq!(failed, Err(OsError::from_raw_os_error(libc::EBADF)));
    }

    #[test]
    fn prot_bits_match_libc() {
        assert_eq!(prot_bits(Prot::NONE), libc::PROT_NONE);
        assert_eq!(
            prot_bits(Prot::READ_EXEC),
            libc::PROT_READ | libc::PROT_EXEC
        );
        assert_eq!(
            prot_bits(Prot::ALL),
            libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC
        );
        assert_eq!(prot_bits(Prot::WRITE), libc::PROT_WRITE);
    }
}
