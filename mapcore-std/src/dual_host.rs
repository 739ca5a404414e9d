//! [`DualMappedHost`]: the [`Host`] that maps each slab twice, from one memory file. The
//! execution view holds the addresses the JIT sees, links and calls; a read-write alias,
//! never executable and not inherited by `fork`, is where the host writes. No view is ever
//! writable and executable at once, and where the kernel refuses to add execute permission
//! (`PR_SET_MDWE`), the host maps the file again over the range instead of `mprotect`ing it.
//!
//! Because the host writes through the alias, it has
//! [`Capabilities::writes_through_alias`]: the map leaves freed pages at their protection and
//! overwrites them through the alias, so reusing a region of the same layout makes no system
//! call.
//!
//! # Safety
//!
//! This module calls libc and implements the unsafe [`Host`] trait. Addresses are integers, so
//! the pointers `mmap` returns have their provenance exposed and are taken back with
//! [`ptr::with_exposed_provenance_mut`]. The alias of a slab is only written under the caller's
//! promises on each [`Host`] method (a live reservation, no concurrent access), translated
//! from the execution address by the slab's offset.
#![expect(unsafe_code, reason = "libc calls and the unsafe Host trait")]

use core::ffi::{c_int, c_uint, c_void};
use core::ptr;
use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

use mapcore::{Capabilities, Host, PageRange, Prot};

use crate::alias_cache::AliasCache;
use crate::error::OsError;
use crate::sys::{cvt, prot_bits};

/// What backs the slabs of a [`DualMappedHost`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backing {
    /// An anonymous memory file (`memfd_create`), sealed against shrinking and growing: no
    /// name, nothing to clean up if the process dies.
    MemoryFile,
    /// Named POSIX shared memory (`shm_open`) called `/<prefix>_<pid>_<n>`, which another
    /// process can open by name (as LLVM's shared-memory mapper does). The name is unlinked
    /// when the slab is released or the host dropped, or earlier on request
    /// ([`DualMappedHost::unlink_shared_memory_name`]).
    SharedMemory {
        /// The start of each object's name; `/`-free.
        prefix: String,
    },
}

/// The two views of one slab and the file behind them.
#[derive(Debug)]
struct Slab {
    size: usize,
    /// The read-write alias's base.
    alias: usize,
    file: OwnedFd,
    /// The shared-memory name to unlink, for [`Backing::SharedMemory`].
    name: Option<CString>,
}

/// The [`Host`] that backs each slab by a memory file mapped twice: the execution view and a
/// read-write alias.
///
/// - `reserve`: a memory file of the slab's size ([`Backing`]), mapped shared twice; the
///   alias is `MADV_DONTFORK`, so a forked child has no writable view of the parent's code.
/// - `protect`: `mprotect` on the execution view; where the kernel refuses to add execute
///   permission (EACCES, as under `PR_SET_MDWE`), the file is mapped again over the range at
///   the new protection, which such kernels allow.
/// - `write`, `fill_zero`, `fill_trap`: through the alias, whatever the execution view's
///   protection.
/// - `discard`: `fallocate(FALLOC_FL_PUNCH_HOLE)`: both views read zero, memory goes back.
/// - `release`: unmaps both views, closes the file (unlinking a shared-memory name).
///
/// Costs: two mappings and one file descriptor per slab.
///
/// # Examples
///
/// ```
/// use mapcore_std::{DualMappedHost, InitRequest, Prot, Segment, StdJitMap};
///
/// let map = StdJitMap::new(DualMappedHost::new());
/// let page = map.page_size();
/// let base = map.reserve(4 * page)?;
/// let code = [0xb8, 42, 0, 0, 0, 0xc3]; // mov eax, 42; ret (x86-64)
/// let key = map.initialize(&InitRequest::new(
///     &[Segment::new(Prot::READ_EXEC, base, code.len(), &code)],
///     &[],
/// ))?;
/// map.deinitialize(key)?; // no system call: the page stays executable, filled with traps
/// # Ok::<(), mapcore_std::StdError>(())
/// ```
#[derive(Debug)]
pub struct DualMappedHost {
    backing: Backing,
    /// Slabs by the base of their execution view.
    slabs: RwLock<BTreeMap<usize, Slab>>,
    /// The alias of the first slabs, for lookups without the lock; changed only under the
    /// write lock of `slabs`.
    aliases: AliasCache,
    /// Numbers the shared-memory names.
    next_name: AtomicU64,
}

impl Default for DualMappedHost {
    fn default() -> Self {
        Self::new()
    }
}

impl DualMappedHost {
    /// A host backed by anonymous memory files.
    #[must_use]
    pub fn new() -> Self {
        Self::with_backing(Backing::MemoryFile)
    }

    /// A host with the given backing.
    #[must_use]
    pub fn with_backing(backing: Backing) -> Self {
        Self {
            backing,
            slabs: RwLock::new(BTreeMap::new()),
            aliases: AliasCache::default(),
            next_name: AtomicU64::new(0),
        }
    }

    /// The backing.
    #[must_use]
    pub fn backing(&self) -> &Backing {
        &self.backing
    }

    /// The shared-memory name of the slab based at `base`, for [`Backing::SharedMemory`].
    #[must_use]
    pub fn shared_memory_name(&self, base: usize) -> Option<CString> {
        self.read_slabs().get(&base).and_then(|s| s.name.clone())
    }

    /// Unlinks the shared-memory name of the slab based at `base` now, for when every process
    /// that needs it has opened it: the object lives on while mapped, and nothing is left in
    /// `/dev/shm` whatever happens later. Returns whether the slab had a name left to unlink.
    #[doc(alias = "shm_unlink")]
    pub fn unlink_shared_memory_name(&self, base: usize) -> bool {
        let name = self
            .write_slabs()
            .get_mut(&base)
            .and_then(|slab| slab.name.take());
        unlink(name.as_ref());
        name.is_some()
    }

    /// The size of the slab based at `base`, if `base` is the base of a slab of this host.
    #[must_use]
    pub fn slab_size(&self, base: usize) -> Option<usize> {
        self.read_slabs().get(&base).map(|s| s.size)
    }

    /// The base of the read-write alias of the slab based at `base`.
    #[must_use]
    pub fn alias_of(&self, base: usize) -> Option<usize> {
        self.read_slabs().get(&base).map(|s| s.alias)
    }

    /// The alias address of the execution address `addr`, if it lies in a slab of this host:
    /// where a caller writes in place into pages the map leaves at any protection.
    #[must_use]
    #[inline]
    pub fn alias_address(&self, addr: usize) -> Option<usize> {
        self.aliases
            .alias_address(addr)
            .or_else(|| self.alias_address_in_table(addr))
    }

    /// [`alias_address`](Self::alias_address) for a slab the cache does not hold: under the
    /// read lock, out of the hot path.
    #[cold]
    fn alias_address_in_table(&self, addr: usize) -> Option<usize> {
        let slabs = self.read_slabs();
        let (base, slab) = slabs.range(..=addr).next_back()?;
        (addr < base + slab.size).then(|| slab.alias + (addr - base))
    }

    fn read_slabs(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<usize, Slab>> {
        self.slabs.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_slabs(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<usize, Slab>> {
        self.slabs.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// [`alias_address`](Self::alias_address) of an address the map passed.
    ///
    /// # Panics
    ///
    /// If `addr` is in no slab of this host: the map only passes addresses of live slabs.
    fn alias(&self, addr: usize) -> usize {
        self.alias_address(addr)
            .unwrap_or_else(|| panic!("{addr:#x} is in no slab of this host"))
    }

    /// The alias address of execution address `addr`, with the file and its offset there.
    ///
    /// # Panics
    ///
    /// If `addr` is in no slab of this host: the map only passes addresses of live slabs.
    fn translate<R>(&self, addr: usize, f: impl FnOnce(usize, c_int, usize) -> R) -> R {
        let slabs = self.read_slabs();
        let (base, slab) = slabs
            .range(..=addr)
            .next_back()
            .filter(|(base, slab)| addr < *base + slab.size)
            .unwrap_or_else(|| panic!("{addr:#x} is in no slab of this host"));
        let offset = addr - base;
        f(slab.alias + offset, slab.file.as_raw_fd(), offset)
    }

    /// A new memory file of `size` bytes: its descriptor and its shared-memory name, if any.
    fn create_file(&self, size: usize) -> Result<(OwnedFd, Option<CString>), OsError> {
        let len =
            libc::off_t::try_from(size).map_err(|_| OsError::from_raw_os_error(libc::EFBIG))?;
        let (file, name) = match &self.backing {
            Backing::MemoryFile => (create_memory_file()?, None),
            Backing::SharedMemory { prefix } => {
                let n = self.next_name.fetch_add(1, Ordering::Relaxed);
                let name = format!("/{prefix}_{}_{n}", std::process::id());
                let name =
                    CString::new(name).map_err(|_| OsError::from_raw_os_error(libc::EINVAL))?;
                let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC;
                // SAFETY: `name` is a valid C string; shm_open creates a new object (O_EXCL) and
                // returns a new descriptor that nothing else owns.
                let fd = cvt(unsafe { libc::shm_open(name.as_ptr(), flags, 0o600) })?;
                // SAFETY: `fd` was just returned by shm_open and is owned by nobody else.
                (unsafe { OwnedFd::from_raw_fd(fd) }, Some(name))
            }
        };
        let sized = (|| {
            // SAFETY: a valid descriptor of a file this host just created.
            cvt(unsafe { libc::ftruncate(file.as_raw_fd(), len) })?;
            if self.backing == Backing::MemoryFile {
                let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
                // SAFETY: as above; sealing only restricts later changes of the file's size.
                cvt(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) })?;
            }
            Ok(())
        })();
        if let Err(error) = sized {
            unlink(name.as_ref());
            return Err(error);
        }
        Ok((file, name))
    }
}

/// `memfd_create("mapcore", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC)`, without `MFD_EXEC` on
/// kernels that do not know the flag (before 6.3).
pub(crate) fn create_memory_file() -> Result<OwnedFd, OsError> {
    const NAME: &core::ffi::CStr = c"mapcore";
    let flags: c_uint = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: `NAME` is a valid C string; memfd_create returns a new descriptor.
    let fd = cvt(unsafe { libc::memfd_create(NAME.as_ptr(), flags | libc::MFD_EXEC) }).or_else(
        |error| {
            if error.raw_os_error() == libc::EINVAL {
                // SAFETY: as above.
                cvt(unsafe { libc::memfd_create(NAME.as_ptr(), flags) })
            } else {
                Err(error)
            }
        },
    )?;
    // SAFETY: `fd` was just returned by memfd_create and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Unlinks a shared-memory name, if there is one; errors are ignored (the name is ours and
/// only this host unlinks it).
fn unlink(name: Option<&CString>) {
    if let Some(name) = name {
        // SAFETY: `name` is a valid C string; unlinking only removes the name.
        unsafe { libc::shm_unlink(name.as_ptr()) };
    }
}

/// `mmap(hint, len, prot, MAP_SHARED | flags, fd, offset)`.
///
/// # Safety
///
/// With `MAP_FIXED` in `flags`, `hint..hint + len` is a range this host mapped and nothing
/// refers to it in a way the new mapping would invalidate.
unsafe fn map_file(
    hint: usize,
    len: usize,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    offset: usize,
) -> Result<usize, OsError> {
    let offset =
        libc::off_t::try_from(offset).map_err(|_| OsError::from_raw_os_error(libc::EINVAL))?;
    let hint: *mut c_void = ptr::with_exposed_provenance_mut(hint);
    // SAFETY: the caller's promise covers MAP_FIXED; otherwise the kernel picks free address
    // space and nothing existing is replaced.
    let base = cvt(unsafe { libc::mmap(hint, len, prot, libc::MAP_SHARED | flags, fd, offset) })?;
    Ok(base.expose_provenance())
}

/// `munmap(addr, len)`.
///
/// # Safety
///
/// `addr..addr + len` is a range this host mapped, and nothing refers to it any more.
unsafe fn unmap(addr: usize, len: usize) -> Result<(), OsError> {
    // SAFETY: the caller's promise.
    cvt(unsafe { libc::munmap(ptr::with_exposed_provenance_mut(addr), len) })?;
    Ok(())
}

// SAFETY: the implementer's promises of `Host`:
// 1. `reserve` returns the execution view of a new memory file of `size` bytes: a shared
//    mapping the kernel placed in free address space, page-aligned, zero-filled (a new file
//    reads as zero), `PROT_READ | PROT_WRITE`.
// 2. `protect` returns `Ok` only when `mprotect`, or the `mmap(MAP_FIXED)` of the same file
//    range that replaces it, succeeded for the whole range.
// 3. `discard` punches a hole in the file: both views read zero afterwards, and the
//    protections of the views are untouched.
// 4. `write`, `fill_zero` and `fill_trap` store exactly the bytes asked for through the alias,
//    which maps the same file range as the execution address, so exactly those bytes change
//    at the execution address, whatever its protection (`writes_through_alias`).
// 5. No method calls back into a map.
// 6. `page_size` returns the cached `sysconf` value, asserted to be a power of two.
unsafe impl Host for DualMappedHost {
    type Error = OsError;

    fn page_size(&self) -> usize {
        crate::page_size()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            writes_through_alias: true,
            ..Capabilities::FULL
        }
    }

    /// A memory file of `size` bytes, mapped shared twice: the execution view (returned) and
    /// the `MADV_DONTFORK` read-write alias.
    #[doc(alias = "memfd_create")]
    #[doc(alias = "shm_open")]
    fn reserve(&self, size: usize) -> Result<usize, OsError> {
        let (file, name) = self.create_file(size)?;
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        let fd = file.as_raw_fd();
        let mapped = (|| {
            // SAFETY: no MAP_FIXED: the kernel picks free address space.
            let view = unsafe { map_file(0, size, rw, 0, fd, 0) }?;
            // SAFETY: as above.
            let alias = match unsafe { map_file(0, size, rw, 0, fd, 0) } {
                Ok(alias) => alias,
                Err(error) => {
                    // SAFETY: `view` was mapped just above and is known to nobody else.
                    let _ = unsafe { unmap(view, size) };
                    return Err(error);
                }
            };
            // SAFETY: `alias` is the range just mapped; MADV_DONTFORK only changes what a
            // fork inherits.
            let advised = cvt(unsafe {
                libc::madvise(
                    ptr::with_exposed_provenance_mut(alias),
                    size,
                    libc::MADV_DONTFORK,
                )
            });
            if let Err(error) = advised {
                // SAFETY: both ranges were mapped just above and are known to nobody else.
                let _ = unsafe { unmap(alias, size) };
                // SAFETY: as above.
                let _ = unsafe { unmap(view, size) };
                return Err(error);
            }
            Ok((view, alias))
        })();
        let (view, alias) = match mapped {
            Ok(views) => views,
            Err(error) => {
                unlink(name.as_ref());
                return Err(error);
            }
        };
        let slab = Slab {
            size,
            alias,
            file,
            name,
        };
        let mut slabs = self.write_slabs();
        slabs.insert(view, slab);
        self.aliases.publish(view, size, alias);
        Ok(view)
    }

    /// Unmaps both views and closes the file (unlinking a shared-memory name).
    #[doc(alias = "munmap")]
    unsafe fn release(&self, base: usize, size: usize) -> Result<(), OsError> {
        let mut slabs = self.write_slabs();
        let Some(slab) = slabs.get(&base).filter(|slab| slab.size == size) else {
            return Err(OsError::from_raw_os_error(libc::EINVAL));
        };
        // Out of the cache before anything is unmapped; after a failure the slab is still
        // found in the table.
        self.aliases.withdraw(base);
        // The alias first: if the execution view cannot be unmapped afterwards, a retry finds
        // the alias range unmapped already, which munmap accepts.
        // SAFETY: (1) the alias belongs to this live reservation; (2) the caller promises
        // nothing refers to the memory any more.
        unsafe { unmap(slab.alias, size) }?;
        // SAFETY: as above, for the execution view.
        unsafe { unmap(base, size) }?;
        if let Some(slab) = slabs.remove(&base) {
            unlink(slab.name.as_ref());
        }
        Ok(())
    }

    /// `mprotect` on the execution view; if the kernel refuses to add execute permission
    /// (EACCES), `mmap(MAP_FIXED | MAP_SHARED)` of the same file range at `prot`.
    #[doc(alias = "mprotect")]
    unsafe fn protect(&self, range: PageRange, prot: Prot) -> Result<(), OsError> {
        let (addr, len, bits) = (range.start(), range.len(), prot_bits(prot));
        // SAFETY: (1) the range lies inside one live reservation of this host; (2) the caller
        // promises no live reference into it is invalidated by the new protection.
        let protected =
            cvt(unsafe { libc::mprotect(ptr::with_exposed_provenance_mut(addr), len, bits) });
        match protected {
            Err(error) if error.raw_os_error() == libc::EACCES && prot.contains(Prot::EXEC) => {
                self.translate(addr, |_, fd, offset| {
                    // SAFETY: MAP_FIXED over a range of this host's execution view, with the
                    // same file range behind it: the contents stay, only the protection
                    // changes, and the caller promises no reference is invalidated by it.
                    unsafe { map_file(addr, len, bits, libc::MAP_FIXED, fd, offset) }
                })?;
                Ok(())
            }
            other => other.map(drop),
        }
    }

    /// `fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)` over the file range.
    #[doc(alias = "fallocate")]
    unsafe fn discard(&self, range: PageRange) -> Result<(), OsError> {
        let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        let len = libc::off_t::try_from(range.len())
            .map_err(|_| OsError::from_raw_os_error(libc::EINVAL))?;
        self.translate(range.start(), |_, fd, offset| {
            let offset = libc::off_t::try_from(offset)
                .map_err(|_| OsError::from_raw_os_error(libc::EINVAL))?;
            // SAFETY: punches a hole in this slab's own file, inside the range the caller
            // promises nobody needs any more.
            cvt(unsafe { libc::fallocate(fd, mode, offset, len) })?;
            Ok(())
        })
    }

    /// `memcpy` through the alias.
    #[doc(alias = "memcpy")]
    unsafe fn write(&self, addr: usize, bytes: &[u8]) {
        let dst = ptr::with_exposed_provenance_mut::<u8>(self.alias(addr));
        // SAFETY: (1) `[addr, addr + len)` lies in one live reservation, so its alias range is
        // mapped read-write and valid for `len` bytes; `u8` needs no alignment; (2) nobody
        // else accesses it during the call; (3) `bytes` does not overlap it.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
    }

    /// `memset(0)` through the alias.
    #[doc(alias = "memset")]
    unsafe fn fill_zero(&self, addr: usize, len: usize) {
        let dst = ptr::with_exposed_provenance_mut::<u8>(self.alias(addr));
        // SAFETY: as for `write`.
        unsafe { ptr::write_bytes(dst, 0, len) };
    }

    /// Trap instructions through the alias: `int3` (0xcc) on x86-64, zero words (`udf #0`) on
    /// aarch64.
    unsafe fn fill_trap(&self, addr: usize, len: usize) {
        let dst = ptr::with_exposed_provenance_mut::<u8>(self.alias(addr));
        // SAFETY: as for `write`.
        unsafe { crate::trap::fill(dst, len) };
    }

    /// As [`LibcHost`](crate::LibcHost) does, on the execution view.
    #[doc(alias = "__clear_cache")]
    unsafe fn flush_icache(&self, range: PageRange) -> Result<(), OsError> {
        crate::icache::flush(range)
    }
}

impl Drop for DualMappedHost {
    /// Unlinks the shared-memory names of slabs never released (their files close with the
    /// descriptors; their mappings, if any remain, stay until the process exits).
    fn drop(&mut self) {
        for slab in self.write_slabs().values() {
            unlink(slab.name.as_ref());
        }
    }
}
