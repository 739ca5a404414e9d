//! The C ABI of wrapper functions: `CWrapperFunctionBuffer fn(const char *data, size_t size)`.
//!
//! ```c
//! typedef struct {
//!   union { char *ValuePtr; char Value[sizeof(char *)]; } Data;
//!   size_t Size;
//! } CWrapperFunctionBuffer;
//! ```
//!
//! Up to `sizeof(char *)` bytes are stored inline, more out of line in `malloc`ed memory that
//! the receiver frees. `Size == 0` with a non-null pointer is an out-of-band error: the pointer
//! is a `malloc`ed, NUL-terminated message.
//!
//! Used for calls and alloc actions that name foreign (JIT'd or C) functions, and for the
//! answers of our own EH-frame actions and `dispatch_fn` when JIT'd code calls them.
//!
//! # Safety
//!
//! Calling a foreign wrapper executes code at an address the controller named; the address is
//! checked to be executable code first ([`code_addr`]), and the rest is the
//! protocol's contract. Result buffers are read and freed exactly as the C ABI above says.
#![expect(unsafe_code, reason = "calling and implementing C wrapper functions")]

use std::ffi::{c_char, c_void, CStr};
use std::mem::size_of;
use std::ptr;

use mapcore_sps::Reader;

use super::code_addr;

/// Bytes stored inline in a buffer.
const INLINE: usize = size_of::<*mut c_char>();

/// `CWrapperFunctionBuffer`. The union of a pointer and `char[sizeof(char *)]` has the size,
/// alignment and calling convention of the pointer alone, so the pointer field stands for both;
/// inline bytes are its address bits.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct CWrapperFunctionBuffer {
    data: *mut c_char,
    size: usize,
}

/// A wrapper function as the C ABI sees it.
pub(crate) type CWrapperFn = unsafe extern "C" fn(*const c_char, usize) -> CWrapperFunctionBuffer;

impl CWrapperFunctionBuffer {
    /// An out-of-band error carrying `message` (interior NULs cut it short).
    pub(crate) fn out_of_band_error(message: &str) -> Self {
        let text = message.split('\0').next().unwrap_or_default();
        // SAFETY: malloc has no preconditions; a null result is handled below.
        let data = unsafe { libc::malloc(text.len() + 1) }.cast::<c_char>();
        if data.is_null() {
            return Self {
                data: ptr::null_mut(),
                size: 0,
            };
        }
        // SAFETY: `data` holds `text.len() + 1` fresh bytes: the text, then its NUL.
        unsafe {
            ptr::copy_nonoverlapping(text.as_ptr(), data.cast::<u8>(), text.len());
            data.add(text.len()).write(0);
        }
        Self { data, size: 0 }
    }

    /// A buffer holding `bytes`, inline or in `malloc`ed memory, as a wrapper function returns
    /// it to JIT'd code, which frees it; an out-of-band error if the memory cannot be had.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Self {
        if bytes.len() <= INLINE {
            let mut inline = [0u8; INLINE];
            inline[..bytes.len()].copy_from_slice(bytes);
            return Self {
                data: ptr::without_provenance_mut(usize::from_ne_bytes(inline)),
                size: bytes.len(),
            };
        }
        // SAFETY: malloc has no preconditions; a null result is handled below.
        let data = unsafe { libc::malloc(bytes.len()) }.cast::<c_char>();
        if data.is_null() {
            return Self::out_of_band_error("mapcore-executor: out of memory for a result");
        }
        // SAFETY: `data` holds `bytes.len()` fresh bytes.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), data.cast::<u8>(), bytes.len()) };
        Self {
            data,
            size: bytes.len(),
        }
    }

    /// Takes the result of a foreign call: its bytes, or the out-of-band error message.
    /// Frees whatever the buffer owns.
    ///
    /// # Safety
    ///
    /// 1. The buffer was returned by a wrapper function that follows the C ABI above: an
    ///    out-of-line pointer addresses `size` readable bytes allocated with `malloc`, an
    ///    out-of-band pointer a `malloc`ed NUL-terminated string.
    /// 2. The buffer is not used again.
    unsafe fn take(self) -> Result<Vec<u8>, String> {
        if self.size == 0 {
            if self.data.is_null() {
                return Ok(Vec::new());
            }
            // SAFETY: (1) an out-of-band error is a malloc'ed, NUL-terminated string.
            let message = unsafe { CStr::from_ptr(self.data) }
                .to_string_lossy()
                .into_owned();
            // SAFETY: (1) it was malloc'ed; (2) it is not used again.
            unsafe { libc::free(self.data.cast::<c_void>()) };
            return Err(message);
        }
        if self.size <= INLINE {
            let inline = self.data.addr().to_ne_bytes();
            return Ok(inline[..self.size].to_vec());
        }
        // SAFETY: (1) an out-of-line buffer addresses `size` readable bytes.
        let bytes =
            unsafe { std::slice::from_raw_parts(self.data.cast::<u8>(), self.size) }.to_vec();
        // SAFETY: (1) it was malloc'ed; (2) it is not used again.
        unsafe { libc::free(self.data.cast::<c_void>()) };
        Ok(bytes)
    }
}

/// Calls the foreign wrapper function at `addr` (JIT'd code the controller names) with `args`:
/// its result bytes, or its out-of-band error; `None` if `addr` is not executable code.
pub(crate) fn call_wrapper(addr: u64, args: &[u8]) -> Option<Result<Vec<u8>, String>> {
    if !code_addr::is_executable(addr) {
        return None;
    }
    let code = ptr::with_exposed_provenance::<c_void>(usize::try_from(addr).unwrap_or(0));
    // SAFETY: `code` is executable memory in this process; the controller names it as a
    // wrapper function with the C ABI above, which is the protocol's contract.
    let func = unsafe { std::mem::transmute::<*const c_void, CWrapperFn>(code) };
    // SAFETY: `args` is a live buffer of `args.len()` bytes for the duration of the call.
    let result = unsafe { func(args.as_ptr().cast::<c_char>(), args.len()) };
    // SAFETY: (1) the function follows the C ABI; (2) `result` is consumed here.
    Some(unsafe { result.take() })
}

/// Calls the foreign wrapper function at `addr` with `args` and interprets its result as an
/// alloc action's: an out-of-band error or an SPS `Error` carrying a message is a failure, an
/// empty result or `Error` success is success.
///
/// # Errors
///
/// The address is not executable code, or the call reports a failure.
pub(crate) fn call_action(addr: u64, args: &[u8]) -> Result<(), String> {
    let bytes = call_wrapper(addr, args).unwrap_or_else(|| {
        Err(format!(
            "alloc action target {addr:#x} is not executable code"
        ))
    })?;
    if bytes.is_empty() {
        return Ok(());
    }
    let mut reader = Reader::new(&bytes);
    match reader.error() {
        Ok(Ok(())) => Ok(()),
        Ok(Err(message)) => Err(String::from_utf8_lossy(message).into_owned()),
        Err(e) => Err(format!(
            "alloc action at {addr:#x} returned an undecodable result: {e}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_hand_back_their_bytes_inline_or_out_of_line() {
        for bytes in [&b""[..], b"ok", b"8 bytes!", b"nine byte", &[7; 1000]] {
            let buffer = CWrapperFunctionBuffer::from_bytes(bytes);
            assert_eq!(buffer.size, bytes.len());
            // SAFETY: made by `from_bytes`, which follows the C ABI; consumed here.
            assert_eq!(unsafe { buffer.take() }.as_deref(), Ok(bytes));
        }
        let error = CWrapperFunctionBuffer::out_of_band_error("boom");
        // SAFETY: made by `out_of_band_error`, which follows the C ABI; consumed here.
        assert_eq!(unsafe { error.take() }, Err("boom".to_owned()));
    }
}
