//! Cross-crate test support for mapcore and mapcore-std: an independent reference model of the
//! map ([`model`]), structured fuzz input ([`input`]), and drivers that run the same
//! operations on the real map and on the model and compare everything observable
//! ([`driver`]); the SPS codec's round trip ([`sps_round_trip`]) and an executor session
//! driven by a modelled controller (`executor_session`). The fuzz targets in `fuzz/` and the stable replay test
//! (`tests/tests/replay.rs`) share them. The acceptance tests live in `tests/tests/`.

pub mod actions;
pub mod driver;
#[cfg(target_os = "linux")]
pub mod executor_session;
pub mod input;
pub mod model;
pub mod sps_round_trip;
#[cfg(target_os = "linux")]
pub mod std_host;

/// The crates a fuzz build compiles without coverage instrumentation (`MAPCORE_FUZZ_UNCOVERED`,
/// set by `fuzz/.cargo/config.toml` for `fuzz/coverage-filter.sh`), `None` in other builds.
/// Read at compile time so that cargo rebuilds this crate when it changes: cargo does not
/// rebuild when only the rustc wrapper changes.
pub const FUZZ_UNCOVERED: Option<&str> = option_env!("MAPCORE_FUZZ_UNCOVERED");
