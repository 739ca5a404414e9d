//! Stable replay of the fuzz inputs: every file in `fuzz/regressions/*/` and `fuzz/corpus/*/`
//! runs through the same driver as the fuzz targets (decoded as libfuzzer-sys does: inputs shorter than the size hint are skipped,
//! the rest decoded with `arbitrary_take_rest`), plus a smoke test over seeded random buffers,
//! plus the outcome tally (`op:variant` pairs reached by the corpus, and the ones missing),
//! plus the recording-host inputs once more with the full sweep after every operation next to
//! the incremental check the fuzz targets use (`Checks::Both`).
//!
//! `cargo test -p mapcore-tests --test replay -- --nocapture` prints the figures.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};
use mapcore_tests::driver::{run, run_checked, Checks, Tally};
use mapcore_tests::input::{encode, BatchInput, CoreInput};
use mapcore_tests::std_host::run_std_with;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files of `dir`, sorted; none if it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Decodes like libfuzzer-sys 0.4's `fuzz_target!`.
fn decode<'a, T: Arbitrary<'a>>(bytes: &'a [u8]) -> Option<T> {
    if bytes.len() < T::size_hint(0).0 {
        return None;
    }
    T::arbitrary_take_rest(Unstructured::new(bytes)).ok()
}

/// Which target's input a file is, by its directory name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Core,
    Batch,
    Std,
}

fn target_of(path: &Path) -> Target {
    let dir = path
        .parent()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .unwrap_or("");
    match dir {
        "batch_ops" => Target::Batch,
        "std_ops" => Target::Std,
        _ => Target::Core,
    }
}

/// How an input ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replayed {
    /// Too short to decode.
    Skipped,
    /// On a host that writes through an alias (lazy protection), or not.
    Ran { alias: bool },
}

/// Runs one input.
fn replay(target: Target, bytes: &[u8], tally: Option<&mut Tally>) -> Replayed {
    let setup = match target {
        Target::Core => decode::<CoreInput>(bytes).map(|i| {
            run(&i.setup, &i.ops, tally);
            i.setup
        }),
        Target::Batch => decode::<BatchInput>(bytes).map(|i| {
            run(&i.setup, &i.ops(), tally);
            i.setup
        }),
        // The alias bit picks the dual-mapped host, else the flip host.
        Target::Std => decode::<CoreInput>(bytes).map(|i| {
            // Other test threads map memory too: no "released range is unmapped" check.
            run_std_with(&i.setup, &i.ops, tally, false);
            i.setup
        }),
    };
    setup.map_or(Replayed::Skipped, |s| Replayed::Ran {
        alias: s.writes_through_alias(),
    })
}

/// Runs one recording-host input (core or batch) with the given checks; returns whether it
/// decoded.
fn replay_checked(target: Target, bytes: &[u8], checks: Checks) -> bool {
    match target {
        Target::Core => decode::<CoreInput>(bytes)
            .map(|i| run_checked(&i.setup, &i.ops, None, checks))
            .is_some(),
        Target::Batch => decode::<BatchInput>(bytes)
            .map(|i| run_checked(&i.setup, &i.ops(), None, checks))
            .is_some(),
        Target::Std => false,
    }
}

/// What [`replay_dir`] ran.
#[derive(Debug, Default)]
struct Counts {
    ran: usize,
    /// Of `ran`, on an alias host.
    alias: usize,
    skipped: usize,
}

/// Replays every input of `dir`; outcomes go to `tally`, and those of alias-mode inputs to
/// `alias_tally` as well.
fn replay_dir(
    dir: &Path,
    mut tally: Option<&mut Tally>,
    mut alias_tally: Option<&mut Tally>,
) -> Counts {
    let mut counts = Counts::default();
    for path in files(dir) {
        let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let target = target_of(&path);
        let mut one = Tally::new();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            replay(target, &bytes, tally.is_some().then_some(&mut one))
        }));
        let alias = match result {
            Ok(Replayed::Ran { alias }) => alias,
            Ok(Replayed::Skipped) => {
                counts.skipped += 1;
                continue;
            }
            Err(_) => panic!("{} fails (see the panic above)", path.display()),
        };
        counts.ran += 1;
        counts.alias += usize::from(alias);
        for (pair, n) in one {
            if alias {
                if let Some(t) = alias_tally.as_deref_mut() {
                    *t.entry(pair.clone()).or_default() += n;
                }
            }
            if let Some(t) = tally.as_deref_mut() {
                *t.entry(pair).or_default() += n;
            }
        }
    }
    counts
}

#[test]
fn regressions_replay() {
    let mut total = 0;
    for target in ["core_ops", "batch_ops", "std_ops"] {
        let c = replay_dir(&fuzz_dir().join("regressions").join(target), None, None);
        println!(
            "regressions/{target}: {} replayed ({} on an alias host), {} too short to decode",
            c.ran, c.alias, c.skipped
        );
        total += c.ran;
    }
    assert!(
        total > 0,
        "no regression input found under {}",
        fuzz_dir().display()
    );
}

#[test]
fn corpus_replays() {
    for target in ["core_ops", "batch_ops", "std_ops"] {
        let c = replay_dir(&fuzz_dir().join("corpus").join(target), None, None);
        println!(
            "corpus/{target}: {} replayed ({} on an alias host), {} too short to decode",
            c.ran, c.alias, c.skipped
        );
        assert!(c.ran > 0, "corpus/{target} is empty");
        // The recording-host corpora cover lazy protection too.
        if target != "std_ops" {
            assert!(c.alias > 0, "corpus/{target} has no alias-host input");
            assert!(
                c.alias < c.ran,
                "corpus/{target} has only alias-host inputs"
            );
        }
    }
}

/// The fuzz targets check, after each operation, only what the operation could have changed
/// (`Sweep::Changed` in the driver). Here every recording-host corpus and regression input runs
/// with that check and a full sweep of every page after every operation (`Checks::Both`): the
/// full sweep must never find what the incremental check missed.
#[test]
fn incremental_check_agrees_with_full_sweep() {
    let mut ran = 0;
    for dir in ["corpus", "regressions"] {
        for target in ["core_ops", "batch_ops"] {
            for path in files(&fuzz_dir().join(dir).join(target)) {
                let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let result = std::panic::catch_unwind(|| {
                    replay_checked(target_of(&path), &bytes, Checks::Both)
                });
                match result {
                    Ok(decoded) => ran += usize::from(decoded),
                    Err(_) => panic!("{} fails (see the panic above)", path.display()),
                }
            }
        }
    }
    println!("incremental and full checks: {ran} inputs agree");
    assert!(ran > 0);
}

/// The encoder the directed scenarios become fuzz seeds with: every scenario decodes back
/// to itself, as the fuzz target would read it.
#[test]
fn directed_scenarios_encode_as_seeds() {
    for (name, setup, ops) in scenarios::directed() {
        let input = CoreInput { setup, ops };
        let bytes = encode::core(&input);
        assert_eq!(decode::<CoreInput>(&bytes), Some(input), "{name}");
    }
}

/// Writes the alias scenarios as `core_ops` seeds into `$MAPCORE_SEEDS` (how the
/// `alias-*` seeds of `fuzz/corpus/core_ops` were made).
#[test]
#[ignore = "writes files; run by hand to make seeds"]
fn write_alias_seeds() {
    let dir = PathBuf::from(std::env::var_os("MAPCORE_SEEDS").expect("MAPCORE_SEEDS"));
    fs::create_dir_all(&dir).unwrap();
    for (i, (_, setup, ops)) in scenarios::alias_directed().into_iter().enumerate() {
        let bytes = encode::core(&CoreInput { setup, ops });
        fs::write(dir.join(format!("alias-directed-{i}")), bytes).unwrap();
    }
}

/// xorshift64*: deterministic, no extra crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

const SMOKE: usize = if cfg!(debug_assertions) {
    2_000
} else {
    20_000
};

#[test]
fn smoke_random_buffers() {
    let mut rng = Rng(0x6d61_7063_6f72_6521);
    let mut decoded = 0;
    for i in 0..SMOKE {
        let len = (rng.next() % 400) as usize;
        let bytes = rng.bytes(len);
        let target = if i % 2 == 0 {
            Target::Core
        } else {
            Target::Batch
        };
        decoded += usize::from(replay(target, &bytes, None) != Replayed::Skipped);
    }
    println!("smoke: {decoded} of {SMOKE} random buffers decoded and replayed");
    assert!(decoded > SMOKE / 2);
}

/// Every `op:variant` pair some sequential input can reach on the recording host, each with why
/// (the `# Errors` docs of `JitMap` and the host's fault injection). `[entry]` pairs are
/// per-entry batch reports; `+DeallocFailed`: a host error that also counts failed dealloc
/// actions. `outcome_tally` fails if the corpus, the directed scenarios and the regressions
/// together miss one of them.
const REACHABLE: &[(&str, &str)] = &[
    ("reserve:Ok", "a page-multiple size below the maximum"),
    ("reserve:InvalidSize", "size zero or not a page multiple"),
    ("reserve:TooLarge", "size above Config::max_reservation"),
    (
        "reserve:CapacityExceeded(Slabs)",
        "a fifth slab in a 4-slab table",
    ),
    ("reserve:Host", "the host's reserve fails (fault plan)"),
    ("initialize:Ok", "a valid request in free pages"),
    (
        "initialize:CapacityExceeded(Segments)",
        "more than MAX_SEGMENTS segments",
    ),
    (
        "initialize:CapacityExceeded(ActionPairs)",
        "more than MAX_ACTION_PAIRS pairs",
    ),
    (
        "initialize:CapacityExceeded(Regions)",
        "a seventh region in a 6-region table",
    ),
    (
        "initialize:CapacityExceeded(Spans)",
        "a claim the 12-entry span table cannot hold",
    ),
    (
        "initialize:NoStandardSegment",
        "only Finalize-lifetime segments",
    ),
    (
        "initialize:Misaligned",
        "a segment address off a page boundary",
    ),
    (
        "initialize:Overflow",
        "a segment end past the address space",
    ),
    (
        "initialize:ContentTooLong",
        "content longer than its segment",
    ),
    ("initialize:WriteExecute", "an RWX segment, W^X enforced"),
    ("initialize:SharedPage", "two segments on one page"),
    ("initialize:NotInSlab", "a segment in no slab"),
    (
        "initialize:SpansSlabs",
        "a segment past its slab's end, or in another slab",
    ),
    (
        "initialize:Busy",
        "a slab whose release failed (kept for a retry)",
    ),
    (
        "initialize:Overlap",
        "pages of a live region or quarantined pages",
    ),
    (
        "initialize:KeyInUse",
        "an empty key segment at a live region's key",
    ),
    (
        "initialize:Host",
        "a protect or flush fails; the rollback works",
    ),
    (
        "initialize:Host(quarantined)",
        "a protect fails and so does the rollback's",
    ),
    (
        "initialize:Host+DeallocFailed",
        "the Finalize pages' reset and a cleanup dealloc fail",
    ),
    (
        "initialize:Host(quarantined)+DeallocFailed",
        "the Finalize pages' reset, a cleanup dealloc and the rollback's reset fail",
    ),
    (
        "initialize:FinalizeFailed",
        "a finalize action fails; the rollback works",
    ),
    (
        "initialize:FinalizeFailed(quarantined)",
        "a finalize action and the rollback's reset fail",
    ),
    ("deinitialize:Ok", "the key of a live region"),
    (
        "deinitialize:UnknownKey",
        "an address in a slab that is no key (also a stale key)",
    ),
    (
        "deinitialize:InteriorAddress",
        "an address inside a live region, not its key",
    ),
    ("deinitialize:NotInAnySlab", "an address in no slab"),
    ("deinitialize:DeallocFailed", "a dealloc action fails"),
    (
        "deinitialize:Host(quarantined)",
        "the protect back to read-write fails",
    ),
    (
        "deinitialize:Host(quarantined)+DeallocFailed",
        "a dealloc action and the protect back fail",
    ),
    (
        "deinitialize_multiple:Ok",
        "every entry a live key, or no entry",
    ),
    ("deinitialize_multiple:Batch", "some entry fails"),
    (
        "deinitialize_multiple[entry]:UnknownKey",
        "as deinitialize; also a repeated key",
    ),
    (
        "deinitialize_multiple[entry]:InteriorAddress",
        "as deinitialize",
    ),
    (
        "deinitialize_multiple[entry]:NotInAnySlab",
        "as deinitialize",
    ),
    (
        "deinitialize_multiple[entry]:DeallocFailed",
        "as deinitialize",
    ),
    (
        "deinitialize_multiple[entry]:Host(quarantined)",
        "a merged reset fails",
    ),
    (
        "deinitialize_multiple[entry]:Host(quarantined)+DeallocFailed",
        "a merged reset and a dealloc action of the entry fail",
    ),
    ("release:Ok", "the base of a slab"),
    (
        "release:NotSlabBase",
        "an address inside a slab, not its base",
    ),
    ("release:NotInAnySlab", "an address in no slab"),
    (
        "release:Host",
        "the unmap fails (the slab is kept for a retry)",
    ),
    (
        "release:Host+DeallocFailed",
        "a dealloc action and the unmap fail",
    ),
    (
        "release:DeallocFailed",
        "a dealloc action of a live region fails",
    ),
    (
        "release_multiple:Ok",
        "every entry a slab base, or no entry",
    ),
    ("release_multiple:Batch", "some entry fails"),
    ("release_multiple[entry]:NotSlabBase", "as release"),
    (
        "release_multiple[entry]:NotInAnySlab",
        "as release; also a repeated base",
    ),
    ("release_multiple[entry]:Host", "as release"),
    ("release_multiple[entry]:Host+DeallocFailed", "as release"),
    ("release_multiple[entry]:DeallocFailed", "as release"),
    ("shutdown:Ok", "every slab released"),
    ("shutdown:Batch", "an unmap fails or a dealloc action fails"),
];

/// The pairs of [`REACHABLE`].
fn reachable() -> impl Iterator<Item = &'static str> {
    REACHABLE.iter().map(|(pair, _)| *pair)
}

/// Pairs the contract allows but no sequential input on the recording host can produce, and
/// why.
const UNREACHABLE: &[(&str, &str)] = &[
    (
        "reserve:HostInvariant",
        "the recording host never returns a bad base",
    ),
    (
        "initialize:Busy (region in progress)",
        "needs a concurrent initialize; covered by tests/tests/concurrency.rs",
    ),
    (
        "deinitialize:Busy",
        "needs a concurrent deinitialize of the same region (concurrency.rs)",
    ),
    (
        "release:Busy",
        "needs a concurrent release or a region in progress (concurrency.rs)",
    ),
];

#[test]
fn outcome_tally() {
    let mut tally = Tally::new();
    let mut alias = Tally::new();
    for target in ["core_ops", "batch_ops"] {
        let dir = fuzz_dir().join("corpus").join(target);
        replay_dir(&dir, Some(&mut tally), Some(&mut alias));
    }
    let fuzzed = tally.clone();
    for (_, setup, ops) in scenarios::directed() {
        let mut one = Tally::new();
        run(&setup, &ops, Some(&mut one));
        for (pair, n) in one {
            if setup.writes_through_alias() {
                *alias.entry(pair.clone()).or_default() += n;
            }
            *tally.entry(pair).or_default() += n;
        }
    }
    for target in ["core_ops", "batch_ops"] {
        let dir = fuzz_dir().join("regressions").join(target);
        replay_dir(&dir, Some(&mut tally), Some(&mut alias));
    }
    println!(
        "outcome tally of the alias-host (lazy protection) inputs ({} pairs):",
        alias.len()
    );
    for (pair, n) in &alias {
        println!("  {pair:<50} {n}");
    }
    let alias_missing: Vec<&str> = reachable().filter(|p| !alias.contains_key(*p)).collect();
    println!("reachable pairs no alias-host input reaches: {alias_missing:?}");
    println!(
        "outcome tally over the corpus and regressions ({} pairs):",
        tally.len()
    );
    for (pair, n) in &tally {
        println!("  {pair:<50} {n}");
    }
    let reached: BTreeSet<&str> = tally.keys().map(String::as_str).collect();
    let missing: Vec<&str> = reachable().filter(|p| !reached.contains(p)).collect();
    let unexpected: Vec<&str> = reached
        .iter()
        .copied()
        .filter(|p| !reachable().any(|r| r == *p))
        .collect();
    println!("reachable pairs never reached: {missing:?}");
    let by_corpus: Vec<&str> = reachable().filter(|p| !fuzzed.contains_key(*p)).collect();
    println!("reachable pairs the fuzz corpus alone never reaches (directed scenarios do): {by_corpus:?}");
    println!("pairs reached that the contract list does not expect: {unexpected:?}");
    for (pair, why) in UNREACHABLE {
        println!("not reachable here: {pair}: {why}");
    }
    let by_op: BTreeMap<&str, usize> = tally.iter().fold(BTreeMap::new(), |mut m, (k, n)| {
        *m.entry(k.split(':').next().unwrap_or("")).or_default() += n;
        m
    });
    println!("outcomes per operation: {by_op:?}");
    assert!(
        unexpected.is_empty(),
        "outcomes outside the contract: {unexpected:?}"
    );
    assert!(
        missing.is_empty(),
        "reachable outcomes no input reaches (the corpus, the directed scenarios and the \
         regressions lost them): {missing:?}"
    );
    assert!(
        alias_missing.is_empty(),
        "lazy protection misses reachable outcomes: {alias_missing:?}"
    );
}

// ---- directed scenarios: fixed bugs, and checks that the oracle can fail ----

mod scenarios {
    use mapcore::testing::RecordingHost;
    use mapcore::{
        Action, ActionError, ActionPair, Capabilities, Config, Error, InitRequest, JitMap,
        Lifetime, Prot, Segment,
    };
    use mapcore_tests::driver::{
        configs, drive, drive_checked, recording_subject, run, Checks, Probe, Recording, Sweep,
    };
    use mapcore_tests::input::{AddrSpec, Fault, InitSpec, Op, PairSpec, SegSpec, Setup, SizeSpec};
    use mapcore_tests::model::{CallM, FaultPlan, Model};

    fn seg(place: u8, page: i8, size: u8, group: u8, content: u8) -> SegSpec {
        SegSpec {
            place,
            page,
            size,
            extra: 0,
            group,
            content,
        }
    }

    fn init(segs: Vec<SegSpec>, pairs: Vec<PairSpec>) -> Op {
        Op::Initialize {
            req: InitSpec {
                segs,
                pairs,
                over: 0,
            },
            fault: Fault::None,
        }
    }

    fn reserve(pages: u8) -> Op {
        Op::Reserve {
            size: SizeSpec {
                kind: 0,
                n: pages - 1,
            },
            fault: Fault::None,
        }
    }

    fn live_key(pick: u8) -> AddrSpec {
        AddrSpec {
            kind: 0,
            pick,
            off: 0,
        }
    }

    /// Scenarios for outcomes the fuzzer rarely reaches on its own (full tables need many
    /// successful operations in a row), replayed by `directed_scenarios` and the tally.
    pub(super) fn directed() -> Vec<(&'static str, Setup, Vec<Op>)> {
        let fixed = SETUP;
        let mut regions = vec![reserve(16)];
        regions.extend((0..7).map(|i| init(vec![seg(0, i, 1, 1, 1)], vec![])));
        let mut spans = vec![reserve(16)];
        for i in 0..5 {
            spans.push(init(
                vec![
                    seg(0, 3 * i, 1, 1, 1),
                    seg(5, 0, 1, 5, 1),
                    seg(5, 0, 1, 1, 4),
                ],
                vec![],
            ));
        }
        let release = vec![
            reserve(8),
            init(
                vec![seg(0, 0, 1, 1, 1)],
                vec![PairSpec {
                    finalize: 1,
                    dealloc: 3,
                }],
            ),
            Op::Release {
                base: AddrSpec {
                    kind: 0,
                    pick: 0,
                    off: 0,
                },
                fault: Fault::None,
            },
        ];
        // Double faults: dealloc actions fail in the same call as a host call.
        let failing_pair = || PairSpec {
            finalize: 1,
            dealloc: 3,
        };
        // An RX region: its deinitialize protects back on every host (an alias host too,
        // when it discards), and that protect is the first fallible call.
        let one_region = || {
            vec![
                reserve(8),
                init(vec![seg(0, 0, 1, 5, 1)], vec![failing_pair()]),
            ]
        };
        let mut deinit_twice = one_region();
        deinit_twice.push(Op::Deinitialize {
            key: live_key(0),
            fault: Fault::Nth { k: 0, errno: 0 },
        });
        let mut release_twice = one_region();
        release_twice.push(Op::Release {
            base: live_key(0),
            fault: Fault::Nth { k: 0, errno: 0 },
        });
        // R at page 0, Finalize RX at page 2: protects (0, 1) and the flush (2), the finalize
        // action, then the Finalize page's protect back (3), which fails, and the rollback's
        // first protect (4).
        let init_thrice = vec![
            reserve(8),
            Op::Initialize {
                req: InitSpec {
                    segs: vec![seg(0, 0, 1, 1, 1), seg(0, 2, 1, 0x1d, 1)],
                    pairs: vec![failing_pair()],
                    over: 0,
                },
                fault: Fault::Two {
                    k1: 3,
                    k2: 4,
                    errno: 0,
                },
            },
        ];
        let mut release_entry_twice = one_region();
        release_entry_twice.push(Op::ReleaseMultiple {
            bases: vec![live_key(0)],
            fault: Fault::Nth { k: 0, errno: 0 },
        });
        let mut init_twice = init_thrice.clone();
        if let Some(Op::Initialize { fault, .. }) = init_twice.last_mut() {
            *fault = Fault::Nth { k: 3, errno: 0 };
        }
        let mut double_faults = Vec::new();
        for (setup, prefix) in [(fixed, ""), (ALIAS_DISCARD, "alias: ")] {
            double_faults.extend([
                (
                    prefix,
                    "deinitialize: a dealloc action and the reset fail",
                    setup,
                    deinit_twice.clone(),
                ),
                (
                    prefix,
                    "release: a dealloc action and the unmap fail",
                    setup,
                    release_twice.clone(),
                ),
                (
                    prefix,
                    "release_multiple: a dealloc action and the entry's unmap fail",
                    setup,
                    release_entry_twice.clone(),
                ),
                (
                    prefix,
                    "initialize: the Finalize reset and a cleanup dealloc fail",
                    setup,
                    init_twice.clone(),
                ),
                (
                    prefix,
                    "initialize: the Finalize reset, a cleanup dealloc and the rollback fail",
                    setup,
                    init_thrice.clone(),
                ),
            ]);
        }
        let double_faults = double_faults.into_iter().map(|(prefix, name, setup, ops)| {
            let name: &'static str = if prefix.is_empty() {
                name
            } else {
                String::leak(format!("{prefix}{name}"))
            };
            (name, setup, ops)
        });
        double_faults
            .chain([
                ("region table full", fixed, regions.clone()),
                ("region table full", fixed, regions.clone()),
                ("span table full", fixed, spans.clone()),
                (
                    "release with a failing dealloc action",
                    fixed,
                    release.clone(),
                ),
                ("alias: region table full", ALIAS_RETAIN, regions),
                ("alias: span table full", ALIAS_RETAIN, spans),
                (
                    "alias: release with a failing dealloc action",
                    ALIAS_RETAIN,
                    release,
                ),
            ])
            .chain(alias_directed())
            .collect()
    }

    /// An alias host under the retain policy: freed pages keep their protection.
    const ALIAS_RETAIN: Setup = Setup {
        page: 0,
        flags: 0x81,
        max_pages: 20,
    };

    /// An alias host under the discard policy: freed code goes back to read-write.
    const ALIAS_DISCARD: Setup = Setup {
        page: 0,
        flags: 0x80,
        max_pages: 20,
    };

    /// One segment of `pages` pages (1 to 3) at page `at` of the first slab, protection bits
    /// `prot` (1 read, 2 write, 4 execute), no content.
    fn at(at: i8, pages: u8, prot: u8) -> SegSpec {
        seg(0, at, pages, prot, 0)
    }

    fn deinit(pick: u8) -> Op {
        Op::Deinitialize {
            key: live_key(pick),
            fault: Fault::None,
        }
    }

    /// Scenarios of lazy protection (alias hosts) whose host calls depend on what a full
    /// fixed span table (12 entries in the driver) forgot; also seeds of the fuzz corpora.
    pub(super) fn alias_directed() -> Vec<(&'static str, Setup, Vec<Op>)> {
        // Five freed one-page segments (RX R RX R RX) and a live region of five: ten entries.
        // Three more make room by forgetting the lowest record, an RX one: the slab has lost a
        // protection. Then a never-used read-write page needs a protect to read-write, and the
        // forgotten RX page one to RX.
        let forgets = vec![
            reserve(16),
            init(
                (0..5).map(|i| at(i, 1, [5, 1][i as usize % 2])).collect(),
                vec![],
            ),
            init((5..10).map(|i| at(i, 1, 1)).collect(), vec![]),
            deinit(0),
            init((10..13).map(|i| at(i, 1, 3)).collect(), vec![]),
            deinit(1),
            init(vec![at(13, 1, 3)], vec![]),
            init(vec![at(0, 1, 5)], vec![]),
        ];
        // A three-page read-only record and ten live entries; claiming its middle page
        // reserves two entries (the piece below is kept, one is made above), so the record is
        // forgotten: its first page, reused read-only, needs a protect.
        let cut = vec![
            reserve(16),
            init(vec![at(0, 3, 1)], vec![]),
            deinit(0),
            init(
                (3..8).map(|i| at(i, 1, [5, 1][i as usize % 2])).collect(),
                vec![],
            ),
            init(
                (8..13).map(|i| at(i, 1, [5, 1][i as usize % 2])).collect(),
                vec![],
            ),
            init(vec![at(1, 1, 1)], vec![]),
            deinit(0),
            init(vec![at(0, 1, 1)], vec![]),
        ];
        // Freed code goes back to read-write and is discarded, in runs apart from the pages
        // that keep their protection; reused, only what differs is protected.
        let discard = vec![
            reserve(8),
            init(
                vec![at(0, 1, 5), at(1, 1, 5), at(2, 1, 1), at(3, 1, 3)],
                vec![],
            ),
            deinit(0),
            init(vec![at(0, 2, 3), at(2, 1, 5), at(3, 1, 1)], vec![]),
        ];
        // Reused RX pages need no protect, the R segment does and its protect fails: the
        // rollback sends the R pages (in doubt) back to read-write, the RX page keeps RX.
        let rollback = vec![
            reserve(8),
            init(vec![at(0, 1, 5)], vec![]),
            deinit(0),
            Op::Initialize {
                req: InitSpec {
                    segs: vec![at(0, 1, 5), at(1, 2, 1)],
                    pairs: vec![],
                    over: 0,
                },
                fault: Fault::Nth { k: 0, errno: 0 },
            },
            init(vec![at(0, 1, 5), at(1, 2, 1)], vec![]),
        ];
        // A full table, and a claim over two whole read-only records: it reserves one entry,
        // so the lowest record (page 0, read-only) is forgotten; reused, page 0 needs a
        // protect.
        let two = vec![
            reserve(16),
            init(vec![at(0, 1, 1)], vec![]),
            deinit(0),
            init(vec![at(1, 1, 1), at(2, 1, 1)], vec![]),
            deinit(0),
            init(
                (3..8).map(|i| at(i, 1, [5, 1][i as usize % 2])).collect(),
                vec![],
            ),
            init(
                (8..12).map(|i| at(i, 1, [5, 1][i as usize % 2])).collect(),
                vec![],
            ),
            init(vec![at(1, 2, 1)], vec![]),
            deinit(0),
            init(vec![at(0, 1, 1)], vec![]),
        ];
        // A failing finalize action rolls back R (kept, discarded) and RX (in no doubt, but
        // freed code is made read-write when discarded): the pages going back to read-write
        // are reset first.
        let order = vec![
            reserve(8),
            init(vec![at(0, 1, 1)], vec![]),
            deinit(0),
            init(
                vec![at(0, 1, 1), at(1, 1, 5)],
                vec![PairSpec {
                    finalize: 3,
                    dealloc: 0,
                }],
            ),
        ];
        vec![
            (
                "alias: a full table forgets an RX record",
                ALIAS_RETAIN,
                forgets,
            ),
            ("alias: claiming two whole records", ALIAS_RETAIN, two),
            (
                "alias: rollback resets what goes back first",
                ALIAS_DISCARD,
                order,
            ),
            ("alias: claiming inside a record", ALIAS_RETAIN, cut),
            ("alias: freed code discarded", ALIAS_DISCARD, discard),
            ("alias: rollback of pages in doubt", ALIAS_RETAIN, rollback),
        ]
    }

    #[test]
    fn directed_scenarios() {
        for (name, setup, ops) in directed() {
            let mut tally = mapcore_tests::driver::Tally::new();
            run(&setup, &ops, Some(&mut tally));
            println!("{name}: {tally:?}");
        }
    }

    const SETUP: Setup = Setup {
        page: 0,
        flags: 0,
        max_pages: 20,
    };

    /// Region A owns pages 0 and 2, region B page 1; one batch deinitializes both.
    fn interleaved() -> Vec<Op> {
        vec![
            reserve(8),
            init(vec![seg(0, 0, 1, 1, 1), seg(5, 1, 1, 1, 1)], vec![]),
            init(vec![seg(0, 1, 1, 5, 1)], vec![]),
            Op::DeinitializeMultiple {
                keys: vec![live_key(0), live_key(1)],
                fault: Fault::None,
            },
        ]
    }

    /// A batch resets one contiguous span with at most one protect (back to read-write) and
    /// one discard, whichever regions own its pages: pages 0-2 are one span, so one call each.
    #[test]
    fn interleaved_batch_merges_into_one_run() {
        run(&SETUP, &interleaved(), None);
    }

    /// Entries of one batch chunk behave as if processed one by one: a repeated key is unknown
    /// (not `Busy`), and so is an address inside a region an earlier entry retired (not
    /// `InteriorAddress`).
    #[test]
    fn repeated_and_stale_entries_in_one_chunk_are_unknown() {
        let ops = vec![
            reserve(8),
            init(
                vec![seg(0, 0, 2, 1, 0)],
                vec![PairSpec {
                    finalize: 1,
                    dealloc: 1,
                }],
            ),
            Op::DeinitializeMultiple {
                keys: vec![
                    live_key(0),
                    AddrSpec {
                        kind: 6,
                        pick: 0,
                        off: 0,
                    },
                    AddrSpec {
                        kind: 4,
                        pick: 0,
                        off: 1,
                    },
                    live_key(0),
                ],
                fault: Fault::None,
            },
        ];
        run(&SETUP, &ops, None);
    }

    /// The first fuzz failure (a model bug, `regressions/core_ops/model-dup-key-at-slab-end-*`,
    /// recorded before the input format last changed): a region whose only segment is empty
    /// and sits exactly at its slab's end has that end as key; repeated in one batch, the
    /// repeat is outside every slab, so `NotInAnySlab`, as if the entries ran one by one.
    #[test]
    fn repeated_key_at_slab_end_is_outside_every_slab() {
        let ops = vec![
            reserve(3),
            init(vec![seg(0, 3, 0, 1, 0)], vec![]),
            Op::DeinitializeMultiple {
                keys: vec![
                    live_key(0),
                    AddrSpec {
                        kind: 6,
                        pick: 0,
                        off: 0,
                    },
                ],
                fault: Fault::None,
            },
        ];
        run(&SETUP, &ops, None);
    }

    /// An address in quarantined pages that is no key is `UnknownKey`: no live region holds
    /// it, so it is not an `InteriorAddress`.
    #[test]
    fn quarantined_pages_are_not_interior_addresses() {
        let ops = vec![
            reserve(8),
            // Every protect fails: the R segment's protect, then the rollback's: quarantined.
            Op::Initialize {
                req: InitSpec {
                    segs: vec![seg(0, 2, 2, 1, 0)],
                    pairs: vec![],
                    over: 0,
                },
                fault: Fault::Op { op: 0, errno: 0 },
            },
            Op::Deinitialize {
                key: AddrSpec {
                    kind: 5,
                    pick: 0,
                    off: 3,
                },
                fault: Fault::None,
            },
        ];
        run(&SETUP, &ops, None);
    }

    fn nothing(_: &[u8]) -> Result<(), ActionError> {
        Ok(())
    }

    fn failing(_: &[u8]) -> Result<(), ActionError> {
        Err(ActionError::new(7))
    }

    fn no_reuse_map(host: &RecordingHost) -> JitMap<&RecordingHost> {
        JitMap::new(host)
    }

    fn no_reuse_host() -> RecordingHost {
        RecordingHost::with_capabilities(
            4096,
            Capabilities {
                discard: true,
                reuse_executable: false,
                writes_through_alias: false,
            },
        )
    }

    /// With `Capabilities::reuse_executable == false` executable pages are never handed out
    /// again until their slab is released, Finalize-lifetime executable segments included:
    /// initialize keeps them instead of resetting them to read-write.
    #[test]
    fn finalize_exec_pages_are_not_reused_without_reuse_capability() {
        let host = no_reuse_host();
        let map = no_reuse_map(&host);
        let base = map.reserve(4 * 4096).unwrap();
        let segs = [
            Segment::new(Prot::READ_WRITE, base, 4096, &[]),
            Segment::with_lifetime(
                Prot::READ_EXEC,
                Lifetime::Finalize,
                base + 4096,
                4096,
                &[0xc3],
            ),
        ];
        map.initialize(&InitRequest::new(&segs, &[])).unwrap();
        let again = [Segment::new(Prot::READ_WRITE, base + 4096, 4096, &[])];
        assert_eq!(
            map.initialize(&InitRequest::new(&again, &[])),
            Err(Error::Overlap { segment: 0 })
        );
    }

    /// The same for a rollback after the executable protect succeeded.
    #[test]
    fn rolled_back_exec_pages_are_not_reused_without_reuse_capability() {
        let host = no_reuse_host();
        let map = no_reuse_map(&host);
        let base = map.reserve(4 * 4096).unwrap();
        let segs = [Segment::new(Prot::READ_EXEC, base, 4096, &[0xc3])];
        let pair = [ActionPair::new(
            Action::new(failing, &[]).unwrap(),
            Action::new(nothing, &[]).unwrap(),
        )];
        assert!(matches!(
            map.initialize(&InitRequest::new(&segs, &pair)),
            Err(Error::FinalizeFailed { .. })
        ));
        let again = [Segment::new(Prot::READ_WRITE, base, 4096, &[])];
        assert_eq!(
            map.initialize(&InitRequest::new(&again, &[])),
            Err(Error::Overlap { segment: 0 })
        );
    }

    /// The smallest form of `regressions/batch_ops/bug-batch-merges-across-slabs-*`: two
    /// one-page slabs side by side (the host hands out neighbouring ranges), a read-only region
    /// in each, deinitialized in one batch. Each reset stays inside its own reservation; one
    /// `protect([a, a + 2 pages), rw)` across both would make the recording host refuse
    /// ("host call on unreserved pages").
    #[test]
    fn batch_reset_stays_inside_each_slab() {
        let host = RecordingHost::new(4096);
        let map: JitMap<&RecordingHost> = JitMap::new(&host);
        let a = map.reserve(4096).unwrap();
        let b = map.reserve(4096).unwrap();
        assert_eq!(b, a + 4096, "the recording host places slabs side by side");
        let ka = map
            .initialize(&InitRequest::new(
                &[Segment::new(Prot::READ, a, 4096, &[])],
                &[],
            ))
            .unwrap();
        let kb = map
            .initialize(&InitRequest::new(
                &[Segment::new(Prot::READ, b, 4096, &[])],
                &[],
            ))
            .unwrap();
        assert_eq!(
            map.deinitialize_multiple(&[ka, kb], |i, e| panic!("entry {i}: {e:?}")),
            Ok(())
        );
        host.check_map(&map).unwrap();
    }

    /// A model that believes freed pages are discarded, over a map that retains them, must be
    /// caught (stale bytes, missing discard calls).
    #[test]
    fn the_oracle_catches_a_map_that_does_not_discard() {
        let ops = vec![
            reserve(8),
            init(vec![seg(0, 0, 2, 1, 1)], vec![]),
            Op::Deinitialize {
                key: live_key(0),
                fault: Fault::None,
            },
        ];
        let caught = std::panic::catch_unwind(|| {
            let host = RecordingHost::new(256);
            let setup = Setup { flags: 0, ..SETUP };
            let (_, model) = configs(&setup, 256, Capabilities::FULL, (None, None, None));
            let retain = Config {
                discard: mapcore::DiscardPolicy::Retain,
                ..Config::DEFAULT
            };
            let map: JitMap<&RecordingHost> = JitMap::with_config(
                &host,
                Config {
                    max_reservation: 1 << 20,
                    ..retain
                },
            );
            drive(
                Box::new(recording_subject(map)),
                &Recording(&host),
                Model::new(model),
                &ops,
                None,
            );
        });
        assert!(
            caught.is_err(),
            "a map that keeps freed bytes went unnoticed"
        );
    }

    /// A core bug, fixed (found by `batch_ops` with an 8-entry span table, minimized here to
    /// the driver's 12-entry one and a flip host): with the span table full, initialize
    /// reserved room for a segment that starts exactly where a free record starts and ends
    /// with or after it as zero new entries (the record is reused or removed), then made
    /// room by forgetting the lowest free records, which could be that very record; the
    /// claim then added one entry more than the room made. Here: pages 2-12 hold 11 live
    /// segments, page 0 a free record (12 entries); a request for page 0 and page 13 reserved
    /// one entry, forgot the record at page 0 to get it, and needed two. `take` failed ("place
    /// made room for the spans" in debug builds; in release the second segment went
    /// unrecorded, so its pages could be handed out twice). The contract answer is
    /// `CapacityExceeded(Spans)`: 11 live entries and 2 new ones do not fit in 12; and since
    /// the request is refused, the free record at page 0 is not forgotten either.
    #[test]
    fn forgotten_record_was_counted_as_reused() {
        let ops = vec![
            reserve(16),
            init(vec![seg(0, 0, 1, 1, 0)], vec![]),
            Op::Deinitialize {
                key: live_key(0),
                fault: Fault::None,
            },
            init((2..7).map(|i| seg(0, i, 1, 1, 0)).collect(), vec![]),
            init((7..12).map(|i| seg(0, i, 1, 1, 0)).collect(), vec![]),
            init(vec![seg(0, 12, 1, 1, 0)], vec![]),
            init(vec![seg(0, 0, 1, 1, 0), seg(0, 13, 1, 1, 0)], vec![]),
        ];
        run(&SETUP, &ops, None);
    }

    /// A model of lazy protection over a map on a flip host (which protects freed pages back
    /// to read-write at once) must be caught: the model expects no protect on deinitialize.
    #[test]
    fn the_oracle_catches_eager_protection_where_it_expects_lazy() {
        let ops = vec![
            reserve(8),
            init(vec![seg(0, 0, 1, 5, 1)], vec![]),
            Op::Deinitialize {
                key: live_key(0),
                fault: Fault::None,
            },
        ];
        let caught = std::panic::catch_unwind(|| {
            let host = RecordingHost::new(64);
            let lazy = Capabilities {
                writes_through_alias: true,
                ..Capabilities::FULL
            };
            let (config, model) = configs(&ALIAS_RETAIN, 64, lazy, (None, None, None));
            let map: JitMap<&RecordingHost> = JitMap::with_config(&host, config);
            drive(
                Box::new(recording_subject(map)),
                &Recording(&host),
                Model::new(model),
                &ops,
                None,
            );
        });
        assert!(caught.is_err(), "eager protection went unnoticed");
    }

    /// The recording host, but the first check after a region exists writes a byte into the
    /// last page of the first slab, behind the host's log: fresh, not touched by the
    /// operation, so outside what the incremental check looks at by construction.
    struct Rogue<'h> {
        inner: Recording<'h>,
        done: std::cell::Cell<bool>,
    }

    impl Probe for Rogue<'_> {
        fn injects_faults(&self) -> bool {
            self.inner.injects_faults()
        }

        fn arm(&self, faults: &FaultPlan) {
            self.inner.arm(faults);
        }

        fn disarm(&self) {
            self.inner.disarm();
        }

        fn fallible_calls(&self) -> Option<Vec<CallM>> {
            self.inner.fallible_calls()
        }

        fn predict_base(&self, model: &Model, size: usize) -> Option<usize> {
            self.inner.predict_base(model, size)
        }

        fn poke(&self, addr: usize, bytes: &[u8]) {
            self.inner.poke(addr, bytes);
        }

        fn read(&self, addr: usize, len: usize) -> Vec<u8> {
            self.inner.read(addr, len)
        }

        fn check(
            &self,
            model: &Model,
            sweep: Sweep,
            pokes: &[(usize, usize)],
        ) -> Result<(), String> {
            if !model.regions().is_empty() && !self.done.replace(true) {
                if let Some((base, slab)) = model.slabs().iter().next() {
                    self.inner.poke(base + slab.size - 1, &[0x5a]);
                }
            }
            self.inner.check(model, sweep, pokes)
        }
    }

    /// Runs reserve, initialize, deinitialize under the retain policy (where `check_map` does
    /// not scan free pages, but fresh ones must still read zero) with [`Rogue`] and `checks`;
    /// returns the panic message.
    fn rogue_run(checks: Checks) -> String {
        let ops = vec![
            reserve(8),
            init(vec![seg(0, 0, 1, 1, 1)], vec![]),
            Op::Deinitialize {
                key: live_key(0),
                fault: Fault::None,
            },
        ];
        let setup = Setup { flags: 1, ..SETUP };
        let caught = std::panic::catch_unwind(|| {
            let host = RecordingHost::new(64);
            let (config, model) = configs(&setup, 64, Capabilities::FULL, (None, None, None));
            let map: JitMap<&RecordingHost> = JitMap::with_config(&host, config);
            let probe = Rogue {
                inner: Recording(&host),
                done: std::cell::Cell::new(false),
            };
            drive_checked(
                Box::new(recording_subject(map)),
                &probe,
                Model::new(model),
                &ops,
                None,
                checks,
            );
        });
        match caught {
            Ok(()) => panic!("a byte written behind the host's log went unnoticed"),
            Err(payload) => payload
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// The incremental check cannot see memory changed outside the host's logged calls (no
    /// host does that; the driver's own pokes are accounted for). `Checks::Both` would notice
    /// if it ever happened, and the default checks still catch it in the sweep before the
    /// teardown.
    #[test]
    fn a_change_outside_the_log_is_caught_by_the_full_sweep() {
        let both = rogue_run(Checks::Both);
        assert!(
            both.contains("the incremental check missed") && both.contains("stale bytes"),
            "{both}"
        );
        let default = rogue_run(Checks::Incremental);
        assert!(
            default.contains("before shutdown") && default.contains("stale bytes"),
            "{default}"
        );
    }

    /// The std oracle sees residency: freed pages kept resident are caught.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_std_oracle_catches_resident_freed_pages() {
        use mapcore::Host;
        use mapcore_std::LibcHost;
        use mapcore_tests::std_host::{libc_subject, Libc};
        let ops = vec![
            reserve(8),
            init(vec![seg(0, 0, 2, 1, 1)], vec![]),
            Op::Deinitialize {
                key: live_key(0),
                fault: Fault::None,
            },
        ];
        let caught = std::panic::catch_unwind(|| {
            let host = LibcHost::new();
            let page = host.page_size();
            let (_, model) = configs(&SETUP, page, host.capabilities(), (None, None, None));
            let retain = Config {
                discard: mapcore::DiscardPolicy::Retain,
                max_reservation: 1 << 20,
                ..Config::DEFAULT
            };
            let map: JitMap<LibcHost> = JitMap::with_config(host, retain);
            drive(
                Box::new(libc_subject(map)),
                &Libc::new(page),
                Model::new(model),
                &ops,
                None,
            );
        });
        assert!(caught.is_err(), "resident freed pages went unnoticed");
    }
}
