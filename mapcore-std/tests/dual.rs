//! What only the dual-mapped host promises: it works where the kernel forbids write+execute
//! (`PR_SET_MDWE`), a forked child has no writable view of the parent's code, no mapping is
//! ever writable and executable, and a call into freed code traps.
#![cfg(target_os = "linux")]
#![expect(
    unsafe_code,
    reason = "runs JIT code, forks, reads /proc/self/maps in a child"
)]

mod common;

use common::{code, perms_of, vmas, Kind};
use mapcore_std::{
    Action, ActionError, ActionPair, Config, DiscardPolicy, DualMappedHost, Error, InitRequest,
    Prot, Segment, StdJitMap, WxMode,
};

fn page() -> usize {
    mapcore_std::page_size()
}

fn map_with(policy: DiscardPolicy) -> StdJitMap {
    let config = Config {
        discard: policy,
        ..Config::DEFAULT
    };
    StdJitMap::with_config(DualMappedHost::new(), config)
}

/// Panics if any mapping of this process is writable and executable at once.
#[track_caller]
fn assert_no_write_exec_mapping(step: &str) {
    let bad: Vec<_> = vmas()
        .into_iter()
        .filter(|v| v.perms.contains('w') && v.perms.contains('x'))
        .collect();
    assert!(bad.is_empty(), "{step}: writable and executable: {bad:x?}");
}

/// JIT real code, reuse it with other protections, roll back a failed initialize, batches:
/// under either discard policy. Run in-process and in an MDWE child.
fn jit_reuse_rollback_batches() {
    for policy in [DiscardPolicy::Discard, DiscardPolicy::Retain] {
        let map = map_with(policy);
        let p = page();
        let base = map.reserve(16 * p).unwrap();
        let data = [40u64, 2].map(u64::to_ne_bytes).concat();
        // Code and the data it reads.
        let segs = [
            Segment::new(Prot::READ_EXEC, base, code::SUM_PAIR.len(), code::SUM_PAIR),
            Segment::new(Prot::READ, base + p, data.len(), &data),
        ];
        let key = map.initialize(&InitRequest::new(&segs, &[])).unwrap();
        // SAFETY: `base` holds SUM_PAIR, executable; `base + p` two readable u64s.
        assert_eq!(unsafe { common::call1(key, (base + p) as u64) }, 42);
        map.deinitialize(key).unwrap();

        // The same pages with the protections swapped: code where the data was.
        let seven = 7u64.to_ne_bytes();
        let segs = [
            Segment::new(Prot::READ_WRITE, base, 8, &seven),
            Segment::new(
                Prot::READ_EXEC,
                base + p,
                code::TIMES3_PLUS7.len(),
                code::TIMES3_PLUS7,
            ),
        ];
        let key = map.initialize(&InitRequest::new(&segs, &[])).unwrap();
        // SAFETY: `base + p` holds TIMES3_PLUS7, executable.
        assert_eq!(unsafe { common::call1(base + p, 5) }, 22, "{policy:?}");
        map.deinitialize(key).unwrap();
        assert_no_write_exec_mapping("after reuse");

        // A failing finalize action: full rollback, and the pages work again afterwards.
        let fail = ActionPair::new(
            Action::new(failing, &[]).unwrap(),
            Action::new(succeeding, &[]).unwrap(),
        );
        let code = code::ret_const(9);
        let seg = [Segment::new(Prot::READ_EXEC, base, code.len(), &code)];
        let error = map
            .initialize(&InitRequest::new(&seg, &[fail]))
            .unwrap_err();
        assert!(matches!(error, Error::FinalizeFailed { .. }), "{error:?}");
        assert_eq!(map.region_count(), 0);
        let key = map.initialize(&InitRequest::new(&seg, &[])).unwrap();
        // SAFETY: `base` holds ret_const(9), executable.
        assert_eq!(unsafe { common::call0(key) }, 9);
        map.deinitialize(key).unwrap();

        // A batch of adjacent code regions, torn down at once, then reused.
        for round in 0..2u16 {
            let codes: Vec<Vec<u8>> = (0..4).map(|i| code::ret_const(round * 10 + i)).collect();
            let keys: Vec<usize> = codes
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let seg = [Segment::new(Prot::READ_EXEC, base + i * p, c.len(), c)];
                    map.initialize(&InitRequest::new(&seg, &[])).unwrap()
                })
                .collect();
            for (i, key) in keys.iter().enumerate() {
                // SAFETY: each key holds ret_const, executable.
                let returned = unsafe { common::call0(*key) };
                assert_eq!(returned, u64::from(round * 10) + i as u64);
            }
            map.deinitialize_multiple(&keys, |i, e| panic!("entry {i}: {e}"))
                .unwrap();
        }
        assert_no_write_exec_mapping("after batches");
        map.release(base).unwrap();
    }
}

fn failing(_: &[u8]) -> Result<(), ActionError> {
    Err(ActionError::new(7))
}

fn succeeding(_: &[u8]) -> Result<(), ActionError> {
    Ok(())
}

#[test]
fn jit_reuse_rollback_and_batches_work() {
    jit_reuse_rollback_batches();
}

#[test]
fn jit_reuse_rollback_and_batches_work_under_mdwe() {
    common::in_mdwe_child("jit_reuse_rollback_and_batches_work_under_mdwe", || {
        let detection = mapcore_std::detect();
        assert!(detection.mdwe, "{detection}");
        assert_eq!(detection.mode, WxMode::DualMapped, "{detection}");
        jit_reuse_rollback_batches();
        // And the map `detect` builds is the dual-mapped one, which runs code.
        let (map, _) = StdJitMap::detect(Config::DEFAULT);
        let base = map.reserve(page()).unwrap();
        let code = code::ret_const(77);
        let seg = [Segment::new(Prot::READ_EXEC, base, code.len(), &code)];
        let key = map.initialize(&InitRequest::new(&seg, &[])).unwrap();
        // SAFETY: ret_const(77), executable.
        assert_eq!(unsafe { common::call0(key) }, 77);
    });
}

/// Under the Retain policy, reusing a region of the same layout keeps every page's
/// protection: the code page stays `r-x` throughout, and new code is what runs.
#[test]
fn same_layout_reuse_keeps_the_code_page_executable() {
    let map = map_with(DiscardPolicy::Retain);
    let base = map.reserve(4 * page()).unwrap();
    for value in 0..50u16 {
        let code = code::ret_const(value);
        let seg = [Segment::new(Prot::READ_EXEC, base, code.len(), &code)];
        let key = map.initialize(&InitRequest::new(&seg, &[])).unwrap();
        // SAFETY: ret_const(value), executable.
        assert_eq!(unsafe { common::call0(key) }, u64::from(value));
        map.deinitialize(key).unwrap();
        assert_eq!(
            perms_of(base, base + page()),
            Ok(Kind::Dual.perms(Prot::READ_EXEC))
        );
    }
}

/// More slabs than the host keeps aliases of without a lock, half of them released and
/// reserved again at one page, so that the kernel places the new views in the released ranges
/// in another layout: code written through the alias of each runs at its address. (Without
/// the cache's withdrawal at release, the stale alias of a released slab is found and the
/// write faults.)
#[test]
fn code_runs_in_every_slab_beyond_the_alias_cache() {
    let map = map_with(DiscardPolicy::Retain);
    let mut slabs: Vec<usize> = (0..20).map(|_| map.reserve(2 * page()).unwrap()).collect();
    for round in 0..3u16 {
        for (i, &base) in slabs.iter().enumerate() {
            let value = round * 100 + u16::try_from(i).unwrap();
            let code = code::ret_const(value);
            let seg = [Segment::new(Prot::READ_EXEC, base, code.len(), &code)];
            let key = map.initialize(&InitRequest::new(&seg, &[])).unwrap();
            // SAFETY: ret_const(value), executable.
            assert_eq!(unsafe { common::call0(key) }, u64::from(value), "slab {i}");
            map.deinitialize(key).unwrap();
        }
        // Release every other slab, the first ones included, and reserve as many again.
        let (kept, released): (Vec<_>, Vec<_>) =
            slabs.iter().enumerate().partition(|(i, _)| i % 2 == 1);
        for (_, &base) in &released {
            map.release(base).unwrap();
        }
        let kept: Vec<usize> = kept.into_iter().map(|(_, &base)| base).collect();
        let fresh = (0..released.len()).map(|_| map.reserve(page()).unwrap());
        slabs = fresh.chain(kept).collect();
    }
}

/// Many random protections, initialized and freed under both policies: after every step, no
/// mapping of the process is writable and executable.
#[test]
fn no_mapping_is_ever_writable_and_executable() {
    let prots = [Prot::READ_EXEC, Prot::READ, Prot::READ_WRITE, Prot::NONE];
    for policy in [DiscardPolicy::Discard, DiscardPolicy::Retain] {
        let map = map_with(policy);
        let p = page();
        let base = map.reserve(8 * p).unwrap();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for step in 0..200 {
            let n = 1 + (next() % 4) as usize;
            let segs: Vec<Segment<'_>> = (0..n)
                .map(|i| {
                    let prot = prots[(next() % 4) as usize];
                    Segment::new(prot, base + 2 * i * p, p + (next() % 2) as usize * p, &[])
                })
                .collect();
            let key = map.initialize(&InitRequest::new(&segs, &[])).unwrap();
            assert_no_write_exec_mapping(&format!("{policy:?} step {step}, initialized"));
            map.deinitialize(key).unwrap();
            assert_no_write_exec_mapping(&format!("{policy:?} step {step}, freed"));
        }
    }
}

/// The exit status of a forked child that runs `child` (which must only make system calls:
/// the parent may have other threads) and exits with what it returns.
fn in_forked_child(child: impl FnOnce() -> i32) -> libc::c_int {
    // SAFETY: the child runs only `child`, which makes raw system calls and no allocation,
    // then `_exit`s without unwinding or running destructors.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = child();
        // SAFETY: ends the child at once.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child just forked; `status` is a valid out pointer.
    let waited = unsafe { libc::waitpid(pid, &raw mut status, 0) };
    assert_eq!(waited, pid, "waitpid: {}", std::io::Error::last_os_error());
    status
}

/// Reads `/proc/self/maps` into `buf` with raw system calls; returns the length read.
fn read_maps(buf: &mut [u8]) -> usize {
    // SAFETY: a NUL-terminated path; opening has no other precondition.
    let fd = unsafe { libc::open(c"/proc/self/maps".as_ptr(), libc::O_RDONLY) };
    if fd < 0 {
        return 0;
    }
    let mut len = 0;
    while len < buf.len() {
        // SAFETY: `buf[len..]` is valid for writes of its length.
        let n = unsafe { libc::read(fd, buf[len..].as_mut_ptr().cast(), buf.len() - len) };
        if n <= 0 {
            break;
        }
        len += n as usize;
    }
    // SAFETY: `fd` was opened above.
    unsafe { libc::close(fd) };
    len
}

/// The permissions of the mapping whose line starts with `start` (lowercase hex and a dash),
/// or `None`.
fn perms_at<'a>(maps: &'a [u8], start: &[u8]) -> Option<&'a [u8]> {
    maps.split(|b| *b == b'\n')
        .find(|line| line.starts_with(start))
        .and_then(|line| line.split(|b| *b == b' ').nth(1))
}

/// A forked child sees the execution view read-only and executable, and no alias at all:
/// it cannot patch the parent's code.
#[test]
fn a_forked_child_has_no_writable_view_of_the_code() {
    if std::env::var_os(common::TEST_RUNNER_ENV).is_some() {
        common::skipped(
            "a_forked_child_has_no_writable_view_of_the_code",
            "emulator",
            "qemu-user does not emulate MADV_DONTFORK: its children inherit every mapping",
        );
        return;
    }
    let host = DualMappedHost::new();
    let map = StdJitMap::new(host);
    let base = map.reserve(4 * page()).unwrap();
    let code = code::ret_const(5);
    let seg = [Segment::new(Prot::READ_EXEC, base, code.len(), &code)];
    map.initialize(&InitRequest::new(&seg, &[])).unwrap();
    let mapcore_std::StdHost::DualMapped(dual) = map.host() else {
        unreachable!("a dual-mapped map");
    };
    let alias = dual.alias_of(base).expect("the slab's alias");
    // In the parent both views are there: the alias read-write, the code read-only.
    assert_eq!(perms_of(alias, alias + page()), Ok("rw-s".into()));
    assert_eq!(perms_of(base, base + page()), Ok("r-xs".into()));
    let view_key = format!("{base:x}-").into_bytes();
    let alias_key = format!("{alias:x}-").into_bytes();
    let status = in_forked_child(|| {
        let mut buf = [0u8; 1 << 16];
        let len = read_maps(&mut buf);
        let maps = &buf[..len];
        if len == 0 {
            return 2;
        }
        if perms_at(maps, &alias_key).is_some() {
            return 3; // the alias was inherited
        }
        match perms_at(maps, &view_key) {
            Some(b"r-xs") => {}
            _ => return 4,
        }
        // Nothing writable and executable either.
        let wx = maps.split(|b| *b == b'\n').any(|line| {
            let perms = line.split(|b| *b == b' ').nth(1).unwrap_or(b"");
            perms.contains(&b'w') && perms.contains(&b'x')
        });
        if wx {
            return 5;
        }
        // SAFETY: the child inherited the execution view, executable.
        if unsafe { common::call0(base) } != 5 {
            return 6;
        }
        0
    });
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child: status {status:#x} (exit 3: alias inherited, 4: view not r-xs, 5: W+X)"
    );
}

/// A call into a freed code region stops at once: on a trap instruction (Retain: the page
/// stays executable, filled with traps) or on a non-executable page (Discard).
#[test]
fn a_call_into_freed_code_traps() {
    // The trap instruction: `int3` on x86-64 (SIGTRAP), `udf #0` on aarch64 (SIGILL).
    let trap = if cfg!(target_arch = "x86_64") {
        libc::SIGTRAP
    } else {
        libc::SIGILL
    };
    for (policy, signal) in [
        (DiscardPolicy::Retain, trap),
        (DiscardPolicy::Discard, libc::SIGSEGV),
    ] {
        let map = map_with(policy);
        let base = map.reserve(4 * page()).unwrap();
        let code = code::ret_const(3);
        let seg = [Segment::new(Prot::READ_EXEC, base, code.len(), &code)];
        let key = map.initialize(&InitRequest::new(&seg, &[])).unwrap();
        map.deinitialize(key).unwrap();
        let status = in_forked_child(|| {
            // SAFETY: deliberately calls freed code; the child is killed by the signal this
            // test expects before it could return.
            let _ = unsafe { common::call0(key) };
            0
        });
        assert!(
            libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == signal,
            "{policy:?}: expected signal {signal}, status {status:#x}"
        );
    }
}

/// The open file descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Detection probes with real mappings and memory files, and leaves none behind (in a
/// process of its own, so that no other test's mappings come and go meanwhile).
#[test]
fn detection_leaves_nothing_behind() {
    common::in_own_process("detection_leaves_nothing_behind", || {
        let (maps, fds) = (vmas().len(), open_fds());
        for _ in 0..20 {
            let detection = mapcore_std::detect();
            assert!(!detection.reason().is_empty());
        }
        assert_eq!(
            (vmas().len(), open_fds()),
            (maps, fds),
            "mappings, descriptors"
        );
    });
}

/// A memory file that cannot be created (out of file descriptors) is an error from `reserve`
/// that names the cause, and leaves no mapping, descriptor or slab behind.
#[test]
fn reserve_without_file_descriptors_reports_emfile() {
    common::in_own_process("reserve_without_file_descriptors_reports_emfile", || {
        let map = map_with(DiscardPolicy::Discard);
        let (maps, fds) = (vmas().len(), open_fds());
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: reads this process's limit into a valid struct.
        let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) };
        assert_eq!(rc, 0);
        let saved = limit;
        limit.rlim_cur = 0; // no new descriptor at all
                            // SAFETY: lowers this (child) process's own soft limit; a valid struct.
        let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit) };
        assert_eq!(rc, 0);
        let error = map.reserve(4 * page()).unwrap_err();
        // SAFETY: restores the limit read above.
        let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const saved) };
        assert_eq!(rc, 0);
        let Error::Host { error: os, .. } = error else {
            panic!("expected a host error, got {error:?}");
        };
        assert_eq!(os.raw_os_error(), libc::EMFILE, "{error}");
        assert!(error.to_string().contains("Too many open files"), "{error}");
        assert_eq!(map.slab_count(), 0);
        assert_eq!(
            (vmas().len(), open_fds()),
            (maps, fds),
            "nothing left behind"
        );
        // With descriptors again, reserve works.
        let base = map.reserve(4 * page()).unwrap();
        map.release(base).unwrap();
    });
}

/// Named shared memory: the name is in `/dev/shm` from reserve until it is unlinked early
/// (once every process that needs it has opened it) or the slab is released; an early unlink
/// keeps the slab usable and is done once.
#[test]
fn shared_memory_names_are_unlinked_early_or_at_release() {
    use mapcore_std::{Backing, Host};
    let prefix = format!("mapcore_dual_test_{}", std::process::id());
    let host = DualMappedHost::with_backing(Backing::SharedMemory { prefix });
    let size = 2 * page();
    let base = host.reserve(size).unwrap();
    let path =
        |name: &std::ffi::CStr| std::path::Path::new("/dev/shm").join(&name.to_str().unwrap()[1..]);
    let name = host.shared_memory_name(base).expect("a name");
    assert!(path(&name).exists(), "{name:?}");
    assert_eq!(host.slab_size(base), Some(size));
    assert_eq!(host.slab_size(base + page()), None, "not a base");
    assert!(host.unlink_shared_memory_name(base));
    assert!(!path(&name).exists());
    assert!(!host.unlink_shared_memory_name(base), "once");
    assert_eq!(host.shared_memory_name(base), None);
    let other = host.reserve(size).unwrap();
    let other_name = host.shared_memory_name(other).unwrap();
    assert_ne!(other_name, name);
    // SAFETY: both slabs were reserved above and nothing refers to them.
    unsafe {
        host.release(base, size).unwrap();
        host.release(other, size).unwrap();
    }
    assert!(!path(&other_name).exists(), "release unlinks");
}
