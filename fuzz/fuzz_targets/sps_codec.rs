//! Arbitrary bytes through every decoder of mapcore-sps (codec, header, memory-map binding):
//! no panic, and whatever decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    mapcore_tests::sps_round_trip::check(bytes);
});
