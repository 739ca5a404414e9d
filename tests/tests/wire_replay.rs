//! Stable replay of the wire fuzz targets' inputs: every file in `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/` of `sps_codec` and `executor_session`, plus seeded random
//! buffers, through the same checks the targets run (`mapcore_tests::sps_round_trip`,
//! `mapcore_tests::executor_session`).
#![cfg(target_os = "linux")]

use std::fs;
use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};
use mapcore_tests::executor_session::{run_session, Checked, SessionInput};
use mapcore_tests::sps_round_trip;

/// The files of `fuzz/<kind>/<target>`, sorted; none if it does not exist.
fn files(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(kind)
        .join(target);
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    out.retain(|p| p.is_file());
    out.sort();
    out
}

/// Decodes like libfuzzer-sys 0.4's `fuzz_target!`.
fn session(bytes: &[u8]) -> Option<SessionInput> {
    if bytes.len() < SessionInput::size_hint(0).0 {
        return None;
    }
    SessionInput::arbitrary_take_rest(Unstructured::new(bytes)).ok()
}

/// xorshift64*: deterministic, no extra crate.
fn random_buffers(seed: u64, count: usize, max_len: u64) -> impl Iterator<Item = Vec<u8>> {
    let mut state = seed;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    (0..count).map(move |_| {
        let len = next() % max_len;
        (0..len).map(|_| next() as u8).collect()
    })
}

#[test]
fn sps_codec_inputs_round_trip() {
    let mut ran = 0;
    for kind in ["corpus", "regressions"] {
        for path in files(kind, "sps_codec") {
            sps_round_trip::check(&fs::read(&path).expect("readable"));
            ran += 1;
        }
    }
    println!("sps_codec: {ran} corpus and regression inputs");
    assert!(ran > 0, "fuzz/corpus/sps_codec is empty");
    for bytes in random_buffers(0x7370_735f_636f_6465, 20_000, 200) {
        sps_round_trip::check(&bytes);
    }
}

#[test]
fn executor_session_inputs_replay() {
    let add = |total: &mut Checked, c: Checked| {
        total.predicted += c.predicted;
        total.regions += c.regions;
        total.read_backs += c.read_backs;
    };
    let (mut random, mut total) = (0, Checked::default());
    for bytes in random_buffers(0x6578_6563_5f73_6573, 300, 600) {
        if let Some(input) = session(&bytes) {
            add(&mut total, run_session(&input));
            random += 1;
        }
    }
    println!("executor_session: {random} random inputs: {total:?}");
    let (mut ran, mut short, mut total) = (0, 0, Checked::default());
    for kind in ["corpus", "regressions"] {
        for path in files(kind, "executor_session") {
            match session(&fs::read(&path).expect("readable")) {
                Some(input) => {
                    add(&mut total, run_session(&input));
                    ran += 1;
                }
                None => short += 1,
            }
        }
    }
    println!(
        "executor_session: {ran} corpus and regression inputs replayed, {short} too short: \
         {total:?}"
    );
    // A corpus that never gets a region initialized and read back checks little of the model.
    assert!(
        total.regions > 0 && total.read_backs > 0,
        "the corpus reaches too little: {total:?}"
    );
}
