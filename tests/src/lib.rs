//! Cross-crate test support for mapcore and mapcore-std: an independent reference model of the
//! map ([`model`]), structured fuzz input ([`input`]), and drivers that run the same
//! operations on the real map and on the model and compare everything observable
//! ([`driver`]). The fuzz targets in `fuzz/` and the stable replay test
//! (`tests/tests/replay.rs`) share them. The acceptance tests live in `tests/tests/`.

pub mod actions;
pub mod driver;
pub mod input;
pub mod model;
#[cfg(target_os = "linux")]
pub mod std_host;
