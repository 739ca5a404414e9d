//! Everything one session owns: the services' state, the counters and the log settings.
//!
//! The router hands each handler the part it works on; nothing of a session lives in a static.

use super::action_context::RouteFn;
use super::dylib::Dylibs;
use super::log::Log;
use super::memory::{Memory, WxChoice};
use super::stats::{self, Shutdown, Stats};
use super::symbols::SYMBOLS;

/// One session's state.
#[derive(Debug)]
pub(crate) struct Session {
    /// The memory manager: the map, and what its alloc actions reach.
    pub(crate) memory: Memory,
    /// The dylib manager.
    pub(crate) dylibs: Dylibs,
    /// The counters of the stats file.
    pub(crate) stats: Stats,
    /// Whether calls are traced.
    pub(crate) log: Log,
}

impl Session {
    /// A fresh session; `route_action` resolves the addresses of alloc actions.
    pub(crate) fn new(log: Log, route_action: RouteFn) -> Self {
        Self::with_wx(log, route_action, WxChoice::choose())
    }

    /// A fresh session whose map has the W^X mode `wx`.
    pub(crate) fn with_wx(log: Log, route_action: RouteFn, wx: WxChoice) -> Self {
        Self {
            memory: Memory::new(route_action, log, wx),
            dylibs: Dylibs::default(),
            stats: Stats::new(SYMBOLS.len()),
            log,
        }
    }

    /// The stats file's text, after the memory manager's `shutdown`.
    pub(crate) fn stats_text(&self, session_end: &str, shutdown: &Shutdown) -> String {
        let calls = SYMBOLS
            .iter()
            .zip(&self.stats.calls)
            .filter(|(symbol, _)| symbol.is_callable())
            .map(|(symbol, &count)| (symbol.name, count));
        let actions = self.memory.actions().stats();
        let wx = self.memory.wx();
        stats::render(session_end, calls, &self.stats, &actions, shutdown, wx)
    }
}
