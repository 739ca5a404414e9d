//! An in-process mapcore-executor session driven by random frame sequences, with a model of
//! the live slabs and regions checking every reply.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mapcore_tests::executor_session::{run_session, SessionInput};

fuzz_target!(|input: SessionInput| {
    let _ = run_session(&input);
});
