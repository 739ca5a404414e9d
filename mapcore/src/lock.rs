//! The lock around the map's bookkeeping: a spin lock, so that the core needs no OS.
//!
//! It is held only for short table updates, never across a host call or an action.
//!
//! Built with `--cfg loom`, it is loom's model mutex instead, so that the loom models in
//! `tests/loom.rs` explore every interleaving of the map's lock steps (claim / commit,
//! retire / forget, begin / finish release) between threads.

/// A mutual-exclusion lock over `T`.
pub(crate) struct Lock<T>(
    #[cfg(not(loom))] spin::Mutex<T>,
    #[cfg(loom)] loom::sync::Mutex<T>,
);

impl<T> Lock<T> {
    pub(crate) fn new(value: T) -> Self {
        #[cfg(not(loom))]
        let inner = spin::Mutex::new(value);
        #[cfg(loom)]
        let inner = loom::sync::Mutex::new(value);
        Self(inner)
    }

    /// Runs `f` with the value locked; the lock is released when `f` returns.
    #[cfg(not(loom))]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.0.lock())
    }

    /// Runs `f` with the value locked; the lock is released when `f` returns.
    #[cfg(loom)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // A panic under the lock fails the loom model anyway; poisoning adds nothing.
        let mut guard = match self.0.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }
}
