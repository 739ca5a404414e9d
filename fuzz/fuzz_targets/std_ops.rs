//! The same operations on mapcore-std's real hosts (real mmap/mprotect/madvise/munmap, and
//! memfd mappings): the flip host, or the dual-mapped host when the setup's alias bit is set;
//! /proc/self/maps, /proc/self/pagemap and /proc/self/mem are the oracle next to the model.
//! `MAPCORE_FUZZ_ALIAS=1`: every input runs on the dual-mapped host.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mapcore_tests::driver::force_alias;
use mapcore_tests::input::CoreInput;
use mapcore_tests::std_host::run_std;

fuzz_target!(|input: CoreInput| {
    run_std(&force_alias(input.setup), &input.ops);
});
