//! The bootstrap symbol table: every name advertised in the Setup message, with what it is.
//!
//! [`SYMBOLS`] is the one list; the Setup message, the router and the stats all read it. A
//! symbol's address on the wire is:
//! - for a wrapper, the address of its own table entry: distinct, never mapped executable, and
//!   never the address of JIT'd code;
//! - for an instance or context, the address of an [`Anchor`] (both memory-manager names
//!   share one instance);
//! - for the dispatch context, the session's (given to the Setup message, not here);
//! - for what JIT'd code may call (`dispatch_fn`, the alloc actions), a real `extern "C"`
//!   function with the C wrapper ABI.

use super::action_context::OwnAction;
use super::anchor::Anchor;
use super::cabi::CWrapperFn;
use super::dylib::{self, Dylibs};
use super::eh_frame;
use super::gdb_jit;
use super::mem_access::{self, Pointer};
use super::memory::{self, Memory};
use super::reply::{Failure, Shape};
use super::run;
use super::shared_memory::{self, SharedMemory};
use super::stats::MapCounters;
use super::upcall;

/// A wrapper's reply payload, or why it failed.
pub(crate) type Reply = Result<Vec<u8>, Failure>;

/// A wrapper's handler, by the session state it works on; its argument bytes in.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Handler {
    /// Memory access: no session state.
    Stateless(fn(&[u8]) -> Reply),
    /// Run-as: no session state, but runs JIT'd code, which may call the controller.
    RunsCode(fn(&[u8]) -> Reply),
    /// The memory manager: the map and the counters.
    Memory(fn(&mut Memory, &mut MapCounters, &[u8]) -> Reply),
    /// The shared-memory mapper service: its map and its counters.
    SharedMemory(fn(&mut SharedMemory, &mut MapCounters, &[u8]) -> Reply),
    /// The dylib manager: the handles it opened.
    Dylibs(fn(&mut Dylibs, &[u8]) -> Reply),
}

/// What a bootstrap symbol is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// An address the controller passes back: an instance.
    Data(Anchor),
    /// The dispatch context the controller hands to JIT'd code: the session's, advertised by
    /// the Setup message.
    DispatchCtx,
    /// A wrapper the controller calls with CallWrapper.
    Wrapper { handler: Handler, shape: Shape },
    /// An alloc action: run by the map's actions, callable through CallWrapper (SPS `Error`
    /// reply), and advertised at its C wrapper function for JIT'd callers.
    Action { run: OwnAction, c_fn: CWrapperFn },
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
    /// The address advertised for this symbol; 0 for the dispatch context, which is the
    /// session's.
    pub(crate) fn addr(&'static self) -> u64 {
        match self.kind {
            Kind::Data(anchor) => anchor.addr(),
            Kind::Wrapper { .. } => std::ptr::from_ref(self).addr() as u64,
            Kind::Action { c_fn, .. } => c_fn as usize as u64,
            Kind::DispatchFn => {
                let f: upcall::DispatchFn = upcall::dispatch_fn;
                f as usize as u64
            }
            Kind::DispatchCtx => 0,
        }
    }

    /// Whether the symbol is a call target (anything but data).
    pub(crate) fn is_callable(&self) -> bool {
        !matches!(self.kind, Kind::Data(_) | Kind::DispatchCtx)
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

/// Every advertised name: LLVM 22's mandatory 27 (with deinitialize), `mem_read_pointers`,
/// orc-rt's five SimpleNativeMemoryMap names over the same memory handlers, LLVM's
/// shared-memory mapper service, the GDB JIT registration action, and the EH-frame actions'
/// section-named aliases.
pub(crate) static SYMBOLS: &[Symbol] = &[
    // Session.
    Symbol {
        name: "__llvm_orc_SimpleRemoteEPC_dispatch_ctx",
        kind: Kind::DispatchCtx,
    },
    Symbol {
        name: "__llvm_orc_SimpleRemoteEPC_dispatch_fn",
        kind: Kind::DispatchFn,
    },
    // Run-as.
    wrapper(
        "__llvm_orc_bootstrap_run_as_main_wrapper",
        Handler::RunsCode(run::main),
        Shape::Plain,
    ),
    wrapper(
        "__llvm_orc_bootstrap_run_as_void_function_wrapper",
        Handler::RunsCode(run::void_function),
        Shape::Plain,
    ),
    wrapper(
        "__llvm_orc_bootstrap_run_as_int_function_wrapper",
        Handler::RunsCode(run::int_function),
        Shape::Plain,
    ),
    // Dylibs.
    data(
        "__llvm_orc_SimpleExecutorDylibManager_Instance",
        Anchor::DylibManager,
    ),
    wrapper(
        "__llvm_orc_SimpleExecutorDylibManager_open_wrapper",
        Handler::Dylibs(dylib::open),
        Shape::Expected,
    ),
    wrapper(
        "__llvm_orc_SimpleExecutorDylibManager_resolve_wrapper",
        Handler::Dylibs(dylib::resolve),
        Shape::Expected,
    ),
    // Memory, LLVM 22 names.
    data(
        "__llvm_orc_SimpleExecutorMemoryManager_Instance",
        Anchor::MemoryManager,
    ),
    wrapper(
        "__llvm_orc_SimpleExecutorMemoryManager_reserve_wrapper",
        Handler::Memory(memory::reserve),
        Shape::Expected,
    ),
    wrapper(
        "__llvm_orc_SimpleExecutorMemoryManager_initialize_wrapper",
        Handler::Memory(memory::initialize),
        Shape::Expected,
    ),
    wrapper(
        "__llvm_orc_SimpleExecutorMemoryManager_deinitialize_wrapper",
        Handler::Memory(memory::deinitialize),
        Shape::Error,
    ),
    wrapper(
        "__llvm_orc_SimpleExecutorMemoryManager_release_wrapper",
        Handler::Memory(memory::release),
        Shape::Error,
    ),
    // Memory, orc-rt names.
    data(
        "orc_rt_ci_SimpleNativeMemoryMap_Instance",
        Anchor::MemoryManager,
    ),
    wrapper(
        "orc_rt_ci_sps_SimpleNativeMemoryMap_reserve",
        Handler::Memory(memory::reserve),
        Shape::Expected,
    ),
    wrapper(
        "orc_rt_ci_sps_SimpleNativeMemoryMap_initialize",
        Handler::Memory(memory::initialize),
        Shape::Expected,
    ),
    wrapper(
        "orc_rt_ci_sps_SimpleNativeMemoryMap_deinitializeMultiple",
        Handler::Memory(memory::deinitialize),
        Shape::Error,
    ),
    wrapper(
        "orc_rt_ci_sps_SimpleNativeMemoryMap_releaseMultiple",
        Handler::Memory(memory::release),
        Shape::Error,
    ),
    // LLVM's shared-memory mapper service.
    data(
        "__llvm_orc_ExecutorSharedMemoryMapperService_Instance",
        Anchor::SharedMemoryMapper,
    ),
    wrapper(
        "__llvm_orc_ExecutorSharedMemoryMapperService_Reserve",
        Handler::SharedMemory(shared_memory::reserve),
        Shape::Expected,
    ),
    wrapper(
        "__llvm_orc_ExecutorSharedMemoryMapperService_Initialize",
        Handler::SharedMemory(shared_memory::initialize),
        Shape::Expected,
    ),
    wrapper(
        "__llvm_orc_ExecutorSharedMemoryMapperService_Deinitialize",
        Handler::SharedMemory(shared_memory::deinitialize),
        Shape::Error,
    ),
    wrapper(
        "__llvm_orc_ExecutorSharedMemoryMapperService_Release",
        Handler::SharedMemory(shared_memory::release),
        Shape::Error,
    ),
    // Memory access.
    wrapper(
        "__llvm_orc_bootstrap_mem_write_uint8s_wrapper",
        Handler::Stateless(mem_access::write_words::<u8>),
        Shape::Void,
    ),
    wrapper(
        "__llvm_orc_bootstrap_mem_write_uint16s_wrapper",
        Handler::Stateless(mem_access::write_words::<u16>),
        Shape::Void,
    ),
    wrapper(
        "__llvm_orc_bootstrap_mem_write_uint32s_wrapper",
        Handler::Stateless(mem_access::write_words::<u32>),
        Shape::Void,
    ),
    wrapper(
        "__llvm_orc_bootstrap_mem_write_uint64s_wrapper",
        Handler::Stateless(mem_access::write_words::<u64>),
        Shape::Void,
    ),
    wrapper(
        "__llvm_orc_bootstrap_mem_write_pointers_wrapper",
        Handler::Stateless(mem_access::write_words::<Pointer>),
        Shape::Void,
    ),
    wrapper(
        "__llvm_orc_bootstrap_mem_write_buffers_wrapper",
        Handler::Stateless(mem_access::write_buffers),
        Shape::Void,
    ),
    wrapper(
        "__llvm_orc_bootstrap_mem_read_uint8s_wrapper",
        Handler::Stateless(mem_access::read_words::<u8>),
        Shape::Plain,
    ),
    wrapper(
        "__llvm_orc_bootstrap_mem_read_uint16s_wrapper",
        Handler::Stateless(mem_access::read_words::<u16>),
        Shape::Plain,
    ),
    wrapper(
        "__llvm_orc_bootstrap_mem_read_uint32s_wrapper",
        Handler::Stateless(mem_access::read_words::<u32>),
        Shape::Plain,
    ),
    wrapper(
        "__llvm_orc_bootstrap_mem_read_uint64s_wrapper",
        Handler::Stateless(mem_access::read_words::<u64>),
        Shape::Plain,
    ),
    wrapper(
        "__llvm_orc_bootstrap_mem_read_pointers_wrapper",
        Handler::Stateless(mem_access::read_words::<Pointer>),
        Shape::Plain,
    ),
    wrapper(
        "__llvm_orc_bootstrap_mem_read_buffers_wrapper",
        Handler::Stateless(mem_access::read_buffers),
        Shape::Plain,
    ),
    wrapper(
        "__llvm_orc_bootstrap_mem_read_strings_wrapper",
        Handler::Stateless(mem_access::read_strings),
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
    Symbol {
        name: "llvm_orc_registerJITLoaderGDBAllocAction",
        kind: Kind::Action {
            run: gdb_jit::register,
            c_fn: gdb_jit::register_wrapper,
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
        .find(|(_, symbol)| symbol.is_callable() && symbol.addr() == tag)
}
