//! The map against the reference model on the recording host, with injected faults.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mapcore_tests::driver::run_core;
use mapcore_tests::input::CoreInput;

fuzz_target!(|input: CoreInput| {
    run_core(&input.setup, &input.ops);
});
