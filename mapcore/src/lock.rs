//! The lock around the map's bookkeeping: a spin lock, so that the core needs no OS.
//!
//! It is held only for short table updates, never across a host call or an action.

/// A mutual-exclusion lock over `T`.
pub(crate) struct Lock<T>(spin::Mutex<T>);

impl<T> Lock<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(spin::Mutex::new(value))
    }

    /// Runs `f` with the value locked; the lock is released when `f` returns.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.0.lock())
    }
}
