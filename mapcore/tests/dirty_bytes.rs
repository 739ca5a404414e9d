//! Freeing and reusing pages resets only the bytes that may hold something: the content a
//! read-only or executable segment was given, and the whole pages of a writable one (its code
//! may have written anywhere in them). Small code in big pages costs fills of its own size, and
//! a reused region still reads its content, then zeros to the end of its pages.

pub mod common;

use common::*;
use mapcore::testing::{Call, RecordingHost};
use mapcore::{Config, DiscardPolicy, JitMap, Prot, Segment, Storage};

const TRAP: u8 = RecordingHost::TRAP_BYTE;

/// The fills of the log: `(addr, len, trap)`.
fn fills(host: &RecordingHost) -> Vec<(usize, usize, bool)> {
    host.log()
        .iter()
        .filter_map(|e| match e.call {
            Call::FillZero { addr, len } => Some((addr, len, false)),
            Call::FillTrap { addr, len } => Some((addr, len, true)),
            _ => None,
        })
        .collect()
}

/// Freed pages keep their bytes unless reset (no discard).
fn retain() -> Config {
    Config {
        discard: DiscardPolicy::Retain,
        ..Config::DEFAULT
    }
}

/// Whether every byte of `addr..addr + len` is `byte`.
fn reads(host: &RecordingHost, addr: usize, len: usize, byte: u8) -> bool {
    host.read(addr, len).iter().all(|b| *b == byte)
}

/// Code at `base`, then a writable data page.
fn code_and_data<'a>(base: usize, code: &'a [u8], data: &'a [u8]) -> [Segment<'a>; 2] {
    [
        Segment::new(Prot::READ_EXEC, base, code.len(), code),
        Segment::new(Prot::READ_WRITE, base + P, P, data),
    ]
}

/// Initializes 64 bytes of code and 16 of data at `base`; then the code writes into its data
/// page, past the content.
fn first_region<S: Storage>(host: &RecordingHost, map: &Map<'_, S>, base: usize) {
    let (code, data) = (pattern(64, 1), pattern(16, 2));
    let segs = code_and_data(base, &code, &data);
    assert_eq!(map.initialize(&req(&segs, &[])), Ok(base));
    host.poke(base + P + P / 2, &[7; 8]);
}

/// On a host that writes through an alias: freed code is trap-filled over its content only,
/// freed writable data over its whole pages; reuse zero-fills only what the old bytes cover.
fn lazy_resets_what_was_written<S: Storage>() {
    let host = Fixture::with_host(RecordingHost::aliased(P));
    let map: Map<'_, S> = JitMap::with_config(&*host, retain());
    let base = map.reserve(4 * P).unwrap();
    first_region(&host, &map, base);

    host.clear_log();
    map.deinitialize(base).unwrap();
    assert_eq!(
        fills(&host),
        [(base, 64, true), (base + P, P, false)],
        "traps over the code, zeros over the whole data page"
    );
    assert!(reads(&host, base, 64, TRAP) && reads(&host, base + 64, P - 64, 0));
    assert!(reads(&host, base + P, P, 0), "the data page reads zero");
    host.check_map(&map).unwrap();

    // Shorter code at the same place: zeros over the rest of the old code only.
    let (code, data) = (pattern(32, 3), pattern(8, 4));
    let segs = code_and_data(base, &code, &data);
    host.clear_log();
    assert_eq!(map.initialize(&req(&segs, &[])), Ok(base));
    assert_eq!(fills(&host), [(base + 32, 32, false)]);
    assert_segment(&host, &segs[0], &code);
    assert_segment(&host, &segs[1], &data);
    host.check_map(&map).unwrap();

    // Longer code: no zero fill past the old trap bytes, which the copy overwrites.
    map.deinitialize(base).unwrap();
    let code = pattern(P / 2, 5);
    let segs = [Segment::new(Prot::READ_EXEC, base, P / 2, &code)];
    host.clear_log();
    assert_eq!(map.initialize(&req(&segs, &[])), Ok(base));
    assert_eq!(fills(&host), []);
    assert_segment(&host, &segs[0], &code);
    host.check_map(&map).unwrap();
}

/// On a flip host that keeps freed bytes (Retain): reuse zero-fills the old content of code,
/// and the whole old pages of writable data, whatever the new content's length.
fn eager_zero_fills_what_was_written<S: Storage>() {
    let host = Fixture::new(P);
    let map: Map<'_, S> = JitMap::with_config(&*host, retain());
    let base = map.reserve(4 * P).unwrap();
    first_region(&host, &map, base);
    map.deinitialize(base).unwrap();
    assert!(reads(&host, base + P + P / 2, 8, 7), "kept, not reset");

    let (code, data) = (pattern(16, 3), pattern(8, 4));
    let segs = code_and_data(base, &code, &data);
    host.clear_log();
    assert_eq!(map.initialize(&req(&segs, &[])), Ok(base));
    assert_eq!(
        fills(&host),
        [(base + 16, 48, false), (base + P + 8, P - 8, false)]
    );
    assert_segment(&host, &segs[0], &code);
    assert_segment(&host, &segs[1], &data);
    host.check_map(&map).unwrap();
}

for_each_storage!(
    lazy_resets_what_was_written,
    eager_zero_fills_what_was_written
);
