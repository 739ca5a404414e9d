//! The run-as wrappers: call a JIT'd `main`, `void f(void)` or `int f(int)` on this thread.
//!
//! | Wrapper | Arguments | Reply |
//! |---|---|---|
//! | `run_as_main` | `(Addr main, Seq<String> args)` | `int64_t` |
//! | `run_as_void_function` | `(Addr f)` | `int32_t` (0) |
//! | `run_as_int_function` | `(Addr f, int32_t arg)` | `int32_t` |
//!
//! `main` gets `argc = len(args)` and the arguments themselves (llvm-jitlink inserts no program
//! name), NULL-terminated. C stdio is flushed after every call, before the reply, so the
//! program's output precedes whatever the controller prints next.
//!
//! # Safety
//!
//! The function address must lie in executable memory ([`code_addr`]); past
//! that, the controller names the function and its signature, which is the protocol's
//! contract. `argv` outlives the call.
#![expect(unsafe_code, reason = "calling JIT'd code and fflush")]

use std::ffi::{c_char, c_int, c_void, CString};

use mapcore_sps::{from_bytes, Seq};

use super::code_addr;
use super::reply::{self, Failure};

/// Flushes every C stdio stream (`fflush(NULL)`).
pub(crate) fn flush_stdio() {
    // SAFETY: fflush(NULL) flushes all output streams; no precondition.
    unsafe { libc::fflush(std::ptr::null_mut()) };
}

/// Flushes C stdio and ends the process with `code` at once, without running `atexit`
/// handlers: handlers that JIT'd code registered (`__cxa_atexit`) point into memory the
/// session's shutdown has already unmapped, and running them would crash the executor at exit.
pub(crate) fn exit_now(code: u8) -> ! {
    flush_stdio();
    // SAFETY: _exit has no preconditions; everything the executor owns was released and
    // written before this call.
    unsafe { libc::_exit(i32::from(code)) }
}

/// The code pointer for `addr`, if it is executable.
fn code(wrapper: &str, addr: u64) -> Result<*const c_void, Failure> {
    if !code_addr::is_executable(addr) {
        return Err(Failure::rejected(format_args!(
            "{wrapper}: {addr:#x} is not executable code"
        )));
    }
    Ok(std::ptr::with_exposed_provenance(addr as usize))
}

/// `run_as_main_wrapper`.
pub(crate) fn main(args: &[u8]) -> Result<Vec<u8>, Failure> {
    const NAME: &str = "run_as_main";
    let (addr, argv) =
        from_bytes::<(u64, Seq<'_, &[u8]>)>(args).map_err(|e| Failure::decode(NAME, e))?;
    let argc = c_int::try_from(argv.len())
        .map_err(|_| Failure::rejected(format_args!("{NAME}: too many arguments")))?;
    let strings = argv
        .map(CString::new)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| Failure::rejected(format_args!("{NAME}: an argument contains a NUL byte")))?;
    let mut pointers: Vec<*mut c_char> = strings
        .iter()
        .map(|s| s.as_ptr().cast_mut())
        .chain([std::ptr::null_mut()])
        .collect();
    let code = code(NAME, addr)?;
    // SAFETY: `code` is executable; the controller names it as `int main(int, char **)`.
    let main = unsafe {
        std::mem::transmute::<*const c_void, extern "C" fn(c_int, *mut *mut c_char) -> c_int>(code)
    };
    let rc = main(argc, pointers.as_mut_ptr());
    flush_stdio();
    drop(strings);
    reply::encode(8, |w| w.i64(i64::from(rc)))
}

/// `run_as_void_function_wrapper`.
pub(crate) fn void_function(args: &[u8]) -> Result<Vec<u8>, Failure> {
    const NAME: &str = "run_as_void_function";
    let addr = from_bytes::<u64>(args).map_err(|e| Failure::decode(NAME, e))?;
    let code = code(NAME, addr)?;
    // SAFETY: `code` is executable; the controller names it as `void f(void)`.
    let f = unsafe { std::mem::transmute::<*const c_void, extern "C" fn()>(code) };
    f();
    flush_stdio();
    reply::encode(4, |w| w.i32(0))
}

/// `run_as_int_function_wrapper`.
pub(crate) fn int_function(args: &[u8]) -> Result<Vec<u8>, Failure> {
    const NAME: &str = "run_as_int_function";
    let (addr, arg) = from_bytes::<(u64, i32)>(args).map_err(|e| Failure::decode(NAME, e))?;
    let code = code(NAME, addr)?;
    // SAFETY: `code` is executable; the controller names it as `int f(int)`.
    let f = unsafe { std::mem::transmute::<*const c_void, extern "C" fn(c_int) -> c_int>(code) };
    let rc = f(arg);
    flush_stdio();
    reply::encode(4, |w| w.i32(rc))
}
