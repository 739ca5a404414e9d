//! Everything one session owns: the services' state, the counters and the log settings.
//!
//! The router hands each handler the part it works on; nothing of a session lives in a static.

use std::rc::Rc;

use super::action_context::RouteFn;
use super::dylib::Dylibs;
use super::log::Log;
use super::memory::{self, Memory, WxChoice};
use super::serve::End;
use super::shared_memory::SharedMemory;
use super::stats::{self, Shutdowns, Stats};
use super::symbols::SYMBOLS;
use super::transport::Transport;
use super::upcall::Upcalls;

/// One session's state.
#[derive(Debug)]
pub(crate) struct Session {
    /// The stream to the controller.
    pub(crate) transport: Transport,
    /// How JIT'd code reaches the controller, and the executor's own call numbers.
    pub(crate) upcalls: Rc<Upcalls>,
    /// How the session ended, when the stream ended while JIT'd code waited for the controller.
    pub(crate) ended: Option<End>,
    /// The memory manager: the map, and what its alloc actions reach.
    pub(crate) memory: Memory,
    /// LLVM's shared-memory mapper service: its own map, whose actions reach the same state.
    pub(crate) shared_memory: SharedMemory,
    /// The dylib manager.
    pub(crate) dylibs: Dylibs,
    /// The counters of the stats file.
    pub(crate) stats: Stats,
    /// Whether calls are traced.
    pub(crate) log: Log,
}

impl Session {
    /// A fresh session over `transport`; `route_action` resolves the addresses of alloc actions.
    pub(crate) fn new(transport: Transport, log: Log, route_action: RouteFn) -> Self {
        Self::with_wx(transport, log, route_action, WxChoice::choose())
    }

    /// A fresh session whose memory manager's map has the W^X mode `wx`.
    pub(crate) fn with_wx(
        transport: Transport,
        log: Log,
        route_action: RouteFn,
        wx: WxChoice,
    ) -> Self {
        let memory = Memory::new(route_action, log, wx);
        Self {
            transport,
            upcalls: Upcalls::new(),
            ended: None,
            shared_memory: SharedMemory::new(memory.shared_actions()),
            memory,
            dylibs: Dylibs::default(),
            stats: Stats::new(SYMBOLS.len()),
            log,
        }
    }

    /// Releases every slab of both memory services, running the remaining dealloc actions.
    pub(crate) fn shutdown(&self) -> Shutdowns {
        let actions = self.memory.actions();
        // Everything goes, registrations of memory outside the maps too: the process ends.
        actions.sweep((0, u64::MAX));
        let shutdowns = Shutdowns {
            memory: memory::shutdown(self.memory.map(), actions, "shutdown"),
            shared_memory: memory::shutdown(
                self.shared_memory.map(),
                actions,
                "shared-memory shutdown",
            ),
        };
        actions.purge();
        shutdowns
    }

    /// The stats file's text, after [`Session::shutdown`].
    pub(crate) fn stats_text(&self, session_end: &str, shutdowns: &Shutdowns) -> String {
        let calls = SYMBOLS
            .iter()
            .zip(&self.stats.calls)
            .filter(|(symbol, _)| symbol.is_callable())
            .map(|(symbol, &count)| (symbol.name, count));
        let actions = self.memory.actions().stats();
        let wx = self.memory.wx();
        stats::render(session_end, calls, &self.stats, &actions, shutdowns, wx)
    }
}
