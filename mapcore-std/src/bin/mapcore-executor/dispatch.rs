//! The bootstrap symbol table and call dispatch.
//!
//! One static table lists every name advertised in the Setup message with what it is. Its
//! address on the wire is:
//! - for a wrapper, the address of its own table entry: distinct, never mapped executable, and
//!   never the address of JIT'd code;
//! - for an instance or context, the address of one of [`ANCHORS`] (both memory-manager names
//!   share one instance);
//! - for what JIT'd code may call (`dispatch_fn`, the EH-frame actions), a real `extern "C"`
//!   function with the C wrapper ABI.
//!
//! A CallWrapper's tag is looked up here; the handler's reply, or the failure in the shape the
//! wrapper's return type allows ([`Shape`]), goes back as the Result.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::cabi::{self, CWrapperFn};
use crate::dylib::{self, Dylibs};
use crate::eh_frame;
use crate::log;
use crate::mem_access::{self, Pointer};
use crate::memory::{self, Memory};
use crate::reply::{Failure, FailureKind, Shape};
use crate::run;
use crate::stats;

/// What the handlers work on.
#[derive(Debug, Default)]
pub(crate) struct Services {
    pub(crate) memory: Memory,
    pub(crate) dylibs: Dylibs,
}

/// A wrapper: its argument bytes in, its reply payload out.
pub(crate) type Handler = fn(&mut Services, &[u8]) -> Result<Vec<u8>, Failure>;

/// An alloc action: its argument bytes in, success or a message out.
pub(crate) type ActionFn = fn(&[u8]) -> Result<(), String>;

/// Data symbols: instance tokens and the dispatch context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Anchor {
    DispatchCtx = 0,
    DylibManager = 1,
    MemoryManager = 2,
}

/// The storage behind [`Anchor`] addresses: one distinct byte each.
static ANCHORS: [u8; 3] = [0; 3];

impl Anchor {
    /// The address advertised for this anchor.
    pub(crate) fn addr(self) -> u64 {
        std::ptr::from_ref(&ANCHORS[self as usize]).addr() as u64
    }
}

/// What a bootstrap symbol is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// An address the controller passes back (an instance) or hands to JIT'd code.
    Data(Anchor),
    /// A wrapper the controller calls with CallWrapper.
    Wrapper { handler: Handler, shape: Shape },
    /// An alloc action: run by the trampoline, callable through CallWrapper (SPS `Error`
    /// reply), and advertised at its C wrapper function for JIT'd callers.
    Action { run: ActionFn, c_fn: CWrapperFn },
    /// `dispatch_fn`: only JIT'd code calls it.
    DispatchFn,
}

/// One advertised name.
#[derive(Debug)]
pub(crate) struct Symbol {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
}

impl Symbol {
    /// The address advertised for this symbol.
    pub(crate) fn addr(&'static self) -> u64 {
        match self.kind {
            Kind::Data(anchor) => anchor.addr(),
            Kind::Wrapper { .. } => std::ptr::from_ref(self).addr() as u64,
            Kind::Action { c_fn, .. } => c_fn as usize as u64,
            Kind::DispatchFn => {
                let f: cabi::DispatchFn = cabi::dispatch_fn;
                f as usize as u64
            }
        }
    }
}

const fn wrapper(name: &'static str, handler: Handler, shape: Shape) -> Symbol {
    Symbol {
        name,
        kind: Kind::Wrapper { handler, shape },
    }
}

const fn data(name: &'static str, anchor: Anchor) -> Symbol {
    Symbol {
        name,
        kind: Kind::Data(anchor),
    }
}

/// How many symbols [`SYMBOLS`] has.
pub(crate) const SYMBOL_COUNT: usize = 35;

/// Every advertised name: LLVM 22's mandatory 27 (with deinitialize), `mem_read_pointers`,
/// orc-rt's five SimpleNativeMemoryMap names over the same memory handlers, and the EH-frame
/// actions' section-named aliases.
pub(crate) static SYMBOLS: [Symbol; SYMBOL_COUNT] = [
    // Session.
    data(
        "__llvm_orc_SimpleRemoteEPC_dispatch_ctx",
        Anchor::DispatchCtx,
    ),
    Symbol {
        name: "__llvm_orc_SimpleRemoteEPC_dispatch_fn",
        kind: Kind::DispatchFn,
    },
    // Run-as.
    wrapper(
        "__llvm_orc_bootstrap_run_as_main_wrapper",
        run::main,
        Shape::Plain,
    ),
    wrapper(
        "__llvm_orc_bootstrap_run_as_void_function_wrapper",
        run::void_function,
        Shape::Plain,
    ),
    wrapper(
        "__llvm_orc_bootstrap_run_as_int_function_wrapper",
        run::int_function,
        Shape::Plain,
    ),
    // Dylibs.
    data(
        "__llvm_orc_SimpleExecutorDylibManager_Instance",
        Anchor::DylibManager,
    ),
    wrapper(
        "__llvm_orc_SimpleExecutorDylibManager_open_wrapper",
        dylib::open,
        Shape::Expected,
    ),
    wrapper(
        "__llvm_orc_SimpleExecutorDylibManager_resolve_wrapper",
        dylib::resolve,
        Shape::Expected,
    ),
    // Memory, LLVM 22 names.
    data(
        "__llvm_orc_SimpleExecutorMemoryManager_Instance",
        Anchor::MemoryManager,
    ),
    wrapper(
        "__llvm_orc_SimpleExecutorMemoryManager_reserve_wrapper",
        memory::reserve,
        Shape::Expected,
    ),
    wrapper(
        "__llvm_orc_SimpleExecutorMemoryManager_initialize_wrapper",
        memory::initialize,
        Shape::Expected,
    ),
    wrapper(
        "__llvm_orc_SimpleExecutorMemoryManager_deinitialize_wrapper",
        memory::deinitialize,
        Shape::Error,
    ),
    wrapper(
        "__llvm_orc_SimpleExecutorMemoryManager_release_wrapper",
        memory::release,
        Shape::Error,
    ),
    // Memory, orc-rt names.
    data(
        "orc_rt_ci_SimpleNativeMemoryMap_Instance",
        Anchor::MemoryManager,
    ),
    wrapper(
        "orc_rt_ci_sps_SimpleNativeMemoryMap_reserve",
        memory::reserve,
        Shape::Expected,
    ),
    wrapper(
        "orc_rt_ci_sps_SimpleNativeMemoryMap_initialize",
        memory::initialize,
        Shape::Expected,
    ),
    wrapper(
        "orc_rt_ci_sps_SimpleNativeMemoryMap_deinitializeMultiple",
        memory::deinitialize,
        Shape::Error,
    ),
    wrapper(
        "orc_rt_ci_sps_SimpleNativeMemoryMap_releaseMultiple",
        memory::release,
        Shape::Error,
    ),
    // Memory access.
    wrapper(
        "__llvm_orc_bootstrap_mem_write_uint8s_wrapper",
        mem_access::write_words::<u8>,
        Shape::Void,
    ),
    wrapper(
        "__llvm_orc_bootstrap_mem_write_uint16s_wrapper",
        mem_access::write_words::<u16>,
        Shape::Void,
    ),
    wrapper(
        "__llvm_orc_bootstrap_mem_write_uint32s_wrapper",
        mem_access::write_words::<u32>,
        Shape::Void,
    ),
    wrapper(
        "__llvm_orc_bootstrap_mem_write_uint64s_wrapper",
        mem_access::write_words::<u64>,
        Shape::Void,
    ),
    wrapper(
        "__llvm_orc_bootstrap_mem_write_pointers_wrapper",
        mem_access::write_words::<Pointer>,
        Shape::Void,
    ),
    wrapper(
        "__llvm_orc_bootstrap_mem_write_buffers_wrapper",
        mem_access::write_buffers,
        Shape::Void,
    ),
    wrapper(
        "__llvm_orc_bootstrap_mem_read_uint8s_wrapper",
        mem_access::read_words::<u8>,
        Shape::Plain,
    ),
    wrapper(
        "__llvm_orc_bootstrap_mem_read_uint16s_wrapper",
        mem_access::read_words::<u16>,
        Shape::Plain,
    ),
    wrapper(
        "__llvm_orc_bootstrap_mem_read_uint32s_wrapper",
        mem_access::read_words::<u32>,
        Shape::Plain,
    ),
    wrapper(
        "__llvm_orc_bootstrap_mem_read_uint64s_wrapper",
        mem_access::read_words::<u64>,
        Shape::Plain,
    ),
    wrapper(
        "__llvm_orc_bootstrap_mem_read_pointers_wrapper",
        mem_access::read_words::<Pointer>,
        Shape::Plain,
    ),
    wrapper(
        "__llvm_orc_bootstrap_mem_read_buffers_wrapper",
        mem_access::read_buffers,
        Shape::Plain,
    ),
    wrapper(
        "__llvm_orc_bootstrap_mem_read_strings_wrapper",
        mem_access::read_strings,
        Shape::Plain,
    ),
    // Alloc actions.
    Symbol {
        name: "llvm_orc_registerEHFrameAllocAction",
        kind: Kind::Action {
            run: eh_frame::register,
            c_fn: eh_frame::register_wrapper,
        },
    },
    Symbol {
        name: "llvm_orc_deregisterEHFrameAllocAction",
        kind: Kind::Action {
            run: eh_frame::deregister,
            c_fn: eh_frame::deregister_wrapper,
        },
    },
    // The same actions under the section names LLVM 22's executor also advertises.
    Symbol {
        name: "llvm_orc_registerEHFrameSectionAllocAction",
        kind: Kind::Action {
            run: eh_frame::register,
            c_fn: eh_frame::register_wrapper,
        },
    },
    Symbol {
        name: "llvm_orc_deregisterEHFrameSectionAllocAction",
        kind: Kind::Action {
            run: eh_frame::deregister,
            c_fn: eh_frame::deregister_wrapper,
        },
    },
];

/// The symbol advertised at `tag`, with its index in [`SYMBOLS`]. Data symbols are never a
/// call target.
pub(crate) fn lookup(tag: u64) -> Option<(usize, &'static Symbol)> {
    SYMBOLS
        .iter()
        .enumerate()
        .find(|(_, symbol)| !matches!(symbol.kind, Kind::Data(_)) && symbol.addr() == tag)
}

/// Answers one CallWrapper: the Result payload for `args` sent to `tag`.
pub(crate) fn call(services: &mut Services, seqno: u64, tag: u64, args: &[u8]) -> Vec<u8> {
    let Some((index, symbol)) = lookup(tag) else {
        let failure = Failure::protocol(format_args!("no wrapper function at tag {tag:#x}"));
        return failed(seqno, "?", Shape::Error, &failure);
    };
    stats::CALLS[index].bump();
    let (shape, outcome) = match symbol.kind {
        Kind::Wrapper { handler, shape } => {
            (shape, guarded(symbol.name, || handler(services, args)))
        }
        Kind::Action { run, .. } => (
            Shape::Error,
            guarded(symbol.name, || {
                run(args)
                    .map(|()| crate::reply::no_error())
                    .map_err(|m| Failure::rejected(format_args!("{m}")))
            }),
        ),
        Kind::DispatchFn | Kind::Data(_) => (
            Shape::Error,
            Err(Failure::protocol(format_args!(
                "{} cannot be called by the controller",
                symbol.name
            ))),
        ),
    };
    match outcome {
        Ok(reply) => {
            log::trace(format_args!(
                "#{seqno} {}: {} bytes in, {} bytes out",
                symbol.name,
                args.len(),
                reply.len()
            ));
            reply
        }
        Err(failure) => failed(seqno, symbol.name, shape, &failure),
    }
}

/// Runs a handler; a panic (a bug, never expected) becomes a failure instead of ending the
/// session with live memory.
fn guarded(
    name: &str,
    handler: impl FnOnce() -> Result<Vec<u8>, Failure>,
) -> Result<Vec<u8>, Failure> {
    catch_unwind(AssertUnwindSafe(handler)).unwrap_or_else(|_| {
        Err(Failure::protocol(format_args!(
            "{name}: internal error (panic) while handling the call"
        )))
    })
}

/// Counts and logs a failure and encodes its reply.
fn failed(seqno: u64, name: &str, shape: Shape, failure: &Failure) -> Vec<u8> {
    stats::ERROR_REPLIES.bump();
    if failure.kind == FailureKind::Protocol {
        stats::PROTOCOL_ERRORS.bump();
        log::diag(format_args!("#{seqno}: {failure}"));
    } else {
        log::trace(format_args!("#{seqno} {name}: {failure}"));
    }
    shape.failure(failure)
}
