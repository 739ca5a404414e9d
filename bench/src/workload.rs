//! The workloads W1-W4 (described in `BENCHMARKS.md`), driven through [`Contender`] so that every contender
//! runs exactly the same sequence of requests with the same blob.
//!
//! # Safety
//!
//! Calls the blob, and reads the rodata, of regions a contender reports live.
#![expect(unsafe_code, reason = "runs JIT code and reads JIT rodata")]

use std::hint::black_box;
use std::time::{Duration, Instant};

use crate::blob::{self, padded};
use crate::contenders::{page_ceil, page_size, Contender, Layout, Token};
use crate::cpu::thread_time;
use crate::rng::Rng;
use crate::rss;

/// Regions live at once in the churn workload.
const CHURN_LIVE: usize = 64;
/// Smallest and largest churn blob.
const CHURN_SIZES: (usize, usize) = (16, 16 * 1024);
/// The churn's random seed, the same for every contender.
const CHURN_SEED: u64 = 0x6d61_7063_6f72_6521;
/// Other regions live in the slab while the crowded workload cycles one more.
const CROWD: usize = 4095;
/// Regions live at once in the RSS workload.
pub(crate) const RSS_REGIONS: usize = 1000;
/// Size of the W1b and W2 blob, and of the rodata.
const RODATA: usize = 64;

/// One workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Workload {
    /// Initialize one code region of this many bytes, call it, deinitialize it.
    Cycle(usize),
    /// Cycle with an RX code page, an R rodata page and one finalize/dealloc pair.
    CycleRodata,
    /// Initialize this many 4 KiB regions, call each, deinitialize them in one batch.
    Batch(usize),
    /// Free a random half of 64 live regions of random size (16 B-16 KiB) and refill it.
    Churn,
    /// The 4 KiB cycle with 4,095 other regions live in the same slab: table lookups are
    /// O(log n), so it should cost about what the plain cycle costs.
    Crowded,
    /// RSS with 1000 live 4 KiB regions, after deinitializing them, after releasing.
    Rss,
}

/// Every workload, in report order.
pub(crate) const ALL: [Workload; 9] = [
    Workload::Cycle(64),
    Workload::Cycle(4096),
    Workload::Cycle(65536),
    Workload::CycleRodata,
    Workload::Batch(16),
    Workload::Batch(256),
    Workload::Churn,
    Workload::Rss,
    // Last: its 4,095 live regions grow heaps, which would blur W4's RSS deltas.
    Workload::Crowded,
];

impl Workload {
    /// Id for `--only`.
    pub(crate) fn id(self) -> String {
        match self {
            Self::Cycle(64) => "w1-64".into(),
            Self::Cycle(4096) => "w1-4k".into(),
            Self::Cycle(65536) => "w1-64k".into(),
            Self::Cycle(n) => format!("w1-{n}"),
            Self::CycleRodata => "w1b".into(),
            Self::Batch(k) => format!("w2-{k}"),
            Self::Churn => "w3".into(),
            Self::Crowded => "w1-crowded".into(),
            Self::Rss => "w4".into(),
        }
    }

    /// Human label.
    pub(crate) fn label(self) -> String {
        match self {
            Self::Cycle(n) => format!("W1 {}", bytes(n)),
            Self::CycleRodata => "W1b code+rodata+actions".into(),
            Self::Batch(k) => format!("W2 batch {k}"),
            Self::Churn => "W3 churn".into(),
            Self::Crowded => format!("W1 4 KiB, {CROWD} others live"),
            Self::Rss => "W4 RSS".into(),
        }
    }

    /// Whether the workload is timed (W4 is not).
    pub(crate) fn timed(self) -> bool {
        self != Self::Rss
    }

    /// Operations per call of [`Bench::run`]: counts are rounded up to multiples of this.
    pub(crate) fn unit(self) -> u64 {
        match self {
            Self::Batch(k) => k as u64,
            Self::Churn => (CHURN_LIVE / 2) as u64,
            _ => 1,
        }
    }

    fn layout(self) -> Layout {
        let page = page_size();
        match self {
            Self::Cycle(n) => Layout {
                slots: 1,
                slot_bytes: page_ceil(n),
            },
            Self::CycleRodata => Layout {
                slots: 1,
                slot_bytes: 2 * page,
            },
            Self::Batch(k) => Layout {
                slots: k,
                slot_bytes: page,
            },
            Self::Churn => Layout {
                slots: CHURN_LIVE,
                slot_bytes: page_ceil(CHURN_SIZES.1),
            },
            Self::Crowded => Layout {
                slots: CROWD + 1,
                slot_bytes: page,
            },
            Self::Rss => Layout {
                slots: RSS_REGIONS,
                slot_bytes: page,
            },
        }
    }
}

/// `4 KiB` style.
pub(crate) fn bytes(n: usize) -> String {
    if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} B")
    }
}

/// One workload set up on one contender: the blob, the live regions, the generator.
/// Pre-sized so that running it allocates nothing itself.
#[derive(Debug)]
pub(crate) struct Bench {
    workload: Workload,
    blob: Vec<u8>,
    rodata: Vec<u8>,
    live: Vec<Token>,
    order: Vec<usize>,
    rng: Rng,
}

/// Calls the blob of a live region.
fn call(token: &Token) {
    // SAFETY: every contender returns the execution address of a copy of the blob, made
    // executable and coherent by its `init`; the region stays live until its `deinit`.
    unsafe { blob::call(token.exec) };
}

/// Reads the rodata of a W1b region back.
fn check_rodata(token: &Token, expected: u8) {
    let p: *const u8 = std::ptr::with_exposed_provenance(token.rodata);
    // SAFETY: `rodata` is the address of the region's rodata copy, readable while it lives.
    let got = unsafe { p.read_volatile() };
    assert_eq!(got, expected, "rodata");
}

impl Bench {
    /// Prepares `contender` for `workload` (untimed): reserves, and for the churn fills the
    /// live set.
    pub(crate) fn new(workload: Workload, contender: &mut dyn Contender) -> Self {
        let layout = workload.layout();
        let blob = match workload {
            Workload::Cycle(n) => padded(n),
            Workload::CycleRodata => padded(RODATA),
            Workload::Batch(_) | Workload::Crowded | Workload::Rss => padded(page_size()),
            Workload::Churn => padded(CHURN_SIZES.1),
        };
        let rodata = (0..RODATA).map(|i| i as u8 ^ 0x5a).collect();
        contender.prepare(layout);
        let mut bench = Self {
            workload,
            blob,
            rodata,
            live: Vec::with_capacity(layout.slots),
            order: (0..layout.slots).collect(),
            rng: Rng(CHURN_SEED),
        };
        if workload == Workload::Churn {
            for _ in 0..CHURN_LIVE {
                let size = bench.rng.range(CHURN_SIZES.0, CHURN_SIZES.1);
                let token = contender.init(&bench.blob[..size]);
                call(&token);
                bench.live.push(token);
            }
        }
        if workload == Workload::Crowded {
            for _ in 0..CROWD {
                let token = contender.init(&bench.blob);
                call(&token);
                bench.live.push(token);
            }
        }
        bench
    }

    /// Runs at least `ops` operations (rounded up to the workload's unit); returns how many.
    pub(crate) fn run(&mut self, contender: &mut dyn Contender, ops: u64) -> u64 {
        let unit = self.workload.unit();
        let rounds = ops.div_ceil(unit).max(1);
        for _ in 0..rounds {
            match self.workload {
                Workload::Cycle(_) | Workload::Crowded => {
                    let token = contender.init(&self.blob);
                    call(&token);
                    contender.deinit(black_box(token));
                }
                Workload::CycleRodata => {
                    let token = contender.init_with_rodata(&self.blob, &self.rodata);
                    call(&token);
                    check_rodata(&token, self.rodata[0]);
                    contender.deinit_with_rodata(black_box(token));
                }
                Workload::Batch(k) => {
                    for _ in 0..k {
                        let token = contender.init(&self.blob);
                        call(&token);
                        self.live.push(token);
                    }
                    contender.deinit_batch(&self.live);
                    self.live.clear();
                }
                Workload::Churn => self.churn_round(contender),
                Workload::Rss => unreachable!("W4 is not timed"),
            }
        }
        rounds * unit
    }

    /// Frees a random half of the live set, then refills it with new random sizes.
    fn churn_round(&mut self, contender: &mut dyn Contender) {
        let half = CHURN_LIVE / 2;
        // Partial Fisher-Yates: the first `half` entries of `order` are a random subset.
        for i in 0..half {
            let j = self.rng.range(i, CHURN_LIVE - 1);
            self.order.swap(i, j);
        }
        for &i in &self.order[..half] {
            contender.deinit(self.live[i]);
        }
        for k in 0..half {
            let i = self.order[k];
            let size = self.rng.range(CHURN_SIZES.0, CHURN_SIZES.1);
            let token = contender.init(&self.blob[..size]);
            call(&token);
            self.live[i] = token;
        }
    }

    /// Deinitializes whatever is live and undoes `prepare` (untimed).
    pub(crate) fn finish(mut self, contender: &mut dyn Contender) {
        for token in self.live.drain(..) {
            contender.deinit(token);
        }
        contender.finish();
    }
}

/// One timed sample: ops per second of thread CPU time and of wall time, allocations made,
/// operations done.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) ops_per_sec: f64,
    pub(crate) wall_ops_per_sec: f64,
    pub(crate) allocations: u64,
    pub(crate) ops: u64,
}

/// Runs `ops` operations and times them.
pub(crate) fn sample(bench: &mut Bench, contender: &mut dyn Contender, ops: u64) -> Sample {
    let allocs = crate::alloc_count::allocations();
    let wall = Instant::now();
    let cpu = thread_time();
    let ops = bench.run(contender, ops);
    let cpu = thread_time() - cpu;
    let wall = wall.elapsed();
    let allocations = crate::alloc_count::allocations() - allocs;
    Sample {
        ops_per_sec: ops as f64 / cpu.as_secs_f64(),
        wall_ops_per_sec: ops as f64 / wall.as_secs_f64(),
        allocations,
        ops,
    }
}

/// Warms up for about `warm` and returns the operation count that takes about `target`.
pub(crate) fn calibrate(
    bench: &mut Bench,
    contender: &mut dyn Contender,
    warm: Duration,
    target: Duration,
) -> u64 {
    let unit = bench.workload.unit();
    let mut ops = unit;
    let mut spent = Duration::ZERO;
    loop {
        let start = thread_time();
        let done = bench.run(contender, ops);
        let took = thread_time() - start;
        spent += took;
        if spent >= warm && done >= 8 * unit {
            let per_op = took.as_secs_f64() / done as f64;
            let want = (target.as_secs_f64() / per_op) as u64;
            return want.div_ceil(unit).max(1) * unit;
        }
        ops = done * 2;
    }
}

/// RSS of one contender in W4, in KiB above the baseline taken just before.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RssResult {
    pub(crate) live: i64,
    /// Of `live`, shared memory (a dual mapping's memfd pages, counted once per view).
    pub(crate) live_shmem: i64,
    pub(crate) deinitialized: i64,
    pub(crate) released: i64,
}

/// W4: 1000 live 4 KiB regions (each blob fills its page), then deinitialize all in one
/// batch, then release.
pub(crate) fn rss(contender: &mut dyn Contender) -> RssResult {
    let baseline = rss::resident_kib();
    let shmem = rss::shmem_kib();
    let mut bench = Bench::new(Workload::Rss, contender);
    for _ in 0..RSS_REGIONS {
        let token = contender.init(&bench.blob);
        call(&token);
        bench.live.push(token);
    }
    let live = rss::resident_kib() - baseline;
    let live_shmem = rss::shmem_kib() - shmem;
    contender.deinit_batch(&bench.live);
    bench.live.clear();
    let deinitialized = rss::resident_kib() - baseline;
    bench.finish(contender);
    let released = rss::resident_kib() - baseline;
    RssResult {
        live,
        live_shmem,
        deinitialized,
        released,
    }
}
