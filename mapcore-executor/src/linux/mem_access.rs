//! The memory read/write wrappers (`__llvm_orc_bootstrap_mem_{read,write}_*_wrapper`).
//!
//! | Wrapper | Arguments | Reply |
//! |---|---|---|
//! | `mem_write_uint{8,16,32,64}s` | `Seq<(Addr, uN)>` | void |
//! | `mem_write_pointers` | `Seq<(Addr, Addr)>` | void |
//! | `mem_write_buffers` | `Seq<(Addr, Seq<char>)>` | void |
//! | `mem_read_uint{8,16,32,64}s`, `mem_read_pointers` | `Seq<Addr>` | `Seq<uN>` |
//! | `mem_read_buffers` | `Seq<(Addr start, Addr end)>` | `Seq<Seq<u8>>` |
//! | `mem_read_strings` | `Seq<Addr>` | `Seq<String>` |
//!
//! Every access is a copy the kernel makes and checks: an unmapped, unreadable or read-only
//! address gives `EFAULT` and an error reply, never a crash. Values are native-endian in memory.
//! The copy is made one of two ways ([`Via`]):
//!
//! - `process_vm_readv`/`process_vm_writev` on the own pid: one system call per access.
//! - Where those do not exist, a pipe: `write(2)` from the address into the pipe reads this
//!   process's memory, `read(2)` from the pipe to the address writes it, each checked by the
//!   kernel as it copies. qemu-user implements no `process_vm_*` (`ENOSYS`: the aarch64
//!   executor could not even read an EH frame under `qemu-aarch64`), nor do kernels built
//!   without `CONFIG_CROSS_MEMORY_ATTACH`, and seccomp sandboxes may refuse them (`EPERM`);
//!   `read` and `write` work wherever a process can do I/O, and qemu-user checks the guest's
//!   page protections for them exactly.
//!
//! Why both: the pipe alone would do everywhere, but it costs a `pipe2` and two `close`s per
//! access and two system calls per 64 KiB, measured 17 us against 3 us for a 64-byte read and
//! 6 times as long for 1 MiB on an x86-64 host where a bare IPC round trip takes 7 us. So each
//! access tries `process_vm_*` first and takes the pipe when that fails with `ENOSYS` or
//! `EPERM` (one cheap failing call each time; no process-wide state to get stale or shared).
//! `mincore` plus `/proc/self/maps` would be racy and blind to protection keys. The unit tests
//! run both ways on every host, so the pipe is tested on x86-64 too.
//!
//! # Safety
//!
//! The libc calls get local buffers that are live and sized as declared, and descriptors this
//! module owns; the other side, the address being accessed, is only ever touched by the kernel,
//! which validates it.
#![expect(
    unsafe_code,
    reason = "process_vm_readv/writev, and pipe2, read and write on raw addresses"
)]

use std::ffi::c_void;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use mapcore_sps::{from_bytes, Decode, Encode, Seq};

use super::reply::{self, Failure};

/// Largest total of bytes one read call may return.
const MAX_READ: usize = 1 << 30;

/// Longest string `mem_read_strings` follows before giving up on finding its NUL.
const MAX_STRING: usize = 1 << 24;

/// Bytes moved through the pipe per `write`: its default capacity. A pipe may hold less (when
/// the user's pipe quota is used up); a partial `write` then just means another round.
const CHUNK: usize = 64 << 10;

/// How an access asks the kernel to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// `process_vm_*`, falling back on [`Via::Pipe`] where they are not available.
    Any,
    /// `process_vm_readv`/`process_vm_writev` only.
    VmCalls,
    /// A pipe only.
    Pipe,
}

/// Whether a `process_vm_*` failure means "not available here" rather than "not accessible".
fn unavailable(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::ENOSYS | libc::EPERM))
}

/// Reads `len` bytes at `addr` of this process.
///
/// # Errors
///
/// The range is not wholly readable (`EFAULT`), or neither way of copying is available.
pub(crate) fn read(addr: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    read_via(Via::Any, addr, &mut buf)?;
    Ok(buf)
}

fn read_via(via: Via, addr: u64, buf: &mut [u8]) -> io::Result<()> {
    if buf.is_empty() {
        return Ok(());
    }
    let from = checked_range(addr, buf.len())?;
    match via {
        Via::VmCalls => vm_read(from, buf),
        Via::Pipe => pipe_read(from, buf),
        Via::Any => match read_via(Via::VmCalls, addr, buf) {
            Err(error) if unavailable(&error) => read_via(Via::Pipe, addr, buf),
            done => done,
        },
    }
}

/// Writes `bytes` at `addr` of this process. A range that is writable only in part may be
/// written up to the first page that is not.
///
/// # Errors
///
/// The range is not wholly writable (`EFAULT`), or neither way of copying is available.
pub(crate) fn write(addr: u64, bytes: &[u8]) -> io::Result<()> {
    write_via(Via::Any, addr, bytes)
}

fn write_via(via: Via, addr: u64, bytes: &[u8]) -> io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    let to = checked_range(addr, bytes.len())?;
    match via {
        Via::VmCalls => vm_write(to, bytes),
        Via::Pipe => pipe_write(to, bytes),
        Via::Any => match write_via(Via::VmCalls, addr, bytes) {
            Err(error) if unavailable(&error) => write_via(Via::Pipe, addr, bytes),
            done => done,
        },
    }
}

/// The start of an access of `len` bytes at `addr`, which must not wrap.
fn checked_range(addr: u64, len: usize) -> io::Result<usize> {
    let fault = || io::Error::from_raw_os_error(libc::EFAULT);
    let addr = usize::try_from(addr).map_err(|_| fault())?;
    addr.checked_add(len).ok_or_else(fault)?;
    Ok(addr)
}

/// A pointer to `addr` for the kernel to check and access; no Rust access is made through it,
/// so it carries no provenance: the kernel only uses the address bits.
fn remote(addr: usize) -> *const c_void {
    std::ptr::without_provenance(addr)
}

// ---- process_vm_readv / process_vm_writev ----------------------------------------------------

fn vm_read(from: usize, buf: &mut [u8]) -> io::Result<()> {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast::<c_void>(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: remote(from).cast_mut(),
        iov_len: buf.len(),
    };
    // SAFETY: `local` describes `buf`, live and writable for the call; the kernel validates
    // `remote` and fails with EFAULT instead of faulting.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    complete(n, buf.len())
}

fn vm_write(to: usize, bytes: &[u8]) -> io::Result<()> {
    let local = libc::iovec {
        iov_base: bytes.as_ptr().cast_mut().cast::<c_void>(),
        iov_len: bytes.len(),
    };
    let remote = libc::iovec {
        iov_base: remote(to).cast_mut(),
        iov_len: bytes.len(),
    };
    // SAFETY: `local` describes `bytes`, live for the call and only read; the kernel validates
    // `remote` and fails with EFAULT instead of faulting.
    let n = unsafe { libc::process_vm_writev(libc::getpid(), &local, 1, &remote, 1, 0) };
    complete(n, bytes.len())
}

/// A partial transfer stopped at an inaccessible page.
fn complete(n: isize, len: usize) -> io::Result<()> {
    match usize::try_from(n) {
        Err(_) => Err(io::Error::last_os_error()),
        Ok(n) if n == len => Ok(()),
        Ok(_) => Err(io::Error::from_raw_os_error(libc::EFAULT)),
    }
}

// ---- the pipe --------------------------------------------------------------------------------

fn pipe_read(from: usize, buf: &mut [u8]) -> io::Result<()> {
    let pipe = Pipe::new()?;
    let mut done = 0;
    while done < buf.len() {
        let want = (buf.len() - done).min(CHUNK);
        // The kernel reads `from + done..`: EFAULT at once if its first byte is not readable,
        // a short count if a later one is not (the next round then fails).
        let put = pipe.put(remote(from + done), want)?;
        let mut taken = 0;
        while taken < put {
            let into = &mut buf[done + taken..done + put];
            taken += pipe.take(into.as_mut_ptr().cast(), into.len())?;
        }
        done += put;
    }
    Ok(())
}

fn pipe_write(to: usize, bytes: &[u8]) -> io::Result<()> {
    let pipe = Pipe::new()?;
    let mut done = 0;
    while done < bytes.len() {
        let chunk = &bytes[done..bytes.len().min(done + CHUNK)];
        let put = pipe.put(chunk.as_ptr().cast(), chunk.len())?;
        let mut taken = 0;
        while taken < put {
            // The kernel writes `to + done + taken..`: EFAULT if that byte is not writable.
            taken += pipe.take(remote(to + done + taken).cast_mut(), put - taken)?;
        }
        done += put;
    }
    Ok(())
}

/// A non-blocking, close-on-exec pipe owned by one access, closed when it ends: nothing is
/// shared between threads or sessions, and a failed access leaves nothing behind.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    fn new() -> io::Result<Self> {
        let mut fds = [-1; 2];
        // SAFETY: `fds` has room for the two descriptors `pipe2` stores.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `pipe2` succeeded, so both are open descriptors that nothing else owns.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(Self { read, write })
    }

    /// `write(2)` of `len` bytes at `from` (a local buffer, or a [`remote`] address) into the
    /// (empty) pipe: how many it took, at least one.
    fn put(&self, from: *const c_void, len: usize) -> io::Result<usize> {
        // SAFETY: `write` only reads `[from, from + len)`, and the kernel checks that range:
        // an unreadable byte makes it stop with EFAULT or a short count, never a fault here.
        let n = unsafe { libc::write(self.write.as_raw_fd(), from, len) };
        transferred(n)
    }

    /// `read(2)` of at most `len` bytes from the pipe to `to` (a local buffer, or a
    /// [`remote`] address): how many it stored, at least one.
    fn take(&self, to: *mut c_void, len: usize) -> io::Result<usize> {
        // SAFETY: `read` only writes `[to, to + len)`, and the kernel checks that range: an
        // unwritable byte makes it stop with EFAULT or a short count, never a fault here. When
        // `to` is a local buffer it is live, writable and `len` long (see the callers).
        let n = unsafe { libc::read(self.read.as_raw_fd(), to, len) };
        transferred(n)
    }
}

/// The count of a `read`/`write` that must move at least one byte. Zero cannot happen with
/// bytes waiting in a pipe whose ends we both hold; it is an error rather than an endless loop.
fn transferred(n: isize) -> io::Result<usize> {
    match usize::try_from(n) {
        Err(_) => Err(io::Error::last_os_error()),
        Ok(0) => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the pipe moved no bytes",
        )),
        Ok(n) => Ok(n),
    }
}

/// An unsigned word of memory: its SPS and native-endian forms.
pub(crate) trait Word: for<'a> Decode<'a> + Encode + Copy {
    /// Bytes in memory.
    const SIZE: usize;
    /// The native-endian bytes, in the first [`SIZE`](Self::SIZE) of 8.
    fn to_ne(self) -> [u8; 8];
    /// From native-endian bytes (the first [`SIZE`](Self::SIZE)).
    fn from_ne(bytes: &[u8]) -> Self;
}

macro_rules! word {
    ($($ty:ty),*) => {$(
        impl Word for $ty {
            const SIZE: usize = size_of::<$ty>();
            fn to_ne(self) -> [u8; 8] {
                let mut out = [0u8; 8];
                out[..Self::SIZE].copy_from_slice(&self.to_ne_bytes());
                out
            }
            fn from_ne(bytes: &[u8]) -> Self {
                let mut raw = [0u8; size_of::<$ty>()];
                raw.copy_from_slice(&bytes[..Self::SIZE]);
                <$ty>::from_ne_bytes(raw)
            }
        }
    )*};
}

word!(u8, u16, u32, u64);

/// A pointer-sized word, as `Addr` on the wire.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pointer(u64);

impl Decode<'_> for Pointer {
    const MIN_LEN: usize = 8;
    fn decode(reader: &mut mapcore_sps::Reader<'_>) -> Result<Self, mapcore_sps::DecodeError> {
        reader.addr().map(Self)
    }
}

impl Encode for Pointer {
    fn encode(
        &self,
        writer: &mut mapcore_sps::Writer<'_>,
    ) -> Result<(), mapcore_sps::BufferTooSmall> {
        writer.addr(self.0)
    }
}

impl Word for Pointer {
    const SIZE: usize = size_of::<usize>();
    fn to_ne(self) -> [u8; 8] {
        // A pointer that does not fit this target is cut to its low bits on 32-bit targets.
        let mut out = [0u8; 8];
        out[..Self::SIZE].copy_from_slice(&(self.0 as usize).to_ne_bytes());
        out
    }
    fn from_ne(bytes: &[u8]) -> Self {
        let mut raw = [0u8; size_of::<usize>()];
        raw.copy_from_slice(&bytes[..Self::SIZE]);
        Self(usize::from_ne_bytes(raw) as u64)
    }
}

fn access_failed(what: &str, addr: u64, error: &io::Error) -> Failure {
    Failure::rejected(format_args!("{what} at {addr:#x} failed: {error}"))
}

/// `mem_write_uint{8,16,32,64}s` and `mem_write_pointers`: `Seq<(Addr, W)>` → void. Writes
/// stop at the first failure.
pub(crate) fn write_words<W: Word>(args: &[u8]) -> Result<Vec<u8>, Failure> {
    let writes =
        from_bytes::<Seq<'_, (u64, W)>>(args).map_err(|e| Failure::decode("mem_write", e))?;
    for (addr, value) in writes {
        write(addr, &value.to_ne()[..W::SIZE]).map_err(|e| access_failed("write", addr, &e))?;
    }
    Ok(Vec::new())
}

/// `mem_write_buffers`: `Seq<(Addr, Seq<char>)>` → void.
pub(crate) fn write_buffers(args: &[u8]) -> Result<Vec<u8>, Failure> {
    let writes = from_bytes::<Seq<'_, (u64, &[u8])>>(args)
        .map_err(|e| Failure::decode("mem_write_buffers", e))?;
    for (addr, bytes) in writes {
        write(addr, bytes).map_err(|e| access_failed("write", addr, &e))?;
    }
    Ok(Vec::new())
}

/// `mem_read_uint{8,16,32,64}s` and `mem_read_pointers`: `Seq<Addr>` → `Seq<W>`.
pub(crate) fn read_words<W: Word>(args: &[u8]) -> Result<Vec<u8>, Failure> {
    let addrs = from_bytes::<Seq<'_, u64>>(args).map_err(|e| Failure::decode("mem_read", e))?;
    let mut values = Vec::with_capacity(addrs.len());
    for addr in addrs {
        let bytes = read(addr, W::SIZE).map_err(|e| access_failed("read", addr, &e))?;
        values.push(W::from_ne(&bytes));
    }
    reply::encode(8 + values.len() * 8, |w| w.write(&values[..]))
}

/// `mem_read_buffers`: `Seq<(Addr start, Addr end)>` → `Seq<Seq<u8>>`.
pub(crate) fn read_buffers(args: &[u8]) -> Result<Vec<u8>, Failure> {
    let ranges = from_bytes::<Seq<'_, (u64, u64)>>(args)
        .map_err(|e| Failure::decode("mem_read_buffers", e))?;
    let mut total = 0usize;
    let mut buffers = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        let len = end
            .checked_sub(start)
            .and_then(|len| usize::try_from(len).ok())
            .ok_or_else(|| Failure::rejected(format_args!("bad range {start:#x}..{end:#x}")))?;
        total = total.saturating_add(len);
        if total > MAX_READ {
            return Err(Failure::rejected(format_args!(
                "reads of more than {MAX_READ} bytes in one call are refused"
            )));
        }
        buffers.push(read(start, len).map_err(|e| access_failed("read", start, &e))?);
    }
    let refs: Vec<&[u8]> = buffers.iter().map(Vec::as_slice).collect();
    reply::encode(8 + total + 8 * refs.len(), |w| w.write(&refs[..]))
}

/// `mem_read_strings`: `Seq<Addr>` → `Seq<String>`, each read up to its NUL.
pub(crate) fn read_strings(args: &[u8]) -> Result<Vec<u8>, Failure> {
    let addrs =
        from_bytes::<Seq<'_, u64>>(args).map_err(|e| Failure::decode("mem_read_strings", e))?;
    let mut strings = Vec::with_capacity(addrs.len());
    let mut total = 0usize;
    for addr in addrs {
        let string = read_c_string(addr).map_err(|e| access_failed("read", addr, &e))?;
        total = total.saturating_add(string.len());
        if total > MAX_READ {
            return Err(Failure::rejected(format_args!(
                "reads of more than {MAX_READ} bytes in one call are refused"
            )));
        }
        strings.push(string);
    }
    let refs: Vec<&[u8]> = strings.iter().map(Vec::as_slice).collect();
    reply::encode(8 + total + 8 * refs.len(), |w| w.write(&refs[..]))
}

/// Reads the NUL-terminated string at `addr`, one page-bounded chunk at a time so that a
/// string ending just before an unmapped page is still read.
fn read_c_string(addr: u64) -> io::Result<Vec<u8>> {
    read_c_string_via(Via::Any, addr)
}

fn read_c_string_via(via: Via, addr: u64) -> io::Result<Vec<u8>> {
    let page = mapcore_std::page_size() as u64;
    let mut out = Vec::new();
    let mut at = addr;
    loop {
        let chunk = (page - at % page) as usize;
        let mut buf = vec![0u8; chunk];
        read_via(via, at, &mut buf)?;
        if let Some(nul) = buf.iter().position(|&b| b == 0) {
            out.extend_from_slice(&buf[..nul]);
            return Ok(out);
        }
        out.extend_from_slice(&buf);
        if out.len() > MAX_STRING {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "no NUL within 16 MiB",
            ));
        }
        at = at
            .checked_add(chunk as u64)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EFAULT))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pages` fresh read-write pages, unmapped on drop.
    struct Pages {
        base: usize,
        len: usize,
    }

    impl Pages {
        fn new(pages: usize) -> Self {
            let len = pages * mapcore_std::page_size();
            // SAFETY: a fresh anonymous mapping; no existing memory is affected.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            assert_ne!(ptr, libc::MAP_FAILED, "{}", io::Error::last_os_error());
            Self {
                base: ptr.expose_provenance(),
                len,
            }
        }

        fn page(&self, index: usize) -> u64 {
            (self.base + index * mapcore_std::page_size()) as u64
        }

        fn protect(&self, index: usize, prot: libc::c_int) {
            let page = mapcore_std::page_size();
            // SAFETY: the page belongs to this mapping, which only these tests use.
            let rc = unsafe {
                libc::mprotect(
                    std::ptr::with_exposed_provenance_mut(self.base + index * page),
                    page,
                    prot,
                )
            };
            assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        }
    }

    impl Drop for Pages {
        fn drop(&mut self) {
            // SAFETY: the whole mapping made in `new`, no longer used.
            unsafe { libc::munmap(std::ptr::with_exposed_provenance_mut(self.base), self.len) };
        }
    }

    fn read(via: Via, addr: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        read_via(via, addr, &mut buf).map(|()| buf)
    }

    fn is_efault(result: io::Result<impl std::fmt::Debug>) -> bool {
        matches!(result, Err(ref e) if e.raw_os_error() == Some(libc::EFAULT))
    }

    /// Says that `process_vm_*` alone was not checked: one `SKIPPED ... NOT checked` line;
    /// under `CI=true` a failure unless `MAPCORE_EXPECTED_SKIPS` lists `process-vm` (the
    /// aarch64 gate under qemu-user, which does not pass these calls on).
    fn skipped_vm_calls(error: &io::Error) {
        let line = format!(
            "SKIPPED process_vm_* (process-vm): unavailable here ({error}); checked through the \
             pipe only; NOT checked alone"
        );
        println!("{line}");
        let in_ci = std::env::var_os("CI").is_some_and(|v| v == "true");
        let expected = std::env::var("MAPCORE_EXPECTED_SKIPS").unwrap_or_default();
        assert!(
            !in_ci || expected.split(',').any(|s| s.trim() == "process-vm"),
            "{line}: CI=true and MAPCORE_EXPECTED_SKIPS={expected:?} does not list `process-vm`"
        );
    }

    /// Every way of copying that this host has: the pipe and the automatic choice always;
    /// `process_vm_*` alone where they exist (not under qemu-user), said so where not.
    fn ways() -> Vec<Via> {
        let probe = 7u64;
        let mut buf = [0u8; 8];
        match vm_read(std::ptr::from_ref(&probe).addr(), &mut buf) {
            Ok(()) => vec![Via::VmCalls, Via::Pipe, Via::Any],
            Err(error) if unavailable(&error) => {
                skipped_vm_calls(&error);
                vec![Via::Pipe, Via::Any]
            }
            Err(error) => panic!("process_vm_readv of a local: {error}"),
        }
    }

    #[test]
    fn reads_and_writes_memory_larger_than_the_pipe() {
        for via in ways() {
            let pages = Pages::new(64); // 256 KiB with 4 KiB pages: several pipe rounds
            let pattern: Vec<u8> = (0..pages.len - 3).map(|i| (i * 7 % 251) as u8).collect();
            write_via(via, pages.page(0) + 1, &pattern).unwrap();
            assert_eq!(
                read(via, pages.page(0) + 1, pattern.len()).unwrap(),
                pattern,
                "{via:?}"
            );
            assert_eq!(
                read(via, pages.page(0), 1).unwrap(),
                [0],
                "{via:?}: nothing before"
            );
            assert_eq!(read(via, pages.page(0), 0).unwrap(), [0u8; 0]);
            write_via(via, pages.page(0), &[]).unwrap();
            // A local value, the way the EH-frame check reads JIT memory.
            let local = 0x1122_3344_5566_7788u64;
            let bytes = read(via, std::ptr::from_ref(&local).addr() as u64, 8).unwrap();
            assert_eq!(bytes, local.to_ne_bytes(), "{via:?}");
        }
    }

    #[test]
    fn unreadable_memory_is_efault_not_a_crash() {
        for via in ways() {
            let pages = Pages::new(3);
            pages.protect(1, libc::PROT_NONE);
            assert!(is_efault(read(via, pages.page(1), 1)), "{via:?}");
            assert!(is_efault(read(via, pages.page(1) + 100, 8)), "{via:?}");
            // Readable up to an unreadable page: the whole read fails.
            let two_pages = 2 * mapcore_std::page_size();
            assert!(is_efault(read(via, pages.page(0), two_pages)), "{via:?}");
            assert!(is_efault(read(via, pages.page(1) - 4, 8)), "{via:?}");
            assert_eq!(read(via, pages.page(1) - 4, 4).unwrap(), [0; 4], "{via:?}");
            for addr in [0, 8, u64::MAX - 3] {
                assert!(is_efault(read(via, addr, 4)), "{via:?} {addr:#x}");
            }
        }
    }

    #[test]
    fn unwritable_memory_is_efault_and_keeps_its_bytes() {
        for via in ways() {
            let pages = Pages::new(3);
            write_via(via, pages.page(1), b"kept").unwrap();
            pages.protect(1, libc::PROT_READ);
            pages.protect(2, libc::PROT_NONE);
            assert!(is_efault(write_via(via, pages.page(1), b"lost")), "{via:?}");
            assert_eq!(read(via, pages.page(1), 4).unwrap(), b"kept", "{via:?}");
            assert!(is_efault(write_via(via, pages.page(2), b"x")), "{via:?}");
            // Writable up to a read-only page: an error, and the read-only page is unchanged.
            let span = vec![0xAB; mapcore_std::page_size() + 8];
            assert!(is_efault(write_via(via, pages.page(0), &span)), "{via:?}");
            assert_eq!(read(via, pages.page(1), 4).unwrap(), b"kept", "{via:?}");
            for addr in [0, 8, u64::MAX - 3] {
                assert!(
                    is_efault(write_via(via, addr, b"abcd")),
                    "{via:?} {addr:#x}"
                );
            }
        }
    }

    #[test]
    fn a_string_ending_before_an_unreadable_page_is_read() {
        for via in ways() {
            let pages = Pages::new(2);
            pages.protect(1, libc::PROT_NONE);
            let tail = pages.page(1) - 4;
            write_via(via, tail, b"end\0").unwrap();
            assert_eq!(read_c_string_via(via, tail).unwrap(), b"end", "{via:?}");
            write_via(via, tail, b"endX").unwrap();
            assert!(is_efault(read_c_string_via(via, tail)), "{via:?}");
        }
    }

    #[test]
    fn only_unavailable_vm_calls_fall_back_to_the_pipe() {
        for errno in [libc::ENOSYS, libc::EPERM] {
            assert!(unavailable(&io::Error::from_raw_os_error(errno)));
        }
        for errno in [libc::EFAULT, libc::ENOMEM, libc::EINVAL, libc::ESRCH] {
            assert!(!unavailable(&io::Error::from_raw_os_error(errno)));
        }
    }

    #[test]
    fn pipe_accesses_leave_no_descriptor_open() {
        let open = || std::fs::read_dir("/proc/self/fd").unwrap().count();
        let pages = Pages::new(2);
        pages.protect(1, libc::PROT_NONE);
        let before = open();
        for _ in 0..500 {
            read(Via::Pipe, pages.page(0), 16).unwrap();
            write_via(Via::Pipe, pages.page(0), b"x").unwrap();
            assert!(is_efault(read(Via::Pipe, pages.page(1), 16)));
            assert!(is_efault(write_via(Via::Pipe, pages.page(1), b"x")));
        }
        // 2,000 pipes were made; other tests' threads may hold a few descriptors meanwhile.
        let after = open();
        assert!(after < before + 32, "{before} -> {after} open descriptors");
    }
}
