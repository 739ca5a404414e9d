//! Fault catalogue row C3 on the real host: `vm.max_map_count` exhausted by alternating page
//! protections. One slab gets a read-only page at every other page, each splitting the slab's
//! mapping, until `mprotect` fails with `ENOMEM`. The failing `initialize` must return
//! `Host { op: Protect, quarantined: false }` with `ENOMEM`, record nothing, leave its page
//! read-write and zero (also when it had written content there), and make **no heap
//! allocation**, because at this limit `malloc` fails too. The map must stay usable: after a
//! few deinitializes the same address initializes, releasing the slab leaves nothing mapped in
//! its range, and dropping the map brings the mapping count back to its baseline.
//!
//! Exhausting the limit changes the whole process, so the checks run in a child process: the
//! test binary runs itself again for this one test, with an environment variable telling it
//! that it is the child. The child allocates everything it needs before it exhausts the limit,
//! writes its findings to stderr with `write(2)` from a fixed buffer (no allocation), and exits
//! non-zero if a check failed; the parent asserts on its exit status and output.
#![cfg(target_os = "linux")]
#![expect(
    unsafe_code,
    reason = "raw access to JIT pages, and libc I/O that does not allocate"
)]

use std::fmt::{self, Write as _};
use std::io::Read;
use std::process::Stdio;
use std::ptr;
use std::time::{Duration, Instant};

mod common;

use mapcore::testing::{count_allocations, CountingAllocator};
use mapcore_std::{
    page_size, Error, HostError, HostErrorKind, HostOp, InitRequest, LibcHost, Prot, Segment,
    StdError, StdJitMap,
};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

// ---- output that needs no heap -------------------------------------------------------------

/// One line of text in a fixed buffer; what does not fit is cut off. Formatting into it and
/// writing it out never allocates.
struct Line {
    buf: [u8; 512],
    len: usize,
}

impl Line {
    const fn new() -> Self {
        Self {
            buf: [0; 512],
            len: 0,
        }
    }

    /// Writes `args` as one line to stderr with `write(2)`.
    fn emit(&mut self, args: fmt::Arguments<'_>) {
        self.len = 0;
        let _ = self.write_fmt(args);
        let _ = self.write_str("\n");
        let mut at = 0;
        while at < self.len {
            let rest = &self.buf[at..self.len];
            // SAFETY: `rest` is valid for reads of its length; fd 2 is stderr.
            let n = unsafe { libc::write(2, rest.as_ptr().cast(), rest.len()) };
            match usize::try_from(n) {
                Ok(n) if n > 0 => at += n,
                _ if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => {}
                _ => return,
            }
        }
    }
}

impl fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// `/proc/self/maps`, read into a buffer allocated up front so that it can be read at the
/// limit, with `open(2)`/`read(2)` only.
struct Maps {
    buf: Vec<u8>,
    len: usize,
}

impl Maps {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: vec![0; capacity],
            len: 0,
        }
    }

    /// Reads the file again. False if it could not be read or did not fit in the buffer.
    fn load(&mut self) -> bool {
        // SAFETY: a NUL-terminated path and plain flags; `open` has no other preconditions.
        let fd = unsafe {
            libc::open(
                c"/proc/self/maps".as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return false;
        }
        self.len = 0;
        let complete = loop {
            let spare = &mut self.buf[self.len..];
            if spare.is_empty() {
                break false;
            }
            // SAFETY: `spare` is valid for writes of its length and nothing else uses it.
            let n = unsafe { libc::read(fd, spare.as_mut_ptr().cast(), spare.len()) };
            match usize::try_from(n) {
                Ok(0) => break true,
                Ok(n) => self.len += n,
                Err(_) if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => {}
                Err(_) => break false,
            }
        };
        // SAFETY: `fd` was opened above and is closed once.
        unsafe { libc::close(fd) };
        complete
    }

    fn lines(&self) -> impl Iterator<Item = &[u8]> {
        self.buf[..self.len]
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
    }

    /// The number of mappings (lines).
    fn count(&self) -> usize {
        self.lines().count()
    }

    /// Each mapping: its start, its end and its `rwxp` permissions.
    fn mappings(&self) -> impl Iterator<Item = (usize, usize, &[u8])> {
        let hex = |s: &[u8]| {
            std::str::from_utf8(s)
                .ok()
                .and_then(|s| usize::from_str_radix(s, 16).ok())
        };
        self.lines().filter_map(move |line| {
            let mut fields = line.split(|b| *b == b' ');
            let (range, perms) = (fields.next()?, fields.next()?);
            let dash = range.iter().position(|b| *b == b'-')?;
            Some((hex(&range[..dash])?, hex(&range[dash + 1..])?, perms))
        })
    }

    /// The `rwxp` permissions of the mapping holding `addr`.
    fn perms_at(&self, addr: usize) -> Option<[u8; 4]> {
        self.mappings()
            .find(|&(start, end, _)| start <= addr && addr < end)
            .and_then(|(_, _, perms)| perms.try_into().ok())
    }

    /// How many mappings overlap `[start, end)`.
    fn overlapping(&self, start: usize, end: usize) -> usize {
        self.mappings()
            .filter(|&(from, to, _)| from < end && start < to)
            .count()
    }
}

/// Reads the `len` bytes at `addr` and returns the offset and value of the first one that is
/// not `expected(offset)`.
///
/// # Safety
///
/// `[addr, addr + len)` is mapped readable and nobody writes it meanwhile.
unsafe fn first_mismatch(
    addr: usize,
    len: usize,
    expected: impl Fn(usize) -> u8,
) -> Option<(usize, u8)> {
    (0..len).find_map(|i| {
        // SAFETY: the caller promises the byte is mapped readable.
        let b = unsafe { ptr::with_exposed_provenance::<u8>(addr + i).read_volatile() };
        (b != expected(i)).then_some((i, b))
    })
}

// ---- the test ------------------------------------------------------------------------------

const TEST: &str = "max_map_count_exhaustion_rolls_back_without_allocating";
const CHILD_ENV: &str = "MAPCORE_STD_MAP_COUNT_CHILD";
const PASSED: &str = "MAP-COUNT-CHILD: all checks passed";
const SKIPPED: &str = "MAP-COUNT-CHILD: SKIPPED";
const FAIL: &str = "MAP-COUNT-CHILD: FAIL";
const SUMMARY: &str = "MAP-COUNT-CHILD: summary";

/// Above this `vm.max_map_count` exhausting it would take too long (and too much kernel memory)
/// for a unit test; the test says SKIPPED instead.
const MAX_SUPPORTED_MAP_COUNT: usize = 1 << 18;

/// The parent gives up on the child after this long.
const DEADLINE: Duration = Duration::from_secs(120);

/// Exhausts `vm.max_map_count` in a child process: clean `ENOMEM` error, complete rollback, no
/// heap allocation in the failing `initialize`, a usable map afterwards.
#[test]
fn max_map_count_exhaustion_rolls_back_without_allocating() {
    if std::env::var_os(CHILD_ENV).is_some() {
        child();
        return;
    }
    let start = Instant::now();
    let mut child = common::this_test_binary()
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child test process");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break Some(status);
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = start.elapsed();
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    let output = format!("child stdout:\n{stdout}\nchild stderr:\n{stderr}");
    let Some(status) = status else {
        panic!("the child did not finish within {DEADLINE:?}; killed\n{output}");
    };
    if let Some(line) = stderr.lines().find(|l| l.starts_with(SKIPPED)) {
        assert!(
            status.success(),
            "the skipping child failed: {status}\n{output}"
        );
        common::skipped(TEST, "max-map-count", line);
        return;
    }
    let failures: Vec<&str> = stderr.lines().filter(|l| l.starts_with(FAIL)).collect();
    assert!(
        failures.is_empty() && status.success() && stderr.contains(PASSED),
        "vm.max_map_count exhaustion: the child ({status}{}) reported {} failed check(s):\n{}\n\n{output}",
        common::exec_hint(status),
        failures.len(),
        failures.join("\n"),
    );
    let summary = stderr
        .lines()
        .find_map(|l| l.strip_prefix(SUMMARY))
        .unwrap_or_else(|| panic!("the child printed no summary\n{output}"));
    println!("map_count:{summary}; child took {} ms", elapsed.as_millis());
    if std::env::var_os(common::TEST_RUNNER_ENV).is_some() {
        common::skipped(
            TEST,
            "emulator",
            "under qemu-user the emulated /proc/self/maps still listed 7 more mappings than the \
             baseline once the map was dropped (38 against 31, qemu-aarch64 10), where natively \
             the count comes back within 2: that dropping the map gives its heap mappings back",
        );
    }
}

/// The figures the child reports.
#[derive(Debug, Default)]
struct Figures {
    max_map_count: usize,
    regions: usize,
    errno: i32,
    maps_baseline: usize,
    maps_at_failure: usize,
    maps_after_release: usize,
    maps_after_drop: usize,
    allocs_failing: usize,
    allocs_retry: usize,
    allocs_deinitialize: usize,
    allocs_initialize: usize,
    exhaust_ms: u128,
}

/// Records failed checks; prints them at once, without allocating.
struct Checks {
    line: Line,
    failed: usize,
}

impl Checks {
    /// Records a failed check unless `ok`.
    fn check(&mut self, ok: bool, what: fmt::Arguments<'_>) {
        if !ok {
            self.failed += 1;
            self.line.emit(format_args!("{FAIL}: {what}"));
        }
    }

    /// Reports a failure after which going on makes no sense, and exits at once.
    fn fatal(&mut self, what: fmt::Arguments<'_>) -> ! {
        self.line.emit(format_args!("{FAIL} (fatal): {what}"));
        // SAFETY: `_exit` ends the process without running anything else.
        unsafe { libc::_exit(2) }
    }
}

/// Whether `result` is the error the limit must produce: a protect of segment 0 failing with
/// ENOMEM, rolled back without quarantine.
fn is_enomem_protect(result: &Result<usize, StdError>) -> bool {
    matches!(
        result,
        Err(Error::Host {
            op: HostOp::Protect,
            segment: Some(0),
            error: os,
            quarantined: false,
            dealloc_failures: 0,
        }) if os.raw_os_error() == libc::ENOMEM && os.kind() == HostErrorKind::OutOfMemory
    )
}

/// Checks that the page at `addr` is free: read-write in `/proc/self/maps`, reading zero, and
/// writable. Exits if it is not read-write (touching it would crash).
fn check_free_page(checks: &mut Checks, maps: &mut Maps, addr: usize, page: usize, when: &str) {
    if !maps.load() {
        checks.fatal(format_args!("{when}: cannot read /proc/self/maps"));
    }
    match maps.perms_at(addr) {
        Some(perms) if &perms[..3] == b"rw-" => {}
        other => checks.fatal(format_args!(
            "{when}: page {addr:#x} is not read-write: {:?}",
            other.map(|p| p.map(char::from))
        )),
    }
    // SAFETY: the page is mapped read-write (checked above), belongs to no region, and this
    // thread is the only one using the map.
    let mismatch = unsafe { first_mismatch(addr, page, |_| 0) };
    checks.check(
        mismatch.is_none(),
        format_args!("{when}: page {addr:#x} does not read as zero: (offset, byte) {mismatch:?}"),
    );
    let probe = ptr::with_exposed_provenance_mut::<u8>(addr + page - 1);
    // SAFETY: as above; the byte is written and set back to zero.
    let read_back = unsafe {
        probe.write_volatile(0x5A);
        let b = probe.read_volatile();
        probe.write_volatile(0);
        b
    };
    checks.check(
        read_back == 0x5A,
        format_args!("{when}: page {addr:#x} did not keep a written byte"),
    );
}

/// The checks, in the child process.
fn child() {
    let mut checks = Checks {
        line: Line::new(),
        failed: 0,
    };
    let mut f = Figures::default();
    let page = page_size();
    // The counter sees allocations at all, so that a zero below means something.
    let (probe, allocs) = count_allocations(|| std::hint::black_box(Vec::<u8>::with_capacity(1)));
    drop(probe);
    checks.check(
        allocs == 1,
        format_args!("the counting allocator saw {allocs} allocations of one Vec, not 1"),
    );

    // Everything that needs the heap or a new mapping happens before the limit is reached.
    f.max_map_count = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .expect("read /proc/sys/vm/max_map_count")
        .trim()
        .parse()
        .expect("vm.max_map_count is a number");
    if f.max_map_count > MAX_SUPPORTED_MAP_COUNT {
        checks.line.emit(format_args!(
            "{SKIPPED}: vm.max_map_count is {}, above the {MAX_SUPPORTED_MAP_COUNT} this test \
             exhausts in reasonable time",
            f.max_map_count
        ));
        return;
    }
    // How far below the limit ENOMEM may come. Natively, 2: the mappings this process sees are
    // all that count. Under an emulator (MAPCORE_TEST_RUNNER set, e.g. qemu-user) the
    // emulator's own mappings (its binary, its translation buffer, ...) count toward the same
    // limit but are not in the emulated /proc/self/maps: about 20 for qemu-aarch64 10; 64 allows
    // for that and no more.
    let slack = if std::env::var_os(common::TEST_RUNNER_ENV).is_some() {
        64
    } else {
        2
    };
    // Room for more regions than the limit allows: each one adds two mappings.
    let slots = f.max_map_count + 64;
    let mut keys: Vec<usize> = Vec::with_capacity(slots);
    // About 50 bytes per line of /proc/self/maps; four times that.
    let mut maps = Maps::with_capacity(200 * slots);
    let content = [0xA5u8; 256];
    let map = StdJitMap::new(LibcHost::new());
    if !maps.load() {
        checks.fatal(format_args!("cannot read /proc/self/maps"));
    }
    f.maps_baseline = maps.count();
    // MAP_NORESERVE: the slab costs address space only; no page of it is touched until the
    // failing request writes content.
    let slab_len = (2 * slots + 2) * page;
    let base = map.reserve(slab_len).expect("reserve the slab");

    // Exhaust: a read-only page at every other page, each splitting the slab's mapping in two.
    let started = Instant::now();
    let (addr, failing, allocs) = loop {
        if keys.len() == slots {
            checks.fatal(format_args!(
                "{slots} regions initialized without an error; vm.max_map_count {} did not bite",
                f.max_map_count
            ));
        }
        let addr = base + (2 * keys.len() + 1) * page;
        let segments = [Segment::new(Prot::READ, addr, page, &[])];
        let (result, allocs) =
            count_allocations(|| map.initialize(&InitRequest::new(&segments, &[])));
        match result {
            Ok(key) if key == addr => keys.push(key), // within capacity: no allocation
            Ok(key) => checks.fatal(format_args!("region at {addr:#x} got key {key:#x}")),
            Err(_) => break (addr, result, allocs),
        }
    };
    f.exhaust_ms = started.elapsed().as_millis();
    f.regions = keys.len();
    f.allocs_failing = allocs;
    if let Err(error) = &failing {
        f.errno = error.host_error().map_or(0, |os| os.raw_os_error());
    }
    if !maps.load() {
        checks.fatal(format_args!("cannot read /proc/self/maps at the limit"));
    }
    f.maps_at_failure = maps.count();

    // 1. A clean error, made without the heap, after a complete rollback.
    if !is_enomem_protect(&failing) {
        checks.fatal(format_args!(
            "region {} at {addr:#x}: expected Host {{ op: Protect, segment: Some(0), error: \
             ENOMEM, quarantined: false }}, got {failing:?}",
            f.regions
        ));
    }
    checks.check(
        f.maps_at_failure + slack >= f.max_map_count,
        format_args!(
            "ENOMEM with {} mappings, more than {slack} below vm.max_map_count {}",
            f.maps_at_failure, f.max_map_count
        ),
    );
    // Growable tables grow (allocate) in `claim` only when the region count reaches a power of
    // two; here it is about (vm.max_map_count - baseline mappings) / 2, 32,745 for 65,530, so an
    // allocation counted here is one made on the error path itself.
    checks.check(
        f.allocs_failing == 0,
        format_args!(
            "the failing initialize made {} heap allocation(s); its error path must make none",
            f.allocs_failing
        ),
    );
    checks.check(
        map.region_count() == f.regions,
        format_args!(
            "region_count() is {} after the failure, expected {}",
            map.region_count(),
            f.regions
        ),
    );
    let invariants = map.check_invariants();
    checks.check(
        invariants.is_ok(),
        format_args!("map invariants after the failure: {invariants:?}"),
    );
    check_free_page(&mut checks, &mut maps, addr, page, "after the failure");

    // 2. The same request with content: written, then discarded by the rollback.
    let segments = [Segment::new(Prot::READ, addr, page, &content)];
    let (retry, allocs) = count_allocations(|| map.initialize(&InitRequest::new(&segments, &[])));
    f.allocs_retry = allocs;
    checks.check(
        is_enomem_protect(&retry),
        format_args!("the retry with content at the limit: {retry:?}"),
    );
    checks.check(
        f.allocs_retry == 0,
        format_args!(
            "the failing initialize with content made {} heap allocation(s)",
            f.allocs_retry
        ),
    );
    checks.check(
        map.region_count() == f.regions,
        format_args!("region_count() is {} after the retry", map.region_count()),
    );
    check_free_page(&mut checks, &mut maps, addr, page, "after the retry");

    // 3. Still usable: free three regions (six mappings), then the failed address initializes.
    let freed = 3.min(keys.len());
    let (mut batch_failures, first) = (0usize, keys.len() - freed);
    let (result, allocs) =
        count_allocations(|| map.deinitialize_multiple(&keys[first..], |_, _| batch_failures += 1));
    f.allocs_deinitialize = allocs;
    checks.check(
        result.is_ok() && batch_failures == 0,
        format_args!("deinitialize of {freed} regions at the limit: {result:?}"),
    );
    keys.truncate(first);
    let (result, allocs) = count_allocations(|| map.initialize(&InitRequest::new(&segments, &[])));
    f.allocs_initialize = allocs;
    match result {
        Ok(key) if key == addr => keys.push(key),
        other => checks.fatal(format_args!(
            "initialize at the failed address {addr:#x} after freeing {freed} regions: {other:?}"
        )),
    }
    checks.check(
        map.region_count() == keys.len(),
        format_args!(
            "region_count() is {}, expected {}",
            map.region_count(),
            keys.len()
        ),
    );
    let perms = maps.load().then(|| maps.perms_at(addr)).flatten();
    checks.check(
        perms.is_some_and(|p| &p[..3] == b"r--"),
        format_args!(
            "the new region at {addr:#x} is not read-only: {:?}",
            perms.map(|p| p.map(char::from))
        ),
    );
    if perms.is_some_and(|p| p[0] == b'r') {
        let expected = |i: usize| if i < content.len() { content[i] } else { 0 };
        // SAFETY: the page is mapped readable (checked above) and read-only.
        let mismatch = unsafe { first_mismatch(addr, page, expected) };
        checks.check(
            mismatch.is_none(),
            format_args!("the new region's page is not content then zeros: {mismatch:?}"),
        );
    }

    // 4. Everything goes: deinitialize all and release; the slab leaves no mapping behind, and
    //    dropping the map gives back its heap mappings too.
    let mut batch_failures = 0usize;
    let result = map.deinitialize_multiple(&keys, |_, _| batch_failures += 1);
    checks.check(
        result.is_ok() && batch_failures == 0 && map.region_count() == 0,
        format_args!(
            "deinitialize of every region: {result:?}, {batch_failures} failed, {} left",
            map.region_count()
        ),
    );
    let released = map.release(base);
    checks.check(
        released.is_ok() && map.slab_count() == 0,
        format_args!("release of the slab: {released:?}"),
    );
    if !maps.load() {
        checks.fatal(format_args!(
            "cannot read /proc/self/maps after the release"
        ));
    }
    f.maps_after_release = maps.count();
    let left_in_slab = maps.overlapping(base, base + slab_len);
    drop(map);
    if !maps.load() {
        checks.fatal(format_args!("cannot read /proc/self/maps after the drop"));
    }
    f.maps_after_drop = maps.count();
    // The slab is gone: nothing is mapped in its range any more. (The total count is no
    // measure yet: the map's tables grew on the heap meanwhile, and large allocations have
    // mappings of their own until the map is dropped.)
    checks.check(
        left_in_slab == 0,
        format_args!("{left_in_slab} mappings left in the slab's range after the release"),
    );
    // Not under an emulator, whose view of the mappings differs: the parent says so.
    if std::env::var_os(common::TEST_RUNNER_ENV).is_none() {
        checks.check(
            f.maps_after_drop <= f.maps_baseline + 2,
            format_args!(
                "{} mappings after dropping the map, baseline {}",
                f.maps_after_drop, f.maps_baseline
            ),
        );
    }

    checks.line.emit(format_args!(
        "{SUMMARY} vm.max_map_count {}, {} regions before mprotect failed with errno {} \
         (ENOMEM) at {} mappings, in {} ms; heap allocations in the failing initialize: {} \
         (retry with content: {}); recovery: deinitialize of 3: {}, initialize: {}; mappings \
         {} -> {} -> {} after release, {} after drop",
        f.max_map_count,
        f.regions,
        f.errno,
        f.maps_at_failure,
        f.exhaust_ms,
        f.allocs_failing,
        f.allocs_retry,
        f.allocs_deinitialize,
        f.allocs_initialize,
        f.maps_baseline,
        f.maps_at_failure,
        f.maps_after_release,
        f.maps_after_drop,
    ));
    if checks.failed > 0 {
        // Exit status 1; the FAIL lines above say what failed.
        std::process::exit(1);
    }
    checks.line.emit(format_args!("{PASSED}"));
}
