//! The map against the reference model on the recording host, with injected faults.
//! `MAPCORE_FUZZ_ALIAS=1`: every input runs on a host that writes through an alias (lazy
//! protection), as if bit 7 of its setup flags were set.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mapcore_tests::driver::{force_alias, run_core};
use mapcore_tests::input::CoreInput;

fuzz_target!(|input: CoreInput| {
    run_core(&force_alias(input.setup), &input.ops);
});
