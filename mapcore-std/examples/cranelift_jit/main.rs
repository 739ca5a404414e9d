//! Cranelift JIT on mapcore memory: compile a small module with Cranelift, run it from a
//! mapcore slab, free it, and do it again on the same memory.
//!
//! Run from the repository root:
//! `cargo run --release -p mapcore-std --features cranelift --example cranelift_jit`
//!
//! The module (built in `program.rs`) has a recursive function (`fib`), a loop (`sum_to`), a
//! call to an imported libc function (`strlen`, on a string reached through a pointer in
//! writable data), a read-only table (`square`) and a writable counter (`bump`).
//! [`MapcoreMemoryProvider`] places each kind of memory in its own pages of one slab and, when
//! Cranelift finalizes, asks mapcore to make code read-execute and tables read-only.
//! `JITModule::free_memory` hands everything back: the pages are discarded and the slab is
//! unmapped, so the next module gets the same addresses and the process does not grow.
#![expect(unsafe_code, reason = "calling JIT'd code is inherently unsafe")]

mod program;

use std::error::Error;
use std::fs;

use mapcore_std::cranelift::cranelift_jit::{JITBuilder, JITModule};
use mapcore_std::cranelift::cranelift_module::default_libcall_names;
use mapcore_std::MapcoreMemoryProvider;

use crate::program::{define_program, GREETING};

type Res<T> = Result<T, Box<dyn Error>>;

/// The permissions `/proc/self/maps` shows for `addr`, like `r-xp`.
fn perms(addr: *const u8) -> String {
    let maps = fs::read_to_string("/proc/self/maps").unwrap_or_default();
    maps.lines()
        .find_map(|line| {
            let (range, rest) = line.split_once(' ')?;
            let (start, end) = range.split_once('-')?;
            let start = usize::from_str_radix(start, 16).ok()?;
            let end = usize::from_str_radix(end, 16).ok()?;
            (start..end)
                .contains(&addr.addr())
                .then(|| rest[..4].to_owned())
        })
        .unwrap_or_else(|| "unmapped".into())
}

/// `VmSize` and `VmRSS` from `/proc/self/status`, in KiB.
fn vm() -> (usize, usize) {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmSize:"), field("VmRSS:"))
}

/// One round: build, run, print, free. Returns the address of `fib` and VmSize after freeing.
fn round(n: usize) -> Res<(usize, usize)> {
    let provider = MapcoreMemoryProvider::new()?;
    let (base, size) = provider.slab().ok_or("no slab")?;
    println!(
        "round {n}: mapcore slab {base:#x}..{:#x} ({} MiB, MAP_NORESERVE)",
        base + size,
        size >> 20
    );

    let mut builder = JITBuilder::new(default_libcall_names())?;
    builder.memory_provider(Box::new(provider));
    let mut module = JITModule::new(builder);
    let program = define_program(&mut module)?;
    module.finalize_definitions()?;

    let f = |id| module.get_finalized_function(id);
    // SAFETY: every pointer is a finalized function of `module` with the signature given, and
    // `module` is alive until `free_memory` below.
    let (fib, sum_to, greeting_len, square, bump) = unsafe {
        type F0 = extern "C" fn() -> i64;
        type F1 = extern "C" fn(i64) -> i64;
        (
            std::mem::transmute::<*const u8, F1>(f(program.fib)),
            std::mem::transmute::<*const u8, F1>(f(program.sum_to)),
            std::mem::transmute::<*const u8, F0>(f(program.greeting_len)),
            std::mem::transmute::<*const u8, F1>(f(program.square)),
            std::mem::transmute::<*const u8, F0>(f(program.bump)),
        )
    };
    println!("  fib(30)             = {}", fib(30));
    println!("  sum_to(1_000_000)   = {}", sum_to(1_000_000));
    println!(
        "  strlen(greeting)    = {}   (libc strlen, via a pointer in writable data)",
        greeting_len()
    );
    println!(
        "  square(7), square(12) = {}, {}   (read-only table)",
        square(7),
        square(12)
    );
    println!(
        "  bump() x3           = {}, {}, {}   (writable counter)",
        bump(),
        bump(),
        bump()
    );
    assert_eq!(fib(30), 832_040);
    assert_eq!(sum_to(1_000_000), 500_000_500_000);
    assert_eq!(greeting_len(), GREETING.len() as i64 - 1);

    let fib_at = f(program.fib);
    let (squares_at, _) = module.get_finalized_data(program.squares);
    let (counter_at, _) = module.get_finalized_data(program.counter);
    println!("  code     fib     at {fib_at:?} {}", perms(fib_at));
    println!("  rodata   squares at {squares_at:?} {}", perms(squares_at));
    println!("  data     counter at {counter_at:?} {}", perms(counter_at));
    let (vm_live, rss_live) = vm();

    // SAFETY: none of the module's functions runs or is called again.
    unsafe { module.free_memory() };
    let (vm_freed, rss_freed) = vm();
    println!("  VmSize {vm_live} KiB live -> {vm_freed} KiB after free_memory; VmRSS {rss_live} -> {rss_freed} KiB");
    Ok((fib_at.addr(), vm_freed))
}

fn main() -> Res<()> {
    println!(
        "Cranelift {} on mapcore memory\n",
        mapcore_std::cranelift::cranelift_jit::VERSION
    );
    let mut rounds = Vec::new();
    for n in 0..3 {
        rounds.push(round(n)?);
        println!();
    }
    let same_address = rounds.windows(2).all(|w| w[0].0 == w[1].0);
    let stable = rounds.windows(2).all(|w| w[0].1 == w[1].1);
    println!(
        "same code addresses in every round: {}",
        if same_address {
            "yes"
        } else {
            "no (the kernel placed the new slab elsewhere)"
        }
    );
    println!(
        "VmSize after each free_memory: {:?} KiB -> {}",
        rounds.iter().map(|r| r.1).collect::<Vec<_>>(),
        if stable { "stable" } else { "changed" }
    );
    Ok(())
}
