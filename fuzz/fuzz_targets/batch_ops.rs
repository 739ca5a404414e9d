//! Batches (deinitialize_multiple / release_multiple) with duplicate, unknown, interior and
//! mixed entries, over a few prepared slabs and regions, against the reference model.
//! `MAPCORE_FUZZ_ALIAS=1`: every input runs on a host that writes through an alias.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mapcore_tests::driver::{force_alias, run_core};
use mapcore_tests::input::BatchInput;

fuzz_target!(|input: BatchInput| {
    run_core(&force_alias(input.setup), &input.ops());
});
