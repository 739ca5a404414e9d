//! Links with cortex-m-rt's `link.x` and puts `memory.x`, which it includes, where the linker
//! finds it. Here rather than in `.cargo/config.toml`'s rustflags, which a `RUSTFLAGS` in the
//! environment (even an empty one) would replace.

use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::copy("memory.x", out.join("memory.x")).expect("memory.x is readable");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    println!("cargo:rerun-if-changed=memory.x");
}
