//! The same operations on mapcore-std's libc host (real mmap/mprotect/madvise/munmap), with
//! /proc/self/maps, /proc/self/pagemap and /proc/self/mem as the oracle next to the model.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mapcore_tests::input::CoreInput;
use mapcore_tests::std_host::run_std;

fuzz_target!(|input: CoreInput| {
    run_std(&input.setup, &input.ops);
});
