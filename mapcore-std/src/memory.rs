//! [`StdJitMap`]: the map of a normal process, over [`StdHost`], either of the crate's Linux
//! hosts.
//!
//! [`JitMap`]'s own `Drop` already releases every slab (running every remaining dealloc
//! action), so the map needs no teardown of its own: [`StdJitMap`] only adds constructors
//! (one that picks the host by [`detect`]ing what the kernel allows) and derefs to the
//! [`JitMap`]. This module has no unsafe code but the forwarding of the [`Host`] trait.
#![expect(unsafe_code, reason = "StdHost forwards the unsafe Host trait")]

use core::fmt;
use core::ops::Deref;

use mapcore::{Capabilities, Config, Error, Growable, Host, JitMap, PageRange, Prot};

#[cfg(any(target_os = "linux", target_os = "android"))]
use crate::dual_host::DualMappedHost;
use crate::error::OsError;
use crate::flip_host::LibcHost;
#[cfg(any(target_os = "linux", target_os = "android"))]
use crate::strategy::{detect, Detection};

/// How a host makes pages executable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WxMode {
    /// [`LibcHost`](crate::LibcHost): one mapping per page, flipped with `mprotect`.
    Flip,
    /// [`DualMappedHost`](crate::DualMappedHost): a memory file mapped twice, written through
    /// a read-write alias.
    DualMapped,
}

impl fmt::Display for WxMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Flip => "flip",
            Self::DualMapped => "dual-mapped",
        })
    }
}

/// The host of a [`StdJitMap`]: the flip host or the dual-mapped one, chosen at run time.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "one host per map, moved once; boxing would add a pointer chase to every host call"
)]
pub enum StdHost {
    /// Pages flipped with `mprotect` ([`LibcHost`]).
    Flip(LibcHost),
    /// A memory file mapped twice ([`DualMappedHost`]).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    DualMapped(DualMappedHost),
}

impl StdHost {
    /// A new host of `mode`.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[must_use]
    pub fn of_mode(mode: WxMode) -> Self {
        match mode {
            WxMode::Flip => Self::Flip(LibcHost::new()),
            WxMode::DualMapped => Self::DualMapped(DualMappedHost::new()),
        }
    }

    /// Which host this is.
    #[must_use]
    pub fn mode(&self) -> WxMode {
        match self {
            Self::Flip(_) => WxMode::Flip,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Self::DualMapped(_) => WxMode::DualMapped,
        }
    }
}

impl From<LibcHost> for StdHost {
    fn from(host: LibcHost) -> Self {
        Self::Flip(host)
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl From<DualMappedHost> for StdHost {
    fn from(host: DualMappedHost) -> Self {
        Self::DualMapped(host)
    }
}

/// Calls `$method` on whichever host `$self` holds.
macro_rules! forward {
    ($self:ident, $host:ident => $call:expr) => {
        match $self {
            StdHost::Flip($host) => $call,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            StdHost::DualMapped($host) => $call,
        }
    };
}

// SAFETY: every call goes to the one host the value holds, which upholds the trait's
// promises; the capabilities are that host's, so the map treats each as itself.
unsafe impl Host for StdHost {
    type Error = OsError;

    fn page_size(&self) -> usize {
        forward!(self, host => host.page_size())
    }

    fn capabilities(&self) -> Capabilities {
        forward!(self, host => host.capabilities())
    }

    fn reserve(&self, size: usize) -> Result<usize, OsError> {
        forward!(self, host => host.reserve(size))
    }

    unsafe fn release(&self, base: usize, size: usize) -> Result<(), OsError> {
        // SAFETY: the caller's promises, forwarded unchanged.
        forward!(self, host => unsafe { host.release(base, size) })
    }

    unsafe fn protect(&self, range: PageRange, prot: Prot) -> Result<(), OsError> {
        // SAFETY: the caller's promises, forwarded unchanged.
        forward!(self, host => unsafe { host.protect(range, prot) })
    }

    unsafe fn discard(&self, range: PageRange) -> Result<(), OsError> {
        // SAFETY: the caller's promises, forwarded unchanged.
        forward!(self, host => unsafe { host.discard(range) })
    }

    unsafe fn write(&self, addr: usize, bytes: &[u8]) {
        // SAFETY: the caller's promises, forwarded unchanged.
        forward!(self, host => unsafe { host.write(addr, bytes) });
    }

    unsafe fn fill_zero(&self, addr: usize, len: usize) {
        // SAFETY: the caller's promises, forwarded unchanged.
        forward!(self, host => unsafe { host.fill_zero(addr, len) });
    }

    unsafe fn fill_trap(&self, addr: usize, len: usize) {
        // SAFETY: the caller's promises, forwarded unchanged.
        forward!(self, host => unsafe { host.fill_trap(addr, len) });
    }

    unsafe fn flush_icache(&self, range: PageRange) -> Result<(), OsError> {
        // SAFETY: the caller's promises, forwarded unchanged.
        forward!(self, host => unsafe { host.flush_icache(range) })
    }
}

/// A [`JitMap`] over [`StdHost`] with [`Growable`] tables: real `mmap`ed memory, no fixed
/// limit on slabs, live regions or their segments (the per-request limits
/// [`MAX_SEGMENTS`](mapcore::MAX_SEGMENTS) and [`MAX_ACTION_PAIRS`](mapcore::MAX_ACTION_PAIRS)
/// still apply), `Send + Sync`, and dropping it releases everything: pending dealloc actions
/// run, newest first, then every slab is unmapped. Every [`JitMap`] method is available
/// through `Deref`.
///
/// # Examples
///
/// ```
/// use mapcore_std::{LibcHost, Prot, Segment, InitRequest, StdJitMap};
///
/// let map = StdJitMap::new(LibcHost::new());
/// let page = map.page_size();
/// let base = map.reserve(4 * page)?;
/// let data = [Segment::new(Prot::READ, base, 5, b"hello")];
/// let key = map.initialize(&InitRequest::new(&data, &[]))?;
/// assert_eq!(key, base);
/// map.deinitialize(key)?;
/// drop(map); // unmaps the slab
/// # Ok::<(), mapcore_std::StdError>(())
/// ```
#[derive(Debug)]
pub struct StdJitMap {
    map: JitMap<StdHost, Growable>,
}

impl StdJitMap {
    /// A map over `host` with the default [`Config`].
    pub fn new(host: impl Into<StdHost>) -> Self {
        Self::with_config(host, Config::DEFAULT)
    }

    /// A map over `host` with `config`.
    pub fn with_config(host: impl Into<StdHost>, config: Config) -> Self {
        Self {
            map: JitMap::with_config(host.into(), config),
        }
    }

    /// A map over the host [`detect`] picks for this process (dual-mapped where a memory file
    /// may be mapped executable, flip otherwise), with `config`; returns what was detected
    /// too, whose `Display` says which host and why.
    ///
    /// # Examples
    ///
    /// ```
    /// use mapcore_std::{Config, StdJitMap};
    ///
    /// let (map, detection) = StdJitMap::detect(Config::DEFAULT);
    /// println!("W^X mode: {detection}");
    /// assert_eq!(map.host().mode(), detection.mode);
    /// ```
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[must_use]
    pub fn detect(config: Config) -> (Self, Detection) {
        let detection = detect();
        let host = StdHost::of_mode(detection.mode);
        (Self::with_config(host, config), detection)
    }
}

impl Deref for StdJitMap {
    type Target = JitMap<StdHost, Growable>;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

/// The error of every [`StdJitMap`] operation: a map [`Error`] whose host errors are
/// [`OsError`]s.
pub type StdError = Error<OsError>;

/// The std map can be shared between threads and moved to another.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<StdJitMap>();
};
