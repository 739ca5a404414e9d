//! [`OsError`]: the host error of [`LibcHost`](crate::LibcHost), an errno value.

use core::fmt;
use std::io;

use mapcore::{HostError, HostErrorKind};

/// An operating-system error code (`errno`) returned by a failed libc call.
///
/// A plain `i32`: cheap to copy into every batch entry it affects, and no allocation on any
/// error path. [`Display`](fmt::Display) goes through [`std::io::Error`], so it reads like
/// `Permission denied (os error 13)`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct OsError(i32);

impl OsError {
    /// The error with this raw `errno` value.
    #[must_use]
    pub const fn from_raw_os_error(code: i32) -> Self {
        Self(code)
    }

    /// The error the calling thread's `errno` holds now.
    #[must_use]
    pub fn last_os_error() -> Self {
        // `last_os_error` always carries a raw code; 0 would only show up if it did not.
        Self(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }

    /// The raw `errno` value, e.g. 13 for `EACCES`.
    #[must_use]
    pub const fn raw_os_error(self) -> i32 {
        self.0
    }
}

impl HostError for OsError {
    /// `ENOMEM` is [`OutOfMemory`](HostErrorKind::OutOfMemory); `EACCES` and `EPERM` are
    /// [`PermissionDenied`](HostErrorKind::PermissionDenied) (W^X enforcement by SELinux
    /// `execmem` or `PR_SET_MDWE`); `EINVAL` is
    /// [`InvalidArgument`](HostErrorKind::InvalidArgument); anything else is
    /// [`Other`](HostErrorKind::Other).
    fn kind(&self) -> HostErrorKind {
        match self.0 {
            libc::ENOMEM => HostErrorKind::OutOfMemory,
            libc::EACCES | libc::EPERM => HostErrorKind::PermissionDenied,
            libc::EINVAL => HostErrorKind::InvalidArgument,
            _ => HostErrorKind::Other,
        }
    }
}

impl fmt::Debug for OsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OsError")
            .field("code", &self.0)
            .field("kind", &io::Error::from_raw_os_error(self.0).kind())
            .finish()
    }
}

impl fmt::Display for OsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&io::Error::from_raw_os_error(self.0), f)
    }
}

impl std::error::Error for OsError {}

impl From<OsError> for io::Error {
    fn from(error: OsError) -> Self {
        Self::from_raw_os_error(error.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_maps_the_errno_values_the_host_can_return() {
        let cases = [
            (libc::ENOMEM, HostErrorKind::OutOfMemory),
            (libc::EACCES, HostErrorKind::PermissionDenied),
            (libc::EPERM, HostErrorKind::PermissionDenied),
            (libc::EINVAL, HostErrorKind::InvalidArgument),
            (libc::EBADF, HostErrorKind::Other),
            (0, HostErrorKind::Other),
        ];
        for (code, kind) in cases {
            assert_eq!(
                OsError::from_raw_os_error(code).kind(),
                kind,
                "errno {code}"
            );
        }
    }

    #[test]
    fn converts_to_io_error_with_the_same_code_and_text() {
        let error = OsError::from_raw_os_error(libc::EACCES);
        let io: io::Error = error.into();
        assert_eq!(io.raw_os_error(), Some(libc::EACCES));
        assert_eq!(io.kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(error.to_string(), io.to_string());
        assert!(error.to_string().contains("os error 13"), "{error}");
    }

    #[test]
    fn debug_names_code_and_kind() {
        let text = format!("{:?}", OsError::from_raw_os_error(libc::ENOMEM));
        assert_eq!(text, "OsError { code: 12, kind: OutOfMemory }");
    }

    #[test]
    fn last_os_error_reads_errno() {
        // A failing std call sets errno; read it straight back.
        let failed = std::fs::metadata("/nonexistent/mapcore-std/path").unwrap_err();
        assert_eq!(failed.raw_os_error(), Some(libc::ENOENT));
        assert_eq!(OsError::last_os_error().raw_os_error(), libc::ENOENT);
    }
}
