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
//! Every access goes through `process_vm_readv`/`process_vm_writev` on this very process: the
//! kernel checks the address and the page protection, so an unmapped or read-only address
//! gives `EFAULT` and an error reply, never a crash. Values are native-endian in memory.
//!
//! # Safety
//!
//! The libc calls get local buffers that are live and sized as declared; the remote side is
//! only ever touched by the kernel, which validates it.
#![expect(unsafe_code, reason = "process_vm_readv / process_vm_writev")]

use std::ffi::c_void;
use std::io;

use mapcore_sps::{from_bytes, Decode, Encode, Seq};

use super::reply::{self, Failure};

/// Largest total of bytes one read call may return.
const MAX_READ: usize = 1 << 30;

/// Longest string `mem_read_strings` follows before giving up on finding its NUL.
const MAX_STRING: usize = 1 << 24;

/// Reads `len` bytes at `addr` of this process.
///
/// # Errors
///
/// The range is not wholly readable (`EFAULT`), or the call is not permitted.
pub(crate) fn read(addr: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    read_into(addr, &mut buf)?;
    Ok(buf)
}

fn read_into(addr: u64, buf: &mut [u8]) -> io::Result<()> {
    if buf.is_empty() {
        return Ok(());
    }
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast::<c_void>(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: remote_ptr(addr, buf.len())?,
        iov_len: buf.len(),
    };
    // SAFETY: `local` describes `buf`, live and writable for the call; the kernel validates
    // `remote` and fails with EFAULT instead of faulting.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    complete(n, buf.len())
}

/// Writes `bytes` at `addr` of this process.
///
/// # Errors
///
/// The range is not wholly writable (`EFAULT`), or the call is not permitted.
pub(crate) fn write(addr: u64, bytes: &[u8]) -> io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    let local = libc::iovec {
        iov_base: bytes.as_ptr().cast_mut().cast::<c_void>(),
        iov_len: bytes.len(),
    };
    let remote = libc::iovec {
        iov_base: remote_ptr(addr, bytes.len())?,
        iov_len: bytes.len(),
    };
    // SAFETY: `local` describes `bytes`, live for the call and only read; the kernel validates
    // `remote` and fails with EFAULT instead of faulting.
    let n = unsafe { libc::process_vm_writev(libc::getpid(), &local, 1, &remote, 1, 0) };
    complete(n, bytes.len())
}

/// The remote pointer of an access of `len` bytes at `addr`, which must not wrap.
fn remote_ptr(addr: u64, len: usize) -> io::Result<*mut c_void> {
    let fault = || io::Error::from_raw_os_error(libc::EFAULT);
    let addr = usize::try_from(addr).map_err(|_| fault())?;
    addr.checked_add(len).ok_or_else(fault)?;
    // The kernel only uses the address bits; no Rust access is made through this pointer.
    Ok(std::ptr::without_provenance_mut(addr))
}

/// A partial transfer stopped at an inaccessible page.
fn complete(n: isize, len: usize) -> io::Result<()> {
    match usize::try_from(n) {
        Err(_) => Err(io::Error::last_os_error()),
        Ok(n) if n == len => Ok(()),
        Ok(_) => Err(io::Error::from_raw_os_error(libc::EFAULT)),
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
    let page = mapcore_std::page_size() as u64;
    let mut out = Vec::new();
    let mut at = addr;
    loop {
        let chunk = (page - at % page) as usize;
        let mut buf = vec![0u8; chunk];
        read_into(at, &mut buf)?;
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
