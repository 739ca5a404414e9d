//! Actions: a function plus a small fixed-capacity argument buffer, run by the map.
//!
//! An action's function is a plain [`ActionFn`], or a [`ContextActionFn`] bound to a context
//! word ([`Action::with_context`]) that reaches the caller's own state: an index into its
//! tables, or the address of the runtime whose actions these are. The map never looks at the
//! word; it stays plain data, so actions need no heap and no `'static` state.
//!
//! Finalize and dealloc actions come in pairs. The rules are orc-rt's: finalize actions run in
//! order; a pair's dealloc action is kept only once its finalize action succeeded (or had none);
//! when a finalize action fails, the kept dealloc actions run newest first and the failing
//! pair's own dealloc never runs. Dealloc actions always run newest first and never stop early.

use core::fmt;

use heapless::Vec;

/// Most argument bytes one action carries: the map's own choice of inline capacity.
///
/// An [`Action`] keeps its arguments inline, so that actions need no heap and a region's
/// dealloc actions fit a fixed table. 48 bytes are six 64-bit words: an address range or a
/// pointer and a length with room to spare, and with the function pointer and the length an
/// action fills one 64-byte cache line on 64-bit targets. Larger argument blocks are passed by
/// address. A wire format that carries action arguments checks its own limit against this one.
pub const MAX_ACTION_ARGS: usize = 48;

/// Most action pairs in one initialize request, and so most dealloc actions per region.
///
/// 16: LLVM's ORC runtime (the `liborc_rt` that clang-repl loads) links as one graph with ten
/// pairs (EH frames, init sections, object sections, TLS); a graph of user code has up to four.
pub const MAX_ACTION_PAIRS: usize = 16;

/// The function of an action: it receives the action's argument bytes.
pub type ActionFn = fn(&[u8]) -> Result<(), ActionError>;

/// The function of an action bound to a context word: it receives the word given to
/// [`Action::with_context`], then the action's argument bytes.
pub type ContextActionFn = fn(usize, &[u8]) -> Result<(), ActionError>;

/// What an action calls.
#[derive(Clone, Copy)]
enum Call {
    Plain(ActionFn),
    WithContext(ContextActionFn, usize),
}

/// The failure of an action, as a code chosen by the action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ActionError(i32);

impl ActionError {
    /// An action failure with an action-defined code.
    #[must_use]
    pub const fn new(code: i32) -> Self {
        Self(code)
    }

    /// The action-defined code.
    #[must_use]
    pub const fn code(self) -> i32 {
        self.0
    }
}

impl fmt::Display for ActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "action failed with code {}", self.0)
    }
}

impl core::error::Error for ActionError {}

/// The argument buffer was longer than [`MAX_ACTION_ARGS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgsTooLong;

impl fmt::Display for ArgsTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "action arguments exceed {MAX_ACTION_ARGS} bytes")
    }
}

impl core::error::Error for ArgsTooLong {}

/// A function (with its context word, if it takes one) plus its argument bytes. Plain data: no
/// heap, cheap to clone.
#[derive(Clone)]
pub struct Action {
    call: Call,
    args: Vec<u8, MAX_ACTION_ARGS>,
}

impl Action {
    /// An action calling `func` with a copy of `args`.
    ///
    /// # Errors
    ///
    /// [`ArgsTooLong`] if `args` is longer than [`MAX_ACTION_ARGS`].
    pub fn new(func: ActionFn, args: &[u8]) -> Result<Self, ArgsTooLong> {
        let args = Vec::from_slice(args).map_err(|_| ArgsTooLong)?;
        Ok(Self {
            call: Call::Plain(func),
            args,
        })
    }

    /// An action calling `func` with `context`, then a copy of `args`.
    ///
    /// # Errors
    ///
    /// [`ArgsTooLong`] if `args` is longer than [`MAX_ACTION_ARGS`].
    pub fn with_context(
        func: ContextActionFn,
        context: usize,
        args: &[u8],
    ) -> Result<Self, ArgsTooLong> {
        let args = Vec::from_slice(args).map_err(|_| ArgsTooLong)?;
        Ok(Self {
            call: Call::WithContext(func, context),
            args,
        })
    }

    /// An action calling `func` with the native-endian bytes of `value` as its arguments;
    /// handy for actions whose argument is one address.
    #[must_use]
    pub fn with_u64(func: ActionFn, value: u64) -> Self {
        let mut args = Vec::new();
        let fits = args.extend_from_slice(&value.to_ne_bytes());
        debug_assert!(fits.is_ok(), "8 bytes fit in MAX_ACTION_ARGS");
        Self {
            call: Call::Plain(func),
            args,
        }
    }

    /// The context word, for an action made with [`Action::with_context`].
    #[must_use]
    pub fn context(&self) -> Option<usize> {
        match self.call {
            Call::Plain(_) => None,
            Call::WithContext(_, context) => Some(context),
        }
    }

    /// The argument bytes.
    #[must_use]
    pub fn args(&self) -> &[u8] {
        &self.args
    }

    /// Calls the function with the context word, if it takes one, and the argument bytes.
    ///
    /// # Errors
    ///
    /// Whatever the function returns.
    pub fn run(&self) -> Result<(), ActionError> {
        match self.call {
            Call::Plain(func) => func(&self.args),
            Call::WithContext(func, context) => func(context, &self.args),
        }
    }
}

impl fmt::Debug for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (func, context) = match self.call {
            Call::Plain(func) => (func as *const (), None),
            Call::WithContext(func, context) => (func as *const (), Some(context)),
        };
        f.debug_struct("Action")
            .field("func", &func)
            .field("context", &context)
            .field("args", &self.args.as_slice())
            .finish()
    }
}

/// A finalize action and the dealloc action that undoes it; either may be absent.
#[derive(Debug, Clone, Default)]
pub struct ActionPair {
    /// Runs during initialize, after all content is written and protected.
    pub finalize: Option<Action>,
    /// Runs at deinitialize (or release), or during rollback if a later finalize action fails.
    pub dealloc: Option<Action>,
}

impl ActionPair {
    /// A pair of two actions.
    #[must_use]
    pub fn new(finalize: Action, dealloc: Action) -> Self {
        Self {
            finalize: Some(finalize),
            dealloc: Some(dealloc),
        }
    }
}

/// The dealloc actions kept for one region, in registration order.
pub(crate) type Deallocs = Vec<Action, MAX_ACTION_PAIRS>;

/// A finalize action failed: which one, its error, and how many cleanup deallocs failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FinalizeFailure {
    /// Index of the failing pair.
    pub(crate) index: usize,
    /// Its error.
    pub(crate) error: ActionError,
    /// How many of the cleanup dealloc actions failed.
    pub(crate) cleanup_failures: usize,
}

/// Runs the finalize actions of `pairs` in order and puts the dealloc actions to keep in
/// `kept` (cleared first; filled in place, since the list is large and moving it costs).
///
/// `pairs` must hold at most [`MAX_ACTION_PAIRS`] entries (the map checks this beforehand);
/// extra pairs are ignored.
///
/// # Errors
///
/// A finalize action failed: the dealloc actions kept so far already ran, newest first, and
/// `kept` is empty.
pub(crate) fn run_finalize_actions(
    pairs: &[ActionPair],
    kept: &mut Deallocs,
) -> Result<(), FinalizeFailure> {
    kept.clear();
    for (index, pair) in pairs.iter().take(MAX_ACTION_PAIRS).enumerate() {
        if let Some(finalize) = &pair.finalize {
            if let Err(error) = finalize.run() {
                let cleanup_failures = run_dealloc_actions(kept);
                kept.clear();
                return Err(FinalizeFailure {
                    index,
                    error,
                    cleanup_failures,
                });
            }
        }
        if let Some(dealloc) = &pair.dealloc {
            let pushed = kept.push(dealloc.clone());
            debug_assert!(pushed.is_ok(), "at most MAX_ACTION_PAIRS pairs are visited");
        }
    }
    Ok(())
}

/// Runs every action newest first, continuing after failures; returns how many failed.
pub(crate) fn run_dealloc_actions(deallocs: &[Action]) -> usize {
    deallocs
        .iter()
        .rev()
        .filter(|action| action.run().is_err())
        .count()
}

#[cfg(test)]
mod tests {
    //! T15-T24: orc-rt's AllocAction tests. Arguments are the 8 native bytes of a pointer to a
    //! counter, as upstream; any other size is a decode failure.
    extern crate std;
    use core::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Mutex;
    use std::vec::Vec as StdVec;

    use super::*;

    const FAILED: ActionError = ActionError::new(1);
    const FAILED_2: ActionError = ActionError::new(2);
    const UNDECODABLE: ActionError = ActionError::new(-1);

    fn counter(args: &[u8]) -> Result<&'static AtomicI64, ActionError> {
        let bytes: [u8; 8] = args.try_into().map_err(|_| UNDECODABLE)?;
        let addr = u64::from_ne_bytes(bytes) as usize;
        COUNTERS
            .iter()
            .find(|c| core::ptr::from_ref(*c) as usize == addr)
            .ok_or(UNDECODABLE)
    }

    static COUNTERS: [AtomicI64; 4] = [
        AtomicI64::new(0),
        AtomicI64::new(0),
        AtomicI64::new(0),
        AtomicI64::new(0),
    ];
    // The tests share the counters, so they take turns.
    static SERIAL: Mutex<()> = Mutex::new(());
    static REPORTED: Mutex<StdVec<i32>> = Mutex::new(StdVec::new());

    fn inc(args: &[u8]) -> Result<(), ActionError> {
        counter(args)?.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn dec(args: &[u8]) -> Result<(), ActionError> {
        counter(args)?.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
    fn fail(_: &[u8]) -> Result<(), ActionError> {
        REPORTED.lock().unwrap().push(FAILED.code());
        Err(FAILED)
    }
    fn fail2(_: &[u8]) -> Result<(), ActionError> {
        REPORTED.lock().unwrap().push(FAILED_2.code());
        Err(FAILED_2)
    }

    fn on(func: ActionFn, c: usize) -> Action {
        Action::with_u64(func, core::ptr::from_ref(&COUNTERS[c]) as u64)
    }
    fn value(c: usize) -> i64 {
        COUNTERS[c].load(Ordering::SeqCst)
    }
    fn fresh() -> std::sync::MutexGuard<'static, ()> {
        let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        COUNTERS.iter().for_each(|c| c.store(0, Ordering::SeqCst));
        REPORTED.lock().unwrap().clear();
        guard
    }
    fn pair(f: Option<Action>, d: Option<Action>) -> ActionPair {
        ActionPair {
            finalize: f,
            dealloc: d,
        }
    }

    #[test]
    fn t15_default_pair_has_no_actions() {
        let p = ActionPair::default();
        assert!(p.finalize.is_none() && p.dealloc.is_none());
    }

    #[test]
    fn t16_action_with_function_and_empty_args() {
        let a = Action::new(fail, &[]).unwrap();
        assert!(a.args().is_empty());
        assert!(Action::new(fail, &[0; MAX_ACTION_ARGS + 1]).is_err());
    }

    /// Which counter a context word names: the word is the counter's index.
    fn add_context(context: usize, args: &[u8]) -> Result<(), ActionError> {
        let n = i64::from(*args.first().ok_or(UNDECODABLE)?);
        COUNTERS
            .get(context)
            .ok_or(UNDECODABLE)?
            .fetch_add(n, Ordering::SeqCst);
        Ok(())
    }

    #[test]
    fn context_actions_get_their_word_then_their_args() {
        let _g = fresh();
        let a = Action::with_context(add_context, 2, &[5]).unwrap();
        assert_eq!(a.context(), Some(2));
        assert_eq!(a.args(), [5]);
        assert_eq!(a.clone().run(), Ok(()));
        assert_eq!(a.run(), Ok(()));
        assert_eq!((value(0), value(2)), (0, 10));
        assert_eq!(
            Action::with_context(add_context, 4, &[1]).unwrap().run(),
            Err(UNDECODABLE)
        );
        assert!(Action::with_context(add_context, 0, &[0; MAX_ACTION_ARGS + 1]).is_err());
        assert_eq!(on(inc, 0).context(), None);
        // Pairs mix both kinds; dealloc actions run newest first either way.
        let pairs = [
            pair(Some(on(inc, 1)), Some(a.clone())),
            pair(
                None,
                Some(Action::with_context(add_context, 1, &[3]).unwrap()),
            ),
        ];
        let mut kept = Deallocs::new();
        run_finalize_actions(&pairs, &mut kept).unwrap();
        assert_eq!(run_dealloc_actions(&kept), 0);
        assert_eq!((value(1), value(2)), (4, 15));
    }

    #[test]
    fn debug_shows_the_context_word() {
        let a = Action::with_context(add_context, 7, &[1]).unwrap();
        let text = std::format!("{a:?}");
        assert!(text.contains("context: Some(7)"), "{text}");
        assert!(text.contains("args: [1]"), "{text}");
        assert!(std::format!("{:?}", on(inc, 0)).contains("context: None"));
    }

    #[test]
    fn t17_run_basic_action() {
        let _g = fresh();
        assert_eq!(on(inc, 0).run(), Ok(()));
        assert_eq!(value(0), 1);
        assert_eq!(Action::new(inc, &[1]).unwrap().run(), Err(UNDECODABLE));
    }

    #[test]
    fn t18_finalize_then_dealloc() {
        let _g = fresh();
        let pairs = [
            pair(Some(on(inc, 0)), Some(on(dec, 0))),
            pair(Some(on(inc, 0)), Some(on(dec, 0))),
        ];
        let mut kept = Deallocs::new();
        run_finalize_actions(&pairs, &mut kept).unwrap();
        assert_eq!(value(0), 2);
        assert_eq!(run_dealloc_actions(&kept), 0);
        assert_eq!(value(0), 0);
    }

    #[test]
    fn t19_finalize_failure_runs_earlier_deallocs_only() {
        let _g = fresh();
        let (a, b, c) = (0, 1, 2);
        let pairs = [
            pair(Some(on(inc, a)), Some(on(inc, a))),
            pair(Some(Action::new(fail, &[]).unwrap()), Some(on(inc, b))),
            pair(Some(on(inc, c)), Some(on(inc, c))),
        ];
        let mut kept = Deallocs::new();
        let err = run_finalize_actions(&pairs, &mut kept).unwrap_err();
        assert!(kept.is_empty());
        assert_eq!(
            err,
            FinalizeFailure {
                index: 1,
                error: FAILED,
                cleanup_failures: 0
            }
        );
        assert_eq!((value(a), value(b), value(c)), (2, 0, 0));
    }

    #[test]
    fn t20_null_finalize_keeps_dealloc() {
        let _g = fresh();
        let pairs = [
            pair(Some(on(inc, 0)), Some(on(dec, 0))),
            pair(None, Some(on(dec, 0))),
        ];
        let mut kept = Deallocs::new();
        run_finalize_actions(&pairs, &mut kept).unwrap();
        assert_eq!(kept.len(), 2);
        run_dealloc_actions(&kept);
        assert_eq!(value(0), -1);
    }

    #[test]
    fn t21_null_dealloc_is_dropped() {
        let _g = fresh();
        let pairs = [
            pair(Some(on(inc, 0)), Some(on(dec, 0))),
            pair(Some(on(inc, 0)), None),
        ];
        let mut kept = Deallocs::new();
        run_finalize_actions(&pairs, &mut kept).unwrap();
        assert_eq!(kept.len(), 1);
        run_dealloc_actions(&kept);
        assert_eq!(value(0), 1);
    }

    #[test]
    fn t22_dealloc_keeps_going_after_error() {
        let _g = fresh();
        let list = [on(inc, 0), Action::new(fail, &[]).unwrap()];
        assert_eq!(run_dealloc_actions(&list), 1);
        assert_eq!(*REPORTED.lock().unwrap(), [FAILED.code()]);
        assert_eq!(value(0), 1);
    }

    #[test]
    fn t23_dealloc_reports_all_errors_newest_first() {
        let _g = fresh();
        let list = [
            Action::new(fail, &[]).unwrap(),
            Action::new(fail2, &[]).unwrap(),
        ];
        assert_eq!(run_dealloc_actions(&list), 2);
        assert_eq!(*REPORTED.lock().unwrap(), [FAILED_2.code(), FAILED.code()]);
    }

    #[test]
    fn t24_finalize_failure_counts_cleanup_failures() {
        let _g = fresh();
        let pairs = [
            pair(Some(on(inc, 0)), Some(on(dec, 0))),
            pair(Some(on(inc, 0)), Some(Action::new(fail, &[]).unwrap())),
            pair(Some(Action::new(fail2, &[]).unwrap()), None),
        ];
        let mut kept = Deallocs::new();
        let err = run_finalize_actions(&pairs, &mut kept).unwrap_err();
        assert!(kept.is_empty());
        assert_eq!(
            err,
            FinalizeFailure {
                index: 2,
                error: FAILED_2,
                cleanup_failures: 1
            }
        );
        assert_eq!(*REPORTED.lock().unwrap(), [FAILED_2.code(), FAILED.code()]);
        assert_eq!(value(0), 1);
    }
}
