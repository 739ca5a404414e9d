//! What the session's alloc actions work on, and how the map's actions reach it.
//!
//! The map runs finalize and dealloc actions inside its own calls, as `mapcore::Action`s. Every
//! wire action of the session is bound ([`ActionContext::bind`]) to one function, the
//! trampoline, with the address of the session's `ActionContext` as its context word. The
//! trampoline asks the router what the action's function address names ([`Route`]): one of our
//! own actions runs on the context's [`Registry`], a foreign one is called through the C
//! wrapper ABI ([`cabi::call_action`]). Failure messages are kept for the reply of the map call
//! that ran them.
//!
//! # Safety
//!
//! A context word is the address of an `ActionContext` in an `Rc`, exposed by `bind`, and the
//! trampoline (private here, so only `bind` hands it out) turns it back into a shared
//! reference. That holds while the `Rc` lives: the [`Memory`](super::memory::Memory) and the
//! [`SharedMemory`](super::shared_memory::SharedMemory) that own a map each keep it, and drop
//! it only after their map, whose drop runs the remaining actions.
//! The state is in `Cell`s and `RefCell`s, so the trampoline needs no more than a shared
//! reference, and it holds no borrow across a foreign call.
#![expect(
    unsafe_code,
    reason = "turning a context word back into the ActionContext it was made from"
)]

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use mapcore::{Action, ActionError, ArgsTooLong};
use mapcore_sps::split_wire_action;

use super::cabi;
use super::failures::Failures;
use super::log::Log;
use super::registry::{Extent, Initializing, Registry};
use super::stats::ActionStats;

/// An action failed: it reported an error.
const ACTION_FAILED: i32 = 1;
/// An action named one of our symbols that is not an action.
const NOT_AN_ACTION: i32 = 2;
/// An action whose stored arguments lack the function address (cannot happen with the
/// decoder's actions).
const MALFORMED_ACTION: i32 = 3;

/// One of the executor's own alloc actions: its arguments in, success or a message out.
pub(crate) type OwnAction = fn(&mut Registry, &[u8]) -> Result<(), String>;

/// What an alloc action's function address names.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Route {
    /// One of our own actions.
    Own(OwnAction),
    /// One of our symbols that is not an action, by name.
    NotAnAction(&'static str),
    /// Nothing of ours: a foreign function with the C wrapper ABI.
    Foreign,
}

/// Resolves an alloc action's function address (the router's symbol lookup).
pub(crate) type RouteFn = fn(u64) -> Route;

/// The state the session's alloc actions reach: the registry of EH frames and debug objects,
/// and the failures of the current map call.
#[derive(Debug)]
pub(crate) struct ActionContext {
    route: RouteFn,
    log: Log,
    registry: RefCell<Registry>,
    failures: RefCell<Failures>,
    failure_count: Cell<u64>,
}

impl ActionContext {
    /// A fresh context; `route` resolves action addresses.
    pub(crate) fn new(route: RouteFn, log: Log) -> Rc<Self> {
        Rc::new(Self {
            route,
            log,
            registry: RefCell::default(),
            failures: RefCell::default(),
            failure_count: Cell::new(0),
        })
    }

    /// The action that runs a wire action, as the SPS decoder stores it (`stored`: function
    /// address, then wire arguments), on this context.
    ///
    /// # Errors
    ///
    /// `stored` is longer than an action's arguments may be.
    pub(crate) fn bind(self: &Rc<Self>, stored: &[u8]) -> Result<Action, ArgsTooLong> {
        let word = Rc::as_ptr(self).expose_provenance();
        Action::with_context(trampoline, word, stored)
    }

    /// Runs one of our own actions on the registry.
    ///
    /// # Errors
    ///
    /// The action's own, or the registry is in use (an action re-entered, never expected).
    pub(crate) fn run_own(&self, run: OwnAction, args: &[u8]) -> Result<(), String> {
        let mut registry = self
            .registry
            .try_borrow_mut()
            .map_err(|_| "the registry is in use".to_owned())?;
        run(&mut registry, args)
    }

    /// Sets the initialize whose finalize actions run next, `None` after.
    pub(crate) fn set_initializing(&self, initializing: Option<Initializing>) {
        self.registry.borrow_mut().set_initializing(initializing);
    }

    /// Undoes the registrations overlapping `extent`, memory about to be freed
    /// ([`Registry::sweep`]).
    pub(crate) fn sweep(&self, extent: Extent) {
        let undone = self.registry.borrow_mut().sweep(extent);
        if undone > 0 {
            let (start, end) = extent;
            self.log.trace(format_args!(
                "{start:#x}..{end:#x} is freed: {undone} registrations undone"
            ));
        }
    }

    /// Forgets the swept registrations ([`Registry::purge`]).
    pub(crate) fn purge(&self) {
        self.registry.borrow_mut().purge();
    }

    /// Records a failed action. During an initialize, the map rolls the region back next:
    /// what the region's actions registered is undone first, while its pages are intact (their
    /// dealloc actions, which the rollback runs, still find theirs).
    fn record_failure(&self, message: String) {
        let undone = self
            .registry
            .try_borrow_mut()
            .map_or(0, |mut registry| registry.sweep_initializing());
        if undone > 0 {
            self.log.trace(format_args!(
                "an action failed: {undone} registrations undone before the rollback"
            ));
        }
        self.failure_count.set(self.failure_count.get() + 1);
        self.log
            .trace(format_args!("alloc action failed: {message}"));
        self.failures.borrow_mut().push(|| message);
    }

    /// The actions that failed since the last call, oldest first.
    pub(crate) fn take_failures(&self) -> Failures {
        self.failures.take()
    }

    /// The actions' counters.
    pub(crate) fn stats(&self) -> ActionStats {
        let registry = self.registry.borrow();
        let (eh_frames_registered, debug_objects_registered) = registry.live();
        ActionStats {
            registrations: registry.counts(),
            action_failures: self.failure_count.get(),
            eh_frames_registered,
            debug_objects_registered,
        }
    }
}

/// Runs one bound wire action: `args` is the function address (8 bytes) then the wire
/// arguments, as the decoder stored them.
fn trampoline(word: usize, args: &[u8]) -> Result<(), ActionError> {
    // SAFETY: only `bind` makes actions with this function, and their word is the address of
    // an `ActionContext` in an `Rc` that outlives the map's actions (module docs).
    let context = unsafe { &*std::ptr::with_exposed_provenance::<ActionContext>(word) };
    let Some((func, wire_args)) = split_wire_action(args) else {
        return Err(ActionError::new(MALFORMED_ACTION));
    };
    let result = match (context.route)(func) {
        Route::Own(run) => context.run_own(run, wire_args),
        Route::NotAnAction(name) => {
            context.record_failure(format!("{name} is not an allocation action"));
            return Err(ActionError::new(NOT_AN_ACTION));
        }
        Route::Foreign => cabi::call_action(func, wire_args),
    };
    result.map_err(|message| {
        context.record_failure(message);
        ActionError::new(ACTION_FAILED)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::eh_frame;
    use crate::linux::registry::Counts;

    /// A minimal `.eh_frame`: one CIE (24 bytes) and the zero terminator.
    const EH_FRAME: [u8; 28] = [
        0x14, 0, 0, 0, 0, 0, 0, 0, 1, b'z', b'R', 0, 0x01, 0x78, 0x10, 0x01, 0x1b, 0x0c, 0x07,
        0x08, 0x90, 0x01, 0x00, 0x00, 0, 0, 0, 0,
    ];
    const REGISTER: u64 = 1;
    const DEREGISTER: u64 = 2;
    const RESERVE: u64 = 3;

    fn route(func: u64) -> Route {
        match func {
            REGISTER => Route::Own(eh_frame::register),
            DEREGISTER => Route::Own(eh_frame::deregister),
            RESERVE => Route::NotAnAction("reserve"),
            _ => Route::Foreign,
        }
    }

    /// A wire action as the decoder stores it: `func` then an `ExecutorAddrRange`.
    fn wire(func: u64, start: u64, end: u64) -> Vec<u8> {
        [func, start, end]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect()
    }

    #[test]
    fn each_context_keeps_its_own_registrations() {
        let frame = EH_FRAME;
        let start = frame.as_ptr().expose_provenance() as u64;
        let end = start + 28;
        let (a, b) = (
            ActionContext::new(route, Log::default()),
            ActionContext::new(route, Log::default()),
        );
        assert_eq!(a.bind(&wire(REGISTER, start, end)).unwrap().run(), Ok(()));
        // The other session never registered it: deregistering fails instead of reaching
        // libgcc, which would abort.
        let from_b = b.bind(&wire(DEREGISTER, start, end)).unwrap();
        assert_eq!(from_b.run(), Err(ActionError::new(ACTION_FAILED)));
        let failures = b.take_failures();
        assert!(
            failures.shown()[0].contains("no EH frame registered"),
            "{failures:?}"
        );
        assert!(b.take_failures().is_empty());
        assert_eq!(b.stats().action_failures, 1);
        assert_eq!(a.stats().eh_frames_registered, 1);

        assert_eq!(a.bind(&wire(DEREGISTER, start, end)).unwrap().run(), Ok(()));
        let expected = ActionStats {
            registrations: Counts {
                eh_register: 1,
                eh_deregister: 1,
                ..Counts::default()
            },
            action_failures: 0,
            eh_frames_registered: 0,
            debug_objects_registered: 0,
        };
        assert_eq!(a.stats(), expected);
    }

    #[test]
    fn other_symbols_and_malformed_actions_fail() {
        let context = ActionContext::new(route, Log::default());
        let bound = context.bind(&wire(RESERVE, 0, 0)).unwrap();
        assert_eq!(bound.context(), Some(Rc::as_ptr(&context).addr()));
        assert_eq!(bound.run(), Err(ActionError::new(NOT_AN_ACTION)));
        assert_eq!(
            context.take_failures().shown(),
            ["reserve is not an allocation action"]
        );
        let short = context.bind(&[1]).unwrap();
        assert_eq!(short.run(), Err(ActionError::new(MALFORMED_ACTION)));
    }
}
