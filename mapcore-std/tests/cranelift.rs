//! Cranelift JIT on mapcore memory ([`MapcoreMemoryProvider`], feature `cranelift`): 1,000
//! functions compiled, run and freed; the same results as Cranelift's own providers; each kind
//! of memory with its protection, in one slab; page reuse after `free_memory`; and mapcore's
//! errors surfacing as Cranelift errors, never as panics.
//!
//! VmSize is measured in its own binary (`cranelift_vmsize.rs`), because other tests running
//! in parallel threads would disturb it.
#![cfg(target_os = "linux")]
#![expect(
    unsafe_code,
    reason = "running JIT'd code, raw access to JIT memory, prctl"
)]

mod common;
mod cranelift_support;

use std::io;
use std::sync::Arc;

use common::{perms_of, resident_pages};
use cranelift_support::program::{data, data_addr, declare, define, define_program, GREETING};
use cranelift_support::{
    call0, call1, check_small, define_small, expected_program, module_with, run_program,
};
use mapcore_std::cranelift::cranelift_codegen::ir::{types, InstBuilder, MemFlagsData};
use mapcore_std::cranelift::cranelift_jit::{
    ArenaMemoryProvider, BranchProtection, JITMemoryKind, JITMemoryProvider, SystemMemoryProvider,
};
use mapcore_std::cranelift::cranelift_module::{Linkage, Module, ModuleError};
use mapcore_std::{
    Config, DiscardPolicy, Error, HostOp, InitRequest, LibcHost, MapcoreMemoryProvider, Prot,
    Segment, StdError, StdJitMap,
};

fn page() -> usize {
    mapcore_std::page_size()
}

fn shared_map() -> Arc<StdJitMap> {
    Arc::new(StdJitMap::new(LibcHost::new()))
}

fn in_slab(addr: *const u8, (base, size): (usize, usize)) -> bool {
    (base..base + size).contains(&addr.addr())
}

/// The provider's own map is on the flip host: Cranelift writes code in place at the
/// execution address, which must be read-write when the provider hands it out, and a
/// dual-mapped host leaves freed pages at their last protection.
#[test]
fn the_provider_keeps_its_map_on_the_flip_host() {
    let provider = MapcoreMemoryProvider::new().unwrap();
    assert_eq!(provider.map().host().mode(), mapcore_std::WxMode::Flip);
    // A map on the dual-mapped host is refused with a clear error.
    let dual = Arc::new(StdJitMap::new(mapcore_std::DualMappedHost::new()));
    let error = MapcoreMemoryProvider::with_map(dual, 1 << 20).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert!(error.to_string().contains("flip host"), "{error}");
}

#[test]
fn thousand_functions_compile_run_and_free() {
    const N: usize = 1000;
    // Not a multiple of 5: some batches call into the previous, already finalized batch.
    const BATCH: usize = 97;
    let map = shared_map();
    let provider = MapcoreMemoryProvider::with_map(Arc::clone(&map), 64 << 20).unwrap();
    let slab = provider.slab().unwrap();
    let mut module = module_with(Box::new(provider));
    let mut ids = Vec::new();
    let mut finalizes = 0;
    while ids.len() < N {
        let next = ids.len();
        define_small(&mut module, &mut ids, next..(next + BATCH).min(N)).unwrap();
        module.finalize_definitions().unwrap();
        finalizes += 1;
        // Earlier batches still run after later ones were finalized next to them.
        // SAFETY: every function in `ids` is finalized and live.
        unsafe { check_small(&module, &ids) };
        assert_eq!(map.region_count(), finalizes, "one region per finalize");
    }
    assert_eq!(finalizes, N.div_ceil(BATCH));
    for id in &ids {
        let f = module.get_finalized_function(*id);
        assert!(in_slab(f, slab), "f at {f:?} outside the slab {slab:x?}");
        assert_eq!(perms_of(f.addr(), f.addr() + 1), Ok("r-xp".into()));
    }
    // SAFETY: no generated function runs or is called again.
    unsafe { module.free_memory() };
    assert_eq!(map.region_count(), 0, "every region deinitialized");
    assert_eq!(
        map.slab_count(),
        0,
        "the slab is released when the module is freed"
    );
    assert!(
        !common::any_mapped(slab.0, slab.0 + slab.1),
        "the slab is unmapped"
    );
}

#[test]
fn same_results_as_cranelifts_own_providers() {
    let providers: [(&str, Box<dyn JITMemoryProvider + Send>); 3] = [
        ("mapcore", Box::new(MapcoreMemoryProvider::new().unwrap())),
        (
            "arena",
            Box::new(ArenaMemoryProvider::new_with_size(64 << 20).unwrap()),
        ),
        ("system", Box::new(SystemMemoryProvider::new())),
    ];
    let mut results = Vec::new();
    for (name, provider) in providers {
        let mut module = module_with(provider);
        let program = define_program(&mut module).unwrap();
        let mut ids = Vec::new();
        define_small(&mut module, &mut ids, 0..200).unwrap();
        module.finalize_definitions().unwrap();
        // SAFETY: the program and the generated functions are finalized and live.
        let mut out = unsafe { run_program(&module, &program) };
        for id in &ids {
            let f = module.get_finalized_function(*id);
            // SAFETY: as above.
            out.extend(cranelift_support::INPUTS.map(|x| unsafe { call1(f, x) }));
        }
        // SAFETY: nothing of the module runs or is called again.
        unsafe { module.free_memory() };
        results.push((name, out));
    }
    let mut expected = expected_program();
    for i in 0..200 {
        expected.extend(cranelift_support::INPUTS.map(|x| cranelift_support::expected_small(i, x)));
    }
    for (name, out) in &results {
        assert_eq!(out, &expected, "{name}");
    }
}

#[test]
fn each_kind_gets_its_protection_in_one_slab() {
    let provider = MapcoreMemoryProvider::new().unwrap();
    let slab = provider.slab().unwrap();
    let mut module = module_with(Box::new(provider));
    let program = define_program(&mut module).unwrap();
    let greeting = module
        .declare_data("greeting", Linkage::Local, false, false)
        .unwrap();
    let counter = module
        .declare_data("counter", Linkage::Local, true, false)
        .unwrap();
    module.finalize_definitions().unwrap();
    let fib = module.get_finalized_function(program.fib);
    let (ro, ro_len) = module.get_finalized_data(greeting);
    let (rw, _) = module.get_finalized_data(counter);
    for (what, addr, perms) in [
        ("code", fib, "r-xp"),
        ("read-only", ro, "r--p"),
        ("writable", rw, "rw-p"),
    ] {
        assert!(in_slab(addr, slab), "{what} at {addr:?} outside {slab:x?}");
        assert_eq!(
            perms_of(addr.addr(), addr.addr() + 1),
            Ok(perms.into()),
            "{what}"
        );
    }
    assert_eq!(ro_len, GREETING.len());
    // SAFETY: the program is finalized and live.
    let results = unsafe { run_program(&module, &program) };
    assert_eq!(results, expected_program());
    // SAFETY: nothing of the module runs or is called again.
    unsafe { module.free_memory() };
}

#[test]
fn later_finalizes_never_share_a_page_with_earlier_ones() {
    let mut module = module_with(Box::new(MapcoreMemoryProvider::new().unwrap()));
    let mut ids = Vec::new();
    let mut counters = Vec::new();
    for round in 0..3 {
        define_small(&mut module, &mut ids, round * 3..round * 3 + 3).unwrap();
        counters.push(data(&mut module, &format!("c{round}"), true, vec![0; 8]).unwrap());
        module.finalize_definitions().unwrap();
    }
    let page_of = |p: *const u8| p.addr() / page();
    let code_pages: Vec<usize> = ids
        .iter()
        .map(|id| page_of(module.get_finalized_function(*id)))
        .collect();
    let data_pages: Vec<usize> = counters
        .iter()
        .map(|id| page_of(module.get_finalized_data(*id).0))
        .collect();
    for round in 1..3 {
        assert!(
            code_pages[round * 3] > code_pages[round * 3 - 1],
            "round {round} code starts on a fresh page: {code_pages:?}"
        );
        assert!(data_pages[round] > data_pages[round - 1], "{data_pages:?}");
    }
    assert!(code_pages.iter().all(|p| !data_pages.contains(p)));
    // SAFETY: the functions are finalized and live.
    unsafe { check_small(&module, &ids) };
    // SAFETY: nothing of the module runs or is called again.
    unsafe { module.free_memory() };
}

/// Drives the provider the way Cranelift does: allocate, write in place, finalize.
fn fill(provider: &mut MapcoreMemoryProvider, kind: JITMemoryKind, size: usize, byte: u8) -> usize {
    let addr = provider.allocate(size, 16, kind).unwrap().addr();
    // SAFETY: the provider just handed out these `size` bytes, read-write until finalize.
    unsafe { common::write(addr, &vec![byte; size]) };
    addr
}

#[test]
fn free_memory_discards_and_reuses_the_same_pages() {
    let map = shared_map();
    let mut provider = MapcoreMemoryProvider::with_map(Arc::clone(&map), 256 * page()).unwrap();
    let (base, size) = provider.slab().unwrap();
    let mut first = Vec::new();
    for round in 0..3 {
        let code = fill(&mut provider, JITMemoryKind::Executable, 3 * page(), 0xC3);
        let ro = fill(&mut provider, JITMemoryKind::ReadOnly, 100, 0xAA);
        let rw = fill(&mut provider, JITMemoryKind::Writable, 2 * page(), 0x55);
        // Handed out but never finalized: must be discarded by free_memory all the same.
        let loose = fill(&mut provider, JITMemoryKind::ReadOnly, page(), 0x77);
        let addrs = vec![code, ro, rw, loose];
        provider.finalize(BranchProtection::None).unwrap();
        let loose2 = fill(&mut provider, JITMemoryKind::Writable, 10, 0x11);
        assert_eq!(perms_of(code, code + 3 * page()), Ok("r-xp".into()));
        assert_eq!(perms_of(ro, ro + 1), Ok("r--p".into()));
        assert_eq!(perms_of(rw, rw + 2 * page()), Ok("rw-p".into()));
        assert!(
            resident_pages(base, size) >= 7,
            "the written pages are resident"
        );
        // SAFETY: nothing uses the memory any more.
        unsafe { provider.free_memory() };
        assert_eq!(map.region_count(), 0);
        assert_eq!(
            perms_of(base, base + size),
            Ok("rw-p".into()),
            "round {round}"
        );
        assert_eq!(
            resident_pages(base, size),
            0,
            "round {round}: all discarded"
        );
        // SAFETY: the slab is mapped read-write and unused.
        assert!(unsafe { common::read(loose2, 10) }.iter().all(|b| *b == 0));
        if round == 0 {
            first = addrs;
        } else {
            assert_eq!(addrs, first, "round {round}: the same addresses again");
        }
        assert_eq!(provider.slab(), Some((base, size)), "the slab is kept");
    }
    drop(provider);
    assert_eq!(
        map.slab_count(),
        0,
        "dropping the provider releases the slab"
    );
}

#[test]
fn a_retaining_map_zero_fills_behind_in_place_content_on_reuse() {
    let config = Config {
        discard: DiscardPolicy::Retain,
        ..Config::DEFAULT
    };
    let map = Arc::new(StdJitMap::with_config(LibcHost::new(), config));
    let mut provider = MapcoreMemoryProvider::with_map(Arc::clone(&map), 64 * page()).unwrap();
    let old = fill(&mut provider, JITMemoryKind::Writable, 2 * page(), 0x55);
    provider.finalize(BranchProtection::None).unwrap();
    // SAFETY: nothing uses the memory any more.
    unsafe { provider.free_memory() };
    // SAFETY: the slab is mapped read-write and unused.
    let kept = unsafe { common::read(old, 2 * page()) };
    assert!(
        kept.iter().all(|b| *b == 0x55),
        "retain keeps the old bytes"
    );

    let new = fill(&mut provider, JITMemoryKind::Writable, 10, 0x11);
    assert_eq!(new, old, "the same address again");
    provider.finalize(BranchProtection::None).unwrap();
    // SAFETY: the region is read-write and nothing else uses it.
    let bytes = unsafe { common::read(new, 2 * page()) };
    assert!(
        bytes[..10].iter().all(|b| *b == 0x11),
        "the in-place bytes are kept"
    );
    assert!(
        bytes[10..page()].iter().all(|b| *b == 0),
        "the rest of the segment's page reads as zero"
    );
    assert!(
        bytes[page()..].iter().all(|b| *b == 0x55),
        "the page after the segment is free and untouched"
    );
    // SAFETY: nothing uses the memory any more.
    unsafe { provider.free_memory() };
}

#[test]
fn dropping_a_module_without_free_memory_leaks_like_cranelift() {
    let map = shared_map();
    let provider = MapcoreMemoryProvider::with_map(Arc::clone(&map), 1 << 20).unwrap();
    let mut module = module_with(Box::new(provider));
    let program = define_program(&mut module).unwrap();
    module.finalize_definitions().unwrap();
    let fib = module.get_finalized_function(program.fib);
    drop(module);
    drop(map);
    // SAFETY: Cranelift promises function pointers stay valid until `free_memory`, which was
    // never called: the provider leaked the slab.
    assert_eq!(unsafe { call1(fib, 20) }, 6765);
    assert_eq!(perms_of(fib.addr(), fib.addr() + 1), Ok("r-xp".into()));
}

#[test]
fn dropping_a_module_that_never_finalized_releases_the_slab() {
    let map = shared_map();
    let provider = MapcoreMemoryProvider::with_map(Arc::clone(&map), 1 << 20).unwrap();
    let (base, size) = provider.slab().unwrap();
    let mut module = module_with(Box::new(provider));
    define_program(&mut module).unwrap();
    drop(module);
    assert_eq!(map.slab_count(), 0);
    assert!(!common::any_mapped(base, base + size));
}

// ---- errors --------------------------------------------------------------------------------

#[test]
fn a_full_slab_is_a_cranelift_allocation_error() {
    let map = shared_map();
    let provider = MapcoreMemoryProvider::with_map(Arc::clone(&map), page()).unwrap();
    let mut module = module_with(Box::new(provider));
    let mut ids = Vec::new();
    let error = (0..10_000)
        .find_map(|i| define_small(&mut module, &mut ids, i..i + 1).err())
        .expect("a one-page slab fills up");
    let ModuleError::Allocation { err } = &error else {
        panic!("expected an allocation error, got {error:?}");
    };
    assert_eq!(err.kind(), io::ErrorKind::OutOfMemory, "{err}");
    assert!(err.to_string().contains("slab exhausted"), "{err}");
    assert!(ids.len() > 10, "a page holds some functions: {}", ids.len());
    // What did fit still finalizes and runs.
    module.finalize_definitions().unwrap();
    // SAFETY: the functions are finalized and live.
    unsafe { check_small(&module, &ids) };
    // SAFETY: nothing of the module runs or is called again.
    unsafe { module.free_memory() };
    assert_eq!(map.slab_count(), 0);
}

#[test]
fn a_refused_reservation_is_an_io_error_with_the_map_error_inside() {
    let config = Config {
        max_reservation: 16 * page(),
        ..Config::DEFAULT
    };
    let map = Arc::new(StdJitMap::with_config(LibcHost::new(), config));
    let error = MapcoreMemoryProvider::with_map(map, 32 * page()).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    let inner = error.get_ref().and_then(|e| e.downcast_ref::<StdError>());
    assert!(matches!(inner, Some(Error::TooLarge { .. })), "{error:?}");
}

#[test]
fn a_failed_initialize_is_a_module_error_and_finalize_can_be_retried() {
    let map = shared_map();
    let provider = MapcoreMemoryProvider::with_map(Arc::clone(&map), 1 << 20).unwrap();
    let (base, _) = provider.slab().unwrap();
    let mut module = module_with(Box::new(provider));
    // The counter is allocated first, so it sits at the slab's base; code comes after it.
    let counter = data(&mut module, "counter", true, vec![0; 8]).unwrap();
    let bump = declare(&mut module, "bump", Linkage::Export, 0).unwrap();
    define(&mut module, bump, |module, b, _| {
        let at = data_addr(module, b, counter);
        let old = b.ins().load(types::I64, MemFlagsData::trusted(), at, 0);
        let new = b.ins().iadd_imm_s(old, 1);
        b.ins().store(MemFlagsData::trusted(), new, at, 0);
        new
    })
    .unwrap();
    // Someone else takes the counter's page in the map: the provider's initialize must fail.
    // (No content and the default discard policy: the page's bytes, zero, are left alone.)
    let intruder = [Segment::new(Prot::READ_WRITE, base, page(), &[])];
    let key = map.initialize(&InitRequest::new(&intruder, &[])).unwrap();

    let error = module.finalize_definitions().unwrap_err();
    let ModuleError::Backend(backend) = &error else {
        panic!("expected a backend error, got {error:?}");
    };
    let map_error = backend.downcast_ref::<StdError>();
    assert!(
        matches!(map_error, Some(Error::Overlap { .. })),
        "{backend:?}"
    );
    assert!(format!("{backend:#}").contains("overlaps"), "{backend:#}");
    assert_eq!(map.region_count(), 1, "only the intruder is recorded");

    // Once the page is free again the same finalize goes through.
    map.deinitialize(key).unwrap();
    module.finalize_definitions().unwrap();
    assert_eq!(module.get_finalized_data(counter).0.addr(), base);
    let f = module.get_finalized_function(bump);
    // SAFETY: `bump` is finalized and live.
    assert_eq!(unsafe { [call0(f), call0(f)] }, [1, 2]);
    // SAFETY: nothing of the module runs or is called again.
    unsafe { module.free_memory() };
    assert_eq!(map.slab_count(), 0);
}

/// `mprotect(PROT_EXEC)` refused for real by `PR_SET_MDWE` (in a child process) surfaces as a
/// Cranelift error and is rolled back.
#[test]
fn a_refused_exec_protection_is_a_module_error() {
    common::in_mdwe_child("a_refused_exec_protection_is_a_module_error", mdwe_checks);
}

fn mdwe_checks() {
    let map = shared_map();
    let provider = MapcoreMemoryProvider::with_map(Arc::clone(&map), 1 << 20).unwrap();
    let (base, size) = provider.slab().unwrap();
    let mut module = module_with(Box::new(provider));
    define_program(&mut module).unwrap();
    let error = module.finalize_definitions().unwrap_err();
    let ModuleError::Backend(backend) = &error else {
        panic!("expected a backend error, got {error:?}");
    };
    let Some(Error::Host {
        op: HostOp::Protect,
        error: os,
        quarantined: false,
        ..
    }) = backend.downcast_ref::<StdError>()
    else {
        panic!("expected a protect error, got {backend:?}");
    };
    assert_eq!(os.raw_os_error(), libc::EACCES);
    // Rolled back: nothing recorded, the slab read-write throughout.
    assert_eq!(map.region_count(), 0);
    assert_eq!(perms_of(base, base + size), Ok("rw-p".into()));
    // SAFETY: nothing of the module runs (nothing could).
    unsafe { module.free_memory() };
    assert_eq!(map.slab_count(), 0);
}
