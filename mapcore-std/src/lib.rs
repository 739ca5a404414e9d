//! mapcore for std processes.
pub use mapcore;
