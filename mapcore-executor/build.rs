//! Links the C++ runtime and the math library into the executor, as LLVM's own executor has
//! them: JIT'd C++ (and the ORC runtime that clang-repl loads) calls `operator new`, iostreams,
//! `ceil` and the like, and the controller resolves them in the executor's process through its
//! `dlopen(NULL)` handle, which sees exactly the libraries the executable was linked with.
//!
//! Rust links with `--as-needed`, which would drop both libraries, since no Rust code calls
//! them; `--no-as-needed` keeps them as `DT_NEEDED`. They are named by their sonames, so only
//! the runtime packages (libstdc++6, libc6) are needed to build, not their `-dev` symlinks.

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--push-state,--no-as-needed,-l:libstdc++.so.6,-l:libm.so.6,--pop-state"
        );
    }
    println!("cargo:rerun-if-changed=build.rs");
}
