//! JIT'd machine code (x86_64 or aarch64, chosen by target) runs from mapcore memory,
//! including new code initialized at addresses that held other code before.
#![cfg(target_os = "linux")]
#![cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#![expect(unsafe_code, reason = "calls JIT'd code")]

mod common;

use common::Kind;

use std::sync::mpsc;
use std::thread;

use common::code;
use mapcore_std::{InitRequest, Prot, Segment, StdJitMap};

fn page() -> usize {
    mapcore_std::page_size()
}

fn code_computes_on_its_argument(kind: Kind) {
    let map = StdJitMap::new(kind.host());
    let base = map.reserve(4 * page()).unwrap();
    let seg = [Segment::new(
        Prot::READ_EXEC,
        base,
        code::TIMES3_PLUS7.len(),
        code::TIMES3_PLUS7,
    )];
    let key = map.initialize(&InitRequest::new(&seg, &[])).unwrap();
    for x in [0u64, 1, 5, 1 << 40] {
        // SAFETY: the region holds TIMES3_PLUS7, read-execute, icache flushed by initialize.
        assert_eq!(unsafe { common::call1(key, x) }, x * 3 + 7);
    }
    map.deinitialize(key).unwrap();
}

fn code_reads_the_read_only_segment_by_absolute_address(kind: Kind) {
    let map = StdJitMap::new(kind.host());
    let p = page();
    let base = map.reserve(4 * p).unwrap();
    let constants: Vec<u8> = [40u64, 2].iter().flat_map(|v| v.to_ne_bytes()).collect();
    let segments = [
        Segment::new(Prot::READ_EXEC, base, p, code::SUM_PAIR),
        Segment::new(Prot::READ, base + 2 * p, constants.len(), &constants),
    ];
    let key = map.initialize(&InitRequest::new(&segments, &[])).unwrap();
    // SAFETY: SUM_PAIR reads two u64 at its argument, the read-only segment.
    assert_eq!(unsafe { common::call1(key, (base + 2 * p) as u64) }, 42);
    map.deinitialize(key).unwrap();
}

fn new_code_at_reused_addresses_is_what_runs(kind: Kind) {
    // Each round puts a different function at the same address: a stale instruction cache or
    // pipeline would return the previous round's value.
    let map = StdJitMap::new(kind.host());
    let base = map.reserve(2 * page()).unwrap();
    for round in 0..200u16 {
        let code = code::ret_const(round);
        let seg = [Segment::new(Prot::READ_EXEC, base, code.len(), &code)];
        let key = map.initialize(&InitRequest::new(&seg, &[])).unwrap();
        // SAFETY: the region holds `ret_const(round)`, read-execute, icache flushed.
        let returned = unsafe { common::call0(key) };
        assert_eq!(returned, u64::from(round), "round {round}");
        map.deinitialize(key).unwrap();
    }
}

fn another_thread_runs_the_new_code_after_reuse(kind: Kind) {
    // A second thread executes the code, then the main thread replaces it at the same address;
    // the other thread must see the new instructions.
    let map = StdJitMap::new(kind.host());
    let base = map.reserve(2 * page()).unwrap();
    let (to_worker, jobs) = mpsc::channel::<usize>();
    let (to_main, results) = mpsc::channel::<u64>();
    let worker = thread::spawn(move || {
        for addr in jobs {
            // SAFETY: the main thread sends the key of a live `ret_const` region and waits
            // for the result before deinitializing it.
            to_main.send(unsafe { common::call0(addr) }).unwrap();
        }
    });
    for round in 0..100u16 {
        let code = code::ret_const(1000 + round);
        let seg = [Segment::new(Prot::READ_EXEC, base, code.len(), &code)];
        let key = map.initialize(&InitRequest::new(&seg, &[])).unwrap();
        to_worker.send(key).unwrap();
        assert_eq!(
            results.recv().unwrap(),
            u64::from(1000 + round),
            "round {round}"
        );
        map.deinitialize(key).unwrap();
    }
    drop(to_worker);
    worker.join().unwrap();
}

fn code_in_a_multi_page_segment_runs_from_every_page(kind: Kind) {
    // One function at the start of each of 8 pages of one executable segment.
    let map = StdJitMap::new(kind.host());
    let p = page();
    let base = map.reserve(8 * p).unwrap();
    let mut image = vec![0u8; 7 * p + 16];
    for i in 0..8 {
        let code = code::ret_const(i as u16 * 11);
        image[i * p..i * p + code.len()].copy_from_slice(&code);
    }
    let seg = [Segment::new(Prot::READ_EXEC, base, image.len(), &image)];
    let key = map.initialize(&InitRequest::new(&seg, &[])).unwrap();
    for i in 0..8 {
        // SAFETY: page `i` starts with `ret_const(i * 11)`.
        assert_eq!(unsafe { common::call0(key + i * p) }, i as u64 * 11);
    }
    map.deinitialize(key).unwrap();
}

for_each_host!(
    code_computes_on_its_argument,
    code_reads_the_read_only_segment_by_absolute_address,
    new_code_at_reused_addresses_is_what_runs,
    another_thread_runs_the_new_code_after_reuse,
    code_in_a_multi_page_segment_runs_from_every_page,
);
