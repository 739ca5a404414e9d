//! Calls from JIT'd code to the controller:
//! `__llvm_orc_SimpleRemoteEPC_dispatch_fn(ctx, fn_tag, data, size)`.
//!
//! LLVM's ORC runtime (loaded by clang-repl and `llvm-jitlink --orc-runtime`) calls back into
//! the controller while it runs inside a call the controller made: `dlopen` asks for the
//! initializers to run, `atexit` registrations are reported. The executor sends such a call as
//! a CallWrapper of its own and serves the controller's messages until the matching Result
//! arrives, answering on this same thread the calls the controller makes meanwhile (it often
//! links more code before it answers).
//!
//! `ctx` is the address of the session's [`Upcalls`], advertised as
//! `__llvm_orc_SimpleRemoteEPC_dispatch_ctx`. It reaches the session only while the router runs
//! a call that runs JIT'd code and holds no part of the session: [`lend`] makes the session
//! reachable for that call, [`withhold`] makes it unreachable for any other (a map operation
//! whose alloc actions run JIT'd code keeps the map borrowed). A call from JIT'd code while the
//! session is withheld, or from a thread JIT'd code started, gets an out-of-band error: one
//! thread serves the session (LLVM's executor serves each call on a thread of its own).
//!
//! # Safety
//!
//! `dispatch_fn` turns `ctx` back into the `Upcalls` it was made from, as the protocol says
//! JIT'd code passes it. The session pointer it finds was derived by [`lend`] from the
//! innermost `&mut Session` of the call in progress, whose holder does not touch the session
//! until the call returns and the pointer is withdrawn; so the `&mut Session` made from it is
//! the only live access for as long as `dispatch_fn` uses it.
#![expect(
    unsafe_code,
    reason = "reaching the session from JIT'd code through the context address"
)]

use std::cell::Cell;
use std::ffi::{c_char, c_void};
use std::rc::Rc;
use std::thread::{self, ThreadId};

use super::cabi::CWrapperFunctionBuffer;
use super::serve;
use super::session::Session;

/// Where JIT'd code's calls to the controller reach the session, and the executor's own call
/// numbers.
#[derive(Debug)]
pub(crate) struct Upcalls {
    /// The thread that serves the session, the only one that may reach it.
    owner: ThreadId,
    /// The session, while a call that runs JIT'd code lends it; null otherwise.
    session: Cell<*mut Session>,
    /// The sequence number of the executor's next call to the controller.
    next_seqno: Cell<u64>,
}

impl Upcalls {
    /// A fresh context: nothing lent, calls numbered from 0.
    pub(crate) fn new() -> Rc<Self> {
        Rc::new(Self {
            owner: thread::current().id(),
            session: Cell::new(std::ptr::null_mut()),
            next_seqno: Cell::new(0),
        })
    }

    /// The address advertised as `__llvm_orc_SimpleRemoteEPC_dispatch_ctx`.
    pub(crate) fn ctx_addr(self: &Rc<Self>) -> u64 {
        Rc::as_ptr(self).expose_provenance() as u64
    }

    /// The sequence number for the executor's next call.
    pub(crate) fn take_seqno(&self) -> u64 {
        let seqno = self.next_seqno.get();
        self.next_seqno.set(seqno.wrapping_add(1));
        seqno
    }
}

/// Puts back the pointer a [`lend`] or [`withhold`] replaced, even if the call panicked.
struct Restore {
    upcalls: Rc<Upcalls>,
    previous: *mut Session,
}

impl Drop for Restore {
    fn drop(&mut self) {
        self.upcalls.session.set(self.previous);
    }
}

/// Runs `call`, which runs JIT'd code and touches no part of the session, with the session
/// reachable from that code's calls to the controller.
pub(crate) fn lend<R>(session: &mut Session, call: impl FnOnce() -> R) -> R {
    let upcalls = Rc::clone(&session.upcalls);
    let previous = upcalls.session.replace(std::ptr::from_mut(session));
    let _restore = Restore { upcalls, previous };
    call()
}

/// Runs `call` on the session with the session unreachable from JIT'd code.
pub(crate) fn withhold<R>(session: &mut Session, call: impl FnOnce(&mut Session) -> R) -> R {
    let upcalls = Rc::clone(&session.upcalls);
    let previous = upcalls.session.replace(std::ptr::null_mut());
    let _restore = Restore { upcalls, previous };
    call(session)
}

/// The C signature of [`dispatch_fn`].
pub(crate) type DispatchFn =
    extern "C" fn(*mut c_void, *const c_void, *const c_char, usize) -> CWrapperFunctionBuffer;

/// `__llvm_orc_SimpleRemoteEPC_dispatch_fn(ctx, fn_tag, data, size)`: calls the controller's
/// wrapper `fn_tag` with `size` bytes at `data`; its result bytes, or an out-of-band error
/// (which the caller frees).
pub(crate) extern "C" fn dispatch_fn(
    ctx: *mut c_void,
    fn_tag: *const c_void,
    data: *const c_char,
    size: usize,
) -> CWrapperFunctionBuffer {
    let refuse = |why: &str| {
        CWrapperFunctionBuffer::out_of_band_error(&format!(
            "mapcore-executor: call to the controller (tag {:#x}): {why}",
            fn_tag.addr()
        ))
    };
    if ctx.is_null() || (data.is_null() && size != 0) {
        return refuse("null context or argument pointer");
    }
    // SAFETY: JIT'd code passes the dispatch context it was given, the address of the
    // session's `Upcalls` (module docs), which the session keeps alive.
    let upcalls = unsafe { &*ctx.cast_const().cast::<Upcalls>() };
    // A thread of JIT'd code's own: the session is served on one thread only (and the cell
    // below is not for other threads to read).
    if thread::current().id() != upcalls.owner {
        return refuse("called from a thread other than the executor's");
    }
    let session = upcalls.session.get();
    if session.is_null() {
        return refuse("not inside a call that runs JIT'd code");
    }
    let args = if size == 0 {
        &[][..]
    } else {
        // SAFETY: the caller passes `size` readable bytes at `data` (non-null, checked above)
        // for the duration of the call.
        unsafe { std::slice::from_raw_parts(data.cast::<u8>(), size) }
    };
    // SAFETY: the session is lent: the pointer is the only live access to it (module docs).
    let session = unsafe { &mut *session };
    match serve::call_controller(session, fn_tag.addr() as u64, args) {
        Ok(result) => CWrapperFunctionBuffer::from_bytes(&result),
        Err(why) => refuse(&why),
    }
}
