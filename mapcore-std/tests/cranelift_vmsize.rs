//! The memory of a Cranelift module on mapcore really comes back: after `free_memory` the
//! process's `VmSize` is back at its baseline, round after round, and the provider's pages are
//! discarded (`VmRSS` drops) while its slab is kept for reuse.
//!
//! `/proc/self/status` describes the whole process, so this binary holds a single test: no
//! other test thread maps or frees memory while it measures. Each measurement comes after a
//! warm-up round, so that the allocator's heap and the test thread's stack have already grown
//! to what a round needs.
#![cfg(target_os = "linux")]
#![expect(unsafe_code, reason = "running JIT'd code, raw access to JIT memory")]

mod common;
mod cranelift_support;

use std::time::{Duration, Instant};

use cranelift_support::program::define_program;
use cranelift_support::{
    check_small, define_small, expected_program, module_with, run_program, status_bytes,
};
use mapcore_std::cranelift::cranelift_jit::{JITMemoryKind, JITMemoryProvider};
use mapcore_std::cranelift::cranelift_module::{DataDescription, Linkage, Module};
use mapcore_std::cranelift::DEFAULT_SLAB_SIZE;
use mapcore_std::MapcoreMemoryProvider;

const FUNCTIONS: usize = 1000;
/// A zero-initialized writable data object: Cranelift writes its zeros, so its pages become
/// resident and show up in `VmRSS`.
const BIG_DATA: usize = 16 << 20;
const ROUNDS: usize = 5;
const MIB: f64 = 1024.0 * 1024.0;

struct Round {
    vm_live: usize,
    rss_live: usize,
    compile: Duration,
    run: Duration,
    free: Duration,
}

/// Compiles, runs, checks and frees one module of 1,000 functions, the small program and a big
/// data object, all on a fresh mapcore provider.
fn round() -> Round {
    let start = Instant::now();
    let mut module = module_with(Box::new(MapcoreMemoryProvider::new().unwrap()));
    let program = define_program(&mut module).unwrap();
    let mut ids = Vec::new();
    define_small(&mut module, &mut ids, 0..FUNCTIONS).unwrap();
    let big = module
        .declare_data("big", Linkage::Local, true, false)
        .unwrap();
    let mut desc = DataDescription::new();
    desc.define_zeroinit(BIG_DATA);
    module.define_data(big, &desc).unwrap();
    module.finalize_definitions().unwrap();
    let compile = start.elapsed();

    let start = Instant::now();
    // SAFETY: everything is finalized and live.
    unsafe { check_small(&module, &ids) };
    // SAFETY: as above.
    let results = unsafe { run_program(&module, &program) };
    assert_eq!(results, expected_program());
    let run = start.elapsed();
    let (big_at, big_len) = module.get_finalized_data(big);
    assert_eq!(big_len, BIG_DATA);
    let page = mapcore_std::page_size();
    let first_page = big_at.addr() / page * page;
    assert!(
        common::resident_pages(first_page, big_at.addr() + BIG_DATA - first_page)
            >= BIG_DATA / page,
        "Cranelift wrote every page of the big object"
    );
    let (vm_live, rss_live) = (status_bytes("VmSize"), status_bytes("VmRSS"));

    let start = Instant::now();
    // SAFETY: nothing of the module runs or is used again.
    unsafe { module.free_memory() };
    let free = start.elapsed();
    Round {
        vm_live,
        rss_live,
        compile,
        run,
        free,
    }
}

#[test]
fn memory_comes_back_after_free_memory() {
    // Warm-up: heap, stack, lazily loaded libc pieces (strlen is resolved with dlsym).
    round();
    round();
    let vm_base = status_bytes("VmSize");
    let rss_base = status_bytes("VmRSS");
    eprintln!(
        "baseline: VmSize {:.1} MiB, VmRSS {:.1} MiB",
        vm_base as f64 / MIB,
        rss_base as f64 / MIB
    );
    for n in 0..ROUNDS {
        let r = round();
        let (vm, rss) = (status_bytes("VmSize"), status_bytes("VmRSS"));
        eprintln!(
            "round {n}: live VmSize +{:.1} MiB, VmRSS +{:.1} MiB; after free_memory VmSize {:+} \
             KiB, VmRSS {:+} KiB; compile+finalize {:?}, run+check {:?}, free {:?}",
            (r.vm_live - vm_base) as f64 / MIB,
            r.rss_live.saturating_sub(rss_base) as f64 / MIB,
            (vm as isize - vm_base as isize) / 1024,
            (rss as isize - rss_base as isize) / 1024,
            r.compile,
            r.run,
            r.free,
        );
        // The measurement sees the module: the slab is mapped and the big object resident.
        assert!(
            r.vm_live >= vm_base + DEFAULT_SLAB_SIZE,
            "round {n}: slab not visible"
        );
        assert!(
            r.rss_live >= rss_base + BIG_DATA,
            "round {n}: big object not resident"
        );
        // And every byte of it is gone again.
        assert_eq!(vm, vm_base, "round {n}: VmSize back at the baseline");
        assert!(
            rss < rss_base + BIG_DATA / 4,
            "round {n}: VmRSS {rss} stays near the baseline {rss_base}"
        );
    }

    // Within one provider: free_memory discards the pages but keeps the slab (VmSize
    // unchanged, VmRSS down), and the next allocation gets the same address.
    let mut provider = MapcoreMemoryProvider::new().unwrap();
    let vm_slab = status_bytes("VmSize");
    assert_eq!(vm_slab, vm_base + DEFAULT_SLAB_SIZE);
    let mut first = None;
    for n in 0..ROUNDS {
        let at = provider
            .allocate(BIG_DATA, 8, JITMemoryKind::Writable)
            .unwrap();
        // SAFETY: the provider just handed out these bytes, read-write.
        unsafe { at.write_bytes(0x5A, BIG_DATA) };
        provider
            .finalize(mapcore_std::cranelift::cranelift_jit::BranchProtection::None)
            .unwrap();
        let rss_live = status_bytes("VmRSS");
        // SAFETY: nothing uses the memory any more.
        unsafe { provider.free_memory() };
        let rss_freed = status_bytes("VmRSS");
        eprintln!(
            "provider round {n}: VmRSS +{:.1} MiB live, {:+} KiB after free_memory",
            (rss_live - rss_base) as f64 / MIB,
            (rss_freed as isize - rss_base as isize) / 1024
        );
        assert!(rss_live >= rss_base + BIG_DATA);
        assert!(
            rss_freed < rss_base + BIG_DATA / 4,
            "round {n}: pages discarded"
        );
        assert_eq!(
            status_bytes("VmSize"),
            vm_slab,
            "round {n}: the slab is kept"
        );
        assert_eq!(
            *first.get_or_insert(at),
            at,
            "round {n}: same address again"
        );
    }
    drop(provider);
    assert_eq!(
        status_bytes("VmSize"),
        vm_base,
        "dropping the provider unmaps the slab"
    );
}
