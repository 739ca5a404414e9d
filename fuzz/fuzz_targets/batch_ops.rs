//! Batches (deinitialize_multiple / release_multiple) with duplicate, unknown, interior and
//! mixed entries, over a few prepared slabs and regions, against the reference model.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mapcore_tests::driver::run_core;
use mapcore_tests::input::BatchInput;

fuzz_target!(|input: BatchInput| {
    run_core(&input.setup, &input.ops());
});
