//! Host errors carry the real errno, and a failing `mprotect` is rolled back completely.
//!
//! The W^X test makes `mprotect(PROT_EXEC)` fail for real with `prctl(PR_SET_MDWE,
//! PR_MDWE_REFUSE_EXEC_GAIN)` (Linux 6.3+). MDWE cannot be undone, so the test re-executes this
//! test binary as a child process that runs only that test, with an environment variable
//! telling it that it is the child.
#![cfg(target_os = "linux")]
#![expect(unsafe_code, reason = "prctl, and reads of JIT memory")]

mod common;

use common::Kind;

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{bump_action, perms_of, resident_pages};
use mapcore_std::{
    ActionPair, Config, Error, HostError, HostErrorKind, HostOp, InitRequest, LibcHost, Prot,
    Segment, StdJitMap,
};

fn page() -> usize {
    mapcore_std::page_size()
}

fn reserve_beyond_the_address_space_reports_enomem(kind: Kind) {
    // Let the request through the map's own limit so that the kernel is the one refusing.
    let config = Config {
        max_reservation: usize::MAX,
        ..Config::DEFAULT
    };
    let map = StdJitMap::with_config(kind.host(), config);
    let size = 1usize << 60;
    let error = map.reserve(size).unwrap_err();
    let Error::Host {
        op: HostOp::Reserve,
        segment: None,
        error: os,
        quarantined: false,
        dealloc_failures: 0,
    } = error
    else {
        panic!("expected a reserve host error, got {error:?}");
    };
    assert_eq!(os.raw_os_error(), libc::ENOMEM);
    assert_eq!(os.kind(), HostErrorKind::OutOfMemory);
    assert_eq!(io::Error::from(os).kind(), io::ErrorKind::OutOfMemory);
    assert_eq!(map.slab_count(), 0);
    // The error works with `?` into `Box<dyn Error>` and its source is the OS error.
    let boxed: Box<dyn std::error::Error> = Box::new(error);
    let source = boxed.source().expect("host errors have a source");
    assert_eq!(
        source.to_string(),
        io::Error::from_raw_os_error(libc::ENOMEM).to_string()
    );
}

/// Execute permission refused by the kernel (`PR_SET_MDWE`, in a child process): a clear
/// `PermissionDenied` host error and a full rollback, and the map stays usable.
#[test]
fn exec_refused_by_mdwe_is_rolled_back() {
    common::in_mdwe_child("exec_refused_by_mdwe_is_rolled_back", mdwe_checks);
}

/// On the flip host: under MDWE, the dual-mapped host works instead (`tests/dual.rs`).
fn mdwe_checks() {
    let map = StdJitMap::new(LibcHost::new());
    let p = page();
    let base = map.reserve(8 * p).unwrap();
    let calls = AtomicU64::new(0);
    // Never run: the point is that it cannot become executable.
    let code = [0xC3u8; 16];
    let segments = [
        Segment::new(Prot::READ_WRITE, base, p, &[0xEE; 64]),
        Segment::new(Prot::READ_EXEC, base + p, code.len(), &code),
        Segment::new(Prot::READ, base + 2 * p, 2 * p, &[0xEE; 64]),
    ];
    let actions = [ActionPair::new(bump_action(&calls), bump_action(&calls))];
    let error = map
        .initialize(&InitRequest::new(&segments, &actions))
        .unwrap_err();

    // The error: protect of segment 1 failed with EACCES, rollback complete.
    let Error::Host {
        op: HostOp::Protect,
        segment: Some(1),
        error: os,
        quarantined: false,
        dealloc_failures: 0,
    } = error
    else {
        panic!("expected a protect error on segment 1, got {error:?}");
    };
    assert_eq!(os.raw_os_error(), libc::EACCES, "{os}");
    assert_eq!(os.kind(), HostErrorKind::PermissionDenied);
    assert_eq!(io::Error::from(os).kind(), io::ErrorKind::PermissionDenied);
    assert!(error.to_string().contains("Protect"), "{error}");

    // Full rollback: no action ran, nothing recorded, every page read-write, discarded, zero.
    assert_eq!(calls.load(Ordering::SeqCst), 0, "no finalize action ran");
    assert_eq!(map.region_count(), 0);
    assert_eq!(perms_of(base, base + 8 * p), Ok("rw-p".into()));
    assert_eq!(
        resident_pages(base, 8 * p),
        0,
        "the written pages were discarded"
    );
    // SAFETY: the slab's pages are free and read-write.
    let bytes = unsafe { common::read(base, 4 * p) };
    assert!(
        bytes.iter().all(|b| *b == 0),
        "no content survived the rollback"
    );

    // The map is still usable for requests that gain no execute permission, at the same pages.
    let segments = [
        Segment::new(Prot::READ_WRITE, base, p, b"rw"),
        Segment::new(Prot::READ, base + p, p, b"ro"),
    ];
    let key = map
        .initialize(&InitRequest::new(&segments, &actions))
        .unwrap();
    assert_eq!(key, base);
    assert_eq!(perms_of(base, base + p), Ok("rw-p".into()));
    assert_eq!(perms_of(base + p, base + 2 * p), Ok("r--p".into()));
    // SAFETY: both pages are readable.
    assert_eq!(unsafe { common::read(base + p, 2) }, b"ro");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the finalize action ran");
    map.deinitialize(key).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2, "the dealloc action ran");
    assert_eq!(perms_of(base, base + 8 * p), Ok("rw-p".into()));

    // Exec is still refused, and still rolled back.
    let segments = [Segment::new(
        Prot::READ_EXEC,
        base + 4 * p,
        code.len(),
        &code,
    )];
    let error = map
        .initialize(&InitRequest::new(&segments, &[]))
        .unwrap_err();
    assert_eq!(
        error.host_error().map(|e| e.raw_os_error()),
        Some(libc::EACCES),
        "{error:?}"
    );
    assert_eq!(perms_of(base, base + 8 * p), Ok("rw-p".into()));
    map.release(base).unwrap();
}

for_each_host!(reserve_beyond_the_address_space_reports_enomem,);
