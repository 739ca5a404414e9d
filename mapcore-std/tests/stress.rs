//! Eight threads on one map over the real libc host, each filling its regions with a
//! per-thread, per-cycle cookie and checking it (and the zero-filled rest) before
//! deinitializing: regions never mix across threads, and every page comes back.
#![cfg(target_os = "linux")]
#![expect(unsafe_code, reason = "reads JIT memory through a raw pointer")]

mod common;

use common::Kind;

use std::sync::Arc;
use std::thread;

use mapcore_std::{page_size, InitRequest, Prot, Segment, StdJitMap};

const THREADS: u64 = 8;
const CYCLES: u64 = 2_000;

fn eight_threads_each_see_only_their_own_cookies(kind: Kind) {
    let map = Arc::new(StdJitMap::new(kind.host()));
    let page = page_size();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let map = Arc::clone(&map);
            thread::spawn(move || {
                let base = map.reserve(16 * page).unwrap();
                for i in 0..CYCLES {
                    let cookie = (t << 32 | i).to_ne_bytes().repeat(64);
                    let addr = base + (i as usize % 8) * 2 * page;
                    let segs = [Segment::new(Prot::READ, addr, 2 * page, &cookie)];
                    let key = map.initialize(&InitRequest::new(&segs, &[])).unwrap();
                    // SAFETY: the region is live and readable until deinitialize below, and
                    // only this thread knows its key.
                    let bytes = unsafe { common::read(addr, 2 * page) };
                    assert_eq!(&bytes[..cookie.len()], &cookie[..], "thread {t} cycle {i}");
                    assert!(bytes[cookie.len()..].iter().all(|b| *b == 0), "stale bytes");
                    map.deinitialize(key).unwrap();
                }
                map.release(base).unwrap();
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    assert_eq!((map.slab_count(), map.region_count()), (0, 0));
}

for_each_host!(eight_threads_each_see_only_their_own_cookies,);
