//! `mapcore-executor` driven over its wire protocol by a test controller: the executor runs as
//! a child process on pipes (`filedescs=0,1`, its stdin and stdout), exactly as llvm-jitlink
//! drives it, and gets well-formed, malformed and hostile input.
//!
//! The SPS bytes are built and read here by hand, independently of `mapcore-sps`, so that a
//! codec bug cannot cancel itself out.
#![cfg(target_os = "linux")]

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

const EXE: &str = env!("CARGO_BIN_EXE_mapcore-executor");

const SETUP: u64 = 0;
const HANGUP: u64 = 1;
const RESULT: u64 = 2;
const CALL: u64 = 3;

const RESERVE: &str = "__llvm_orc_SimpleExecutorMemoryManager_reserve_wrapper";
const INITIALIZE: &str = "__llvm_orc_SimpleExecutorMemoryManager_initialize_wrapper";
const DEINITIALIZE: &str = "__llvm_orc_SimpleExecutorMemoryManager_deinitialize_wrapper";
const RELEASE: &str = "__llvm_orc_SimpleExecutorMemoryManager_release_wrapper";
const MEM_INSTANCE: &str = "__llvm_orc_SimpleExecutorMemoryManager_Instance";
const REGISTER_EH: &str = "llvm_orc_registerEHFrameAllocAction";
const DEREGISTER_EH: &str = "llvm_orc_deregisterEHFrameAllocAction";
const REGISTER_GDB: &str = "llvm_orc_registerJITLoaderGDBAllocAction";

/// LLVM 22's mandatory names (deinitialize included), measured against llvm-jitlink-22.
const LLVM22_NAMES: [&str; 27] = [
    "__llvm_orc_SimpleRemoteEPC_dispatch_ctx",
    "__llvm_orc_SimpleRemoteEPC_dispatch_fn",
    "__llvm_orc_bootstrap_run_as_main_wrapper",
    "__llvm_orc_bootstrap_run_as_void_function_wrapper",
    "__llvm_orc_bootstrap_run_as_int_function_wrapper",
    "__llvm_orc_SimpleExecutorDylibManager_Instance",
    "__llvm_orc_SimpleExecutorDylibManager_open_wrapper",
    "__llvm_orc_SimpleExecutorDylibManager_resolve_wrapper",
    MEM_INSTANCE,
    RESERVE,
    INITIALIZE,
    DEINITIALIZE,
    RELEASE,
    "__llvm_orc_bootstrap_mem_write_uint8s_wrapper",
    "__llvm_orc_bootstrap_mem_write_uint16s_wrapper",
    "__llvm_orc_bootstrap_mem_write_uint32s_wrapper",
    "__llvm_orc_bootstrap_mem_write_uint64s_wrapper",
    "__llvm_orc_bootstrap_mem_write_buffers_wrapper",
    "__llvm_orc_bootstrap_mem_write_pointers_wrapper",
    "__llvm_orc_bootstrap_mem_read_uint8s_wrapper",
    "__llvm_orc_bootstrap_mem_read_uint16s_wrapper",
    "__llvm_orc_bootstrap_mem_read_uint32s_wrapper",
    "__llvm_orc_bootstrap_mem_read_uint64s_wrapper",
    "__llvm_orc_bootstrap_mem_read_buffers_wrapper",
    "__llvm_orc_bootstrap_mem_read_strings_wrapper",
    REGISTER_EH,
    DEREGISTER_EH,
];

/// orc-rt's names for the same memory interface.
const ORC_RT: MemNames = MemNames {
    instance: "orc_rt_ci_SimpleNativeMemoryMap_Instance",
    reserve: "orc_rt_ci_sps_SimpleNativeMemoryMap_reserve",
    initialize: "orc_rt_ci_sps_SimpleNativeMemoryMap_initialize",
    deinitialize: "orc_rt_ci_sps_SimpleNativeMemoryMap_deinitializeMultiple",
    release: "orc_rt_ci_sps_SimpleNativeMemoryMap_releaseMultiple",
};

const LLVM: MemNames = MemNames {
    instance: MEM_INSTANCE,
    reserve: RESERVE,
    initialize: INITIALIZE,
    deinitialize: DEINITIALIZE,
    release: RELEASE,
};

/// A segment of an initialize request: group byte, address, size, content.
type Seg<'a> = (u8, u64, u64, &'a [u8]);

/// One name set of the memory interface.
#[derive(Clone, Copy)]
struct MemNames {
    instance: &'static str,
    reserve: &'static str,
    initialize: &'static str,
    deinitialize: &'static str,
    release: &'static str,
}

// ---- SPS, by hand -----------------------------------------------------------------------------

/// Builds SPS bytes one field at a time.
#[derive(Default, Clone)]
struct Sps(Vec<u8>);

impl Sps {
    fn new() -> Self {
        Self::default()
    }
    fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    fn i32(mut self, v: i32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(self, b: &[u8]) -> Self {
        let mut s = self.u64(b.len() as u64);
        s.0.extend_from_slice(b);
        s
    }
    fn str(self, s: &str) -> Self {
        self.bytes(s.as_bytes())
    }
    fn segment(self, group: u8, addr: u64, size: u64, content: &[u8]) -> Self {
        self.u8(group).u64(addr).u64(size).bytes(content)
    }
    fn action(self, func: u64, args: &[u8]) -> Self {
        self.u64(func).bytes(args)
    }
    fn addrs(self, addrs: &[u64]) -> Self {
        addrs
            .iter()
            .fold(self.u64(addrs.len() as u64), |s, &a| s.u64(a))
    }
}

/// Reads SPS bytes one field at a time; panics (fails the test) on a short buffer.
struct Rd<'a>(&'a [u8]);

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        assert!(
            self.0.len() >= n,
            "reply too short: wanted {n} more bytes of {:?}",
            self.0
        );
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        head
    }
    fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().unwrap())
    }
    fn bytes(&mut self) -> &'a [u8] {
        let n = self.u64() as usize;
        self.take(n)
    }
    fn string(&mut self) -> String {
        String::from_utf8(self.bytes().to_vec()).unwrap()
    }
    fn end(&self) {
        assert!(self.0.is_empty(), "trailing reply bytes {:?}", self.0);
    }
}

/// Decodes an `Expected<Addr>` reply.
fn expected_addr(reply: &[u8]) -> Result<u64, String> {
    let mut r = Rd(reply);
    let result = match r.u8() {
        1 => Ok(r.u64()),
        0 => Err(r.string()),
        b => panic!("bad Expected tag {b}"),
    };
    r.end();
    result
}

/// Decodes an `Error` reply.
fn error(reply: &[u8]) -> Result<(), String> {
    let mut r = Rd(reply);
    let result = match r.u8() {
        0 => Ok(()),
        1 => Err(r.string()),
        b => panic!("bad Error tag {b}"),
    };
    r.end();
    result
}

fn header(size: u64, opcode: u64, seqno: u64, tag: u64) -> Vec<u8> {
    [size, opcode, seqno, tag]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

fn range(start: u64, end: u64) -> Vec<u8> {
    Sps::new().u64(start).u64(end).0
}

// ---- the test controller ------------------------------------------------------------------------

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A fresh path in the target's scratch directory.
fn scratch(stem: &str) -> PathBuf {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("executor-{}-{stem}-{n}", std::process::id()))
}

/// Kills `pid` after 60 s unless dropped first, so a hung executor fails the test instead of
/// hanging it.
struct Watchdog(Option<mpsc::Sender<()>>);

impl Watchdog {
    fn new(pid: u32) -> Self {
        let (tx, rx) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            if rx.recv_timeout(Duration::from_secs(60)) == Err(mpsc::RecvTimeoutError::Timeout) {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        });
        Self(Some(tx))
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.0.take());
    }
}

/// What a finished executor left behind.
struct Finished {
    status: ExitStatus,
    stderr: String,
    stats: HashMap<String, u64>,
    session_end: String,
}

impl Finished {
    fn stat(&self, key: &str) -> u64 {
        *self
            .stats
            .get(key)
            .unwrap_or_else(|| panic!("no stat {key} in {:?}", self.stats))
    }

    /// Nothing leaked: every slab released, every EH frame deregistered.
    fn assert_clean(&self) {
        assert_eq!(self.stat("live_slabs_after_shutdown"), 0);
        assert_eq!(self.stat("shutdown_failed"), 0);
        assert_eq!(
            self.stat("slabs_reserved"),
            self.stat("slabs_released") + self.stat("slabs_released_at_shutdown")
        );
        assert_eq!(self.stat("eh_register"), self.stat("eh_deregister"));
        assert_eq!(self.stat("eh_frames_registered_after_shutdown"), 0);
        assert_eq!(self.stat("debug_register"), self.stat("debug_deregister"));
        assert_eq!(self.stat("debug_objects_registered_after_shutdown"), 0);
        assert_eq!(self.stat("shm_live_slabs_after_shutdown"), 0);
        assert_eq!(self.stat("shm_shutdown_failed"), 0);
        assert_eq!(
            self.stat("shm_slabs_reserved"),
            self.stat("shm_slabs_released") + self.stat("shm_slabs_released_at_shutdown")
        );
    }
}

fn read_stats(path: &PathBuf) -> (HashMap<String, u64>, String) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut stats = HashMap::new();
    let mut end = String::new();
    for line in text.lines() {
        let (key, value) = line.split_once('=').expect("key=value");
        if key == "session_end" {
            end = value.to_owned();
        } else if key.starts_with("wx_") {
            // The W^X mode and why: text, checked by `the_wx_mode_is_reported`.
            assert!(!value.is_empty(), "{key} is empty");
        } else {
            stats.insert(key.to_owned(), value.parse().expect("number"));
        }
    }
    (stats, end)
}

/// An executor child speaking SimpleRemoteEPC on its stdin/stdout.
struct Executor {
    child: Child,
    to: Option<ChildStdin>,
    from: ChildStdout,
    stats_path: PathBuf,
    stderr_path: PathBuf,
    symbols: HashMap<String, u64>,
    triple: String,
    page_size: u64,
    seqno: u64,
    _watchdog: Watchdog,
}

impl Executor {
    /// Starts an executor with `filedescs=0,1` and reads its Setup.
    fn start() -> Self {
        Self::launch(Command::new(EXE).arg("filedescs=0,1"))
    }

    fn launch(command: &mut Command) -> Self {
        let stats_path = scratch("stats");
        let stderr_path = scratch("stderr");
        let traced = command
            .get_envs()
            .any(|(key, value)| key == "MAPCORE_EXECUTOR_TRACE" && value.is_some());
        if !traced {
            command.env_remove("MAPCORE_EXECUTOR_TRACE");
        }
        let mut child = command
            .env("MAPCORE_EXECUTOR_STATS", &stats_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr_path).unwrap())
            .spawn()
            .expect("spawn mapcore-executor");
        let watchdog = Watchdog::new(child.id());
        let to = child.stdin.take();
        let from = child.stdout.take().unwrap();
        let mut exe = Self {
            child,
            to,
            from,
            stats_path,
            stderr_path,
            symbols: HashMap::new(),
            triple: String::new(),
            page_size: 0,
            seqno: 1,
            _watchdog: watchdog,
        };
        exe.read_setup();
        exe
    }

    fn read_setup(&mut self) {
        let (opcode, seqno, tag, payload) = self.receive().expect("a Setup message");
        assert_eq!((opcode, seqno, tag), (SETUP, 0, 0));
        let mut r = Rd(&payload);
        self.triple = r.string();
        self.page_size = r.u64();
        assert_eq!(r.u64(), 0, "the bootstrap map is empty");
        for _ in 0..r.u64() {
            let name = r.string();
            let addr = r.u64();
            assert!(
                self.symbols.insert(name.clone(), addr).is_none(),
                "{name} twice"
            );
        }
        r.end();
    }

    fn sym(&self, name: &str) -> u64 {
        *self
            .symbols
            .get(name)
            .unwrap_or_else(|| panic!("{name} not advertised"))
    }

    fn instance(&self) -> u64 {
        self.sym(MEM_INSTANCE)
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        let to = self.to.as_mut().expect("stdin open");
        to.write_all(bytes).unwrap();
        to.flush().unwrap();
    }

    fn send(&mut self, opcode: u64, seqno: u64, tag: u64, payload: &[u8]) {
        let mut message = header(32 + payload.len() as u64, opcode, seqno, tag);
        message.extend_from_slice(payload);
        self.send_raw(&message);
    }

    /// The next message, or `None` at EOF.
    fn receive(&mut self) -> Option<(u64, u64, u64, Vec<u8>)> {
        let mut head = [0u8; 32];
        let mut got = 0;
        while got < 32 {
            match self.from.read(&mut head[got..]).unwrap() {
                0 if got == 0 => return None,
                0 => panic!("EOF inside a header"),
                n => got += n,
            }
        }
        let field = |i: usize| u64::from_le_bytes(head[i * 8..i * 8 + 8].try_into().unwrap());
        let mut payload = vec![0u8; (field(0) - 32) as usize];
        self.from.read_exact(&mut payload).unwrap();
        Some((field(1), field(2), field(3), payload))
    }

    /// Calls the wrapper at `tag` and returns its Result payload.
    fn call_tag(&mut self, tag: u64, args: &[u8]) -> Vec<u8> {
        let seqno = self.seqno;
        self.seqno += 1;
        self.send(CALL, seqno, tag, args);
        let (opcode, got_seqno, got_tag, payload) = self.receive().expect("a Result");
        assert_eq!(
            (opcode, got_seqno, got_tag),
            (RESULT, seqno, 0),
            "{payload:?}"
        );
        payload
    }

    fn call(&mut self, name: &str, args: &[u8]) -> Vec<u8> {
        self.call_tag(self.sym(name), args)
    }

    fn reserve_with(&mut self, names: MemNames, size: u64) -> Result<u64, String> {
        let args = Sps::new().u64(self.sym(names.instance)).u64(size).0;
        expected_addr(&self.call(names.reserve, &args))
    }

    fn reserve(&mut self, size: u64) -> u64 {
        self.reserve_with(LLVM, size).expect("reserve")
    }

    /// initialize with `segments` (group, addr, size, content) and `actions` (finalize fn,
    /// args, dealloc fn, args).
    fn initialize_with(
        &mut self,
        names: MemNames,
        segments: &[Seg<'_>],
        actions: &[(u64, &[u8], u64, &[u8])],
    ) -> Result<u64, String> {
        let mut args = Sps::new()
            .u64(self.sym(names.instance))
            .u64(segments.len() as u64);
        for &(group, addr, size, content) in segments {
            args = args.segment(group, addr, size, content);
        }
        args = args.u64(actions.len() as u64);
        for &(f, f_args, d, d_args) in actions {
            args = args.action(f, f_args).action(d, d_args);
        }
        expected_addr(&self.call(names.initialize, &args.0))
    }

    fn initialize(
        &mut self,
        segments: &[Seg<'_>],
        actions: &[(u64, &[u8], u64, &[u8])],
    ) -> Result<u64, String> {
        self.initialize_with(LLVM, segments, actions)
    }

    fn addr_list(&mut self, wrapper: &str, instance: &str, addrs: &[u64]) -> Result<(), String> {
        let args = Sps::new().u64(self.sym(instance)).addrs(addrs).0;
        error(&self.call(wrapper, &args))
    }

    fn deinitialize(&mut self, keys: &[u64]) -> Result<(), String> {
        self.addr_list(DEINITIALIZE, MEM_INSTANCE, keys)
    }

    fn release(&mut self, bases: &[u64]) -> Result<(), String> {
        self.addr_list(RELEASE, MEM_INSTANCE, bases)
    }

    /// Closes the executor's input (EOF) and collects what it left.
    fn finish(mut self) -> Finished {
        drop(self.to.take());
        let mut rest = Vec::new();
        let _ = self.from.read_to_end(&mut rest);
        self.wait(rest)
    }

    /// Waits for the executor after it hung up: returns the Hangup payload too.
    fn finish_after_hangup(mut self) -> (Vec<u8>, Finished) {
        drop(self.to.take());
        let (opcode, seqno, tag, payload) = self.receive().expect("a Hangup");
        assert_eq!((opcode, seqno, tag), (HANGUP, 0, 0));
        let mut rest = Vec::new();
        let _ = self.from.read_to_end(&mut rest);
        (payload, self.wait(rest))
    }

    fn wait(mut self, rest: Vec<u8>) -> Finished {
        assert!(rest.is_empty(), "bytes after the session: {rest:?}");
        let status = self.child.wait().unwrap();
        let stderr = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let (stats, session_end) = read_stats(&self.stats_path);
        Finished {
            status,
            stderr,
            stats,
            session_end,
        }
    }
}

// ---- well-formed sessions -----------------------------------------------------------------------

#[test]
fn setup_advertises_both_name_sets() {
    let exe = Executor::start();
    assert!(
        exe.triple.starts_with(std::env::consts::ARCH),
        "{}",
        exe.triple
    );
    assert!(exe.triple.ends_with("-linux-gnu"), "{}", exe.triple);
    assert_eq!(exe.page_size, mapcore_std::page_size() as u64);
    for name in LLVM22_NAMES {
        assert_ne!(exe.sym(name), 0, "{name}");
    }
    assert_ne!(exe.sym("__llvm_orc_bootstrap_mem_read_pointers_wrapper"), 0);
    // One memory manager, two name sets.
    assert_eq!(exe.sym(ORC_RT.instance), exe.instance());
    // Every wrapper has its own tag, distinct from every instance.
    let mut tags: Vec<(&str, u64)> = exe
        .symbols
        .iter()
        .filter(|(name, _)| !name.ends_with("_Instance") && !name.contains("Section"))
        .map(|(n, &a)| (n.as_str(), a))
        .collect();
    tags.sort_by_key(|&(_, a)| a);
    for pair in tags.windows(2) {
        assert_ne!(
            pair[0].1, pair[1].1,
            "{} and {} share a tag",
            pair[0].0, pair[1].0
        );
    }
    let done = exe.finish();
    assert!(done.status.success(), "{done:?}", done = done.stderr);
    assert_eq!(done.session_end, "eof");
    assert_eq!(done.stat("calls_total"), 0);
    assert_eq!(done.stat("protocol_errors"), 0);
    assert_eq!(done.stderr, "");
}

fn memory_lifecycle(names: MemNames) {
    let mut exe = Executor::start();
    let page = exe.page_size;
    let base = exe.reserve_with(names, 4 * page).unwrap();
    assert_eq!(base % page, 0);
    let segments: [Seg<'_>; 2] = [(0x01, base, 5, b"hello"), (0x03, base + page, page, b"")];
    let key = exe.initialize_with(names, &segments, &[]).unwrap();
    assert_eq!(key, base, "the key is the lowest segment");
    // The content is there, the rest of the page is zero.
    let read = Sps::new().u64(1).u64(base).u64(base + 16).0;
    let reply = exe.call("__llvm_orc_bootstrap_mem_read_buffers_wrapper", &read);
    let mut r = Rd(&reply);
    assert_eq!(r.u64(), 1);
    assert_eq!(r.bytes(), b"hello\0\0\0\0\0\0\0\0\0\0\0");
    r.end();
    // Overlap with the live region is refused.
    let overlap = exe.initialize_with(names, &[(0x03, base + page, 8, b"")], &[]);
    assert!(overlap.unwrap_err().contains("overlaps"));
    exe.addr_list(names.deinitialize, names.instance, &[key])
        .unwrap();
    // The pages can be initialized again at once, and read as zero.
    let again = exe
        .initialize_with(names, &[(0x01, base, page, b"")], &[])
        .unwrap();
    assert_eq!(again, base);
    let reply = exe.call("__llvm_orc_bootstrap_mem_read_buffers_wrapper", &read);
    assert_eq!(Rd(&reply).u64(), 1);
    assert_eq!(&reply[16..], [0u8; 16]);
    // A second slab, then both released in one batch (which deinitializes the live region).
    let other = exe.reserve_with(names, page).unwrap();
    exe.addr_list(names.release, names.instance, &[base, other])
        .unwrap();
    let twice = exe
        .addr_list(names.release, names.instance, &[base])
        .unwrap_err();
    assert!(twice.contains("not inside any slab"), "{twice}");
    let done = exe.finish();
    assert!(done.status.success());
    done.assert_clean();
    assert_eq!(done.stat("slabs_reserved"), 2);
    assert_eq!(done.stat("slabs_released"), 2);
    assert_eq!(done.stat("reserve_bytes"), 5 * page);
    assert_eq!(done.stat("regions_deinitialized"), 1);
    assert_eq!(done.stat("protocol_errors"), 0);
    assert_eq!(done.stat(&format!("calls.{}", names.reserve)), 2);
    assert_eq!(done.stat(&format!("calls.{}", names.release)), 2);
}

#[test]
fn memory_lifecycle_with_llvm_names() {
    memory_lifecycle(LLVM);
}

#[test]
fn memory_lifecycle_with_orc_rt_names() {
    memory_lifecycle(ORC_RT);
}

#[test]
fn batches_go_back_to_front_and_report_each_failure() {
    let mut exe = Executor::start();
    let page = exe.page_size;
    let base = exe.reserve(4 * page);
    let keys: Vec<u64> = (0..3)
        .map(|i| {
            exe.initialize(&[(0x03, base + i * page, page, b"")], &[])
                .unwrap()
        })
        .collect();
    // Entry 1 is bogus; entries 0 and 2 are still deinitialized.
    let err = exe
        .deinitialize(&[keys[0], base + 3 * page + 8, keys[2]])
        .unwrap_err();
    assert!(err.contains("1 batch entries failed"), "{err}");
    assert!(err.contains("(entry 1)"), "{err}");
    assert!(
        !err.contains("(entry 0)") && !err.contains("(entry 2)"),
        "{err}"
    );
    // Duplicates: the first processed (from the back) succeeds, the next fails.
    let err = exe.deinitialize(&[keys[1], keys[1]]).unwrap_err();
    assert!(
        err.contains("(entry 0)") && err.contains("not the key of any region"),
        "{err}"
    );
    exe.deinitialize(&[]).unwrap();
    let err = exe.release(&[base + page]).unwrap_err();
    assert!(err.contains("not its base"), "{err}");
    exe.release(&[base]).unwrap();
    let done = exe.finish();
    assert!(done.status.success());
    done.assert_clean();
    assert_eq!(done.stat("regions_deinitialized"), 3);
}

/// A batch of many bad entries gets a short error reply: the first failures in full, then a
/// count (one message per entry made a 15 MiB request answer with 119 MiB).
#[test]
fn batch_errors_are_bounded() {
    let mut exe = Executor::start();
    let page = exe.page_size;
    let base = exe.reserve(page);
    let key = exe.initialize(&[(0x03, base, 8, b"")], &[]).unwrap();
    const ENTRIES: u64 = 200_000;
    let garbage: Vec<u64> = (0..ENTRIES).map(|i| 0x1000 + i * 8).collect();
    let mut keys = garbage.clone();
    keys.push(key);
    let err = exe.deinitialize(&keys).unwrap_err();
    assert!(err.len() < 2048, "{} bytes: {}...", err.len(), &err[..200]);
    assert!(
        err.contains(&format!("{ENTRIES} batch entries failed")),
        "{err}"
    );
    assert!(
        err.contains(&format!("; and {} more", ENTRIES - 8)),
        "{err}"
    );
    // Back to front: the last bad entries are reported in full.
    assert!(err.contains(&format!("(entry {})", ENTRIES - 1)), "{err}");
    let err = exe.release(&garbage).unwrap_err();
    assert!(err.len() < 2048, "{} bytes", err.len());
    assert!(
        err.contains(&format!("; and {} more", ENTRIES - 8)),
        "{err}"
    );
    // The good entry was processed: the slab is free again.
    assert_eq!(exe.initialize(&[(0x03, base, page, b"")], &[]), Ok(base));
    let done = exe.finish();
    assert!(done.status.success());
    done.assert_clean();
}

#[cfg(target_arch = "x86_64")]
/// The stats name the W^X mode and why: detected by default, or forced with
/// `MAPCORE_EXECUTOR_WX`; JIT code runs, is freed and runs again at the same address in
/// either mode.
#[test]
fn the_wx_mode_is_reported_and_either_mode_runs_code() {
    for forced in [None, Some("flip"), Some("dual-mapped")] {
        let mut command = Command::new(EXE);
        command.arg("filedescs=0,1");
        match forced {
            Some(mode) => command.env("MAPCORE_EXECUTOR_WX", mode),
            None => command.env_remove("MAPCORE_EXECUTOR_WX"),
        };
        let mut exe = Executor::launch(&mut command);
        let base = exe.reserve(exe.page_size);
        for round in 0..3u8 {
            // mov eax, edi; add eax, round; ret
            let code = [0x89, 0xf8, 0x83, 0xc0, round, 0xc3];
            exe.initialize(&[(0x05, base, code.len() as u64, &code)], &[])
                .unwrap();
            let args = Sps::new().u64(base).i32(40).0;
            let reply = exe.call("__llvm_orc_bootstrap_run_as_int_function_wrapper", &args);
            assert_eq!(reply, (40 + i32::from(round)).to_le_bytes(), "{forced:?}");
            exe.deinitialize(&[base]).unwrap();
        }
        let stats_path = exe.stats_path.clone();
        let done = exe.finish();
        assert!(done.status.success());
        let text = std::fs::read_to_string(stats_path).unwrap();
        let value = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_owned)
        };
        let mode = value("wx_mode").expect("wx_mode line");
        let reason = value("wx_reason").expect("wx_reason line");
        match forced {
            Some(want) => {
                assert_eq!(mode, want);
                assert_eq!(reason, "chosen by MAPCORE_EXECUTOR_WX");
            }
            None => {
                assert!(mode == "flip" || mode == "dual-mapped", "{mode}");
                assert!(reason.len() > 20, "{reason}");
            }
        }
    }
}

#[test]
fn runs_jit_code() {
    let mut exe = Executor::start();
    let page = exe.page_size;
    let base = exe.reserve(page);
    // mov eax, edi; ret: returns its first argument (argc for main).
    exe.initialize(&[(0x05, base, 3, &[0x89, 0xf8, 0xc3])], &[])
        .unwrap();
    let args = Sps::new().u64(base).u64(3).str("a").str("b").str("c").0;
    let reply = exe.call("__llvm_orc_bootstrap_run_as_main_wrapper", &args);
    assert_eq!(reply, 3i64.to_le_bytes());
    let args = Sps::new().u64(base).i32(-17).0;
    let reply = exe.call("__llvm_orc_bootstrap_run_as_int_function_wrapper", &args);
    assert_eq!(reply, (-17i32).to_le_bytes());
    let reply = exe.call(
        "__llvm_orc_bootstrap_run_as_void_function_wrapper",
        &base.to_le_bytes(),
    );
    assert_eq!(reply, 0i32.to_le_bytes());
    // Not code: the null page, an instance token, a data page of our own slab. The reply is
    // empty (no error channel in an int64_t), and the executor lives on.
    let data = exe.reserve(page);
    for addr in [0, 8, exe.instance(), data] {
        let args = Sps::new().u64(addr).u64(0).0;
        assert_eq!(
            exe.call("__llvm_orc_bootstrap_run_as_main_wrapper", &args),
            b"",
            "{addr:#x}"
        );
    }
    let args = Sps::new().u64(base).u64(1).bytes(b"nul\0inside").0;
    assert_eq!(
        exe.call("__llvm_orc_bootstrap_run_as_main_wrapper", &args),
        b""
    );
    let done = exe.finish();
    assert!(done.status.success());
    done.assert_clean();
    assert_eq!(done.stat("live_slabs_at_eof"), 2);
    assert_eq!(done.stat("live_regions_at_eof"), 1);
}

/// The kernel's vsyscall page, listed executable in `/proc/self/maps` on x86-64, and the top of
/// the address space: run-as, finalize and dealloc actions aimed there are refused, and the
/// executor lives on.
#[test]
fn kernel_addresses_are_not_code() {
    let mut exe = Executor::start();
    let page = exe.page_size;
    let base = exe.reserve(page);
    for addr in [
        0xffff_ffff_ff60_0000u64,
        0xffff_ffff_ff60_0400,
        u64::MAX - 15,
    ] {
        let args = Sps::new().u64(addr).u64(0).0;
        let reply = exe.call("__llvm_orc_bootstrap_run_as_main_wrapper", &args);
        assert_eq!(reply, b"", "{addr:#x}");
        let args = Sps::new().u64(addr).0;
        let reply = exe.call("__llvm_orc_bootstrap_run_as_void_function_wrapper", &args);
        assert_eq!(reply, b"", "{addr:#x}");
        let err = exe
            .initialize(&[(0x03, base, 8, b"")], &[(addr, b"", 0, b"")])
            .unwrap_err();
        assert!(err.contains("not executable code"), "{addr:#x}: {err}");
        let key = exe
            .initialize(&[(0x03, base, 8, b"")], &[(0, b"", addr, b"")])
            .unwrap();
        let err = exe.deinitialize(&[key]).unwrap_err();
        assert!(err.contains("not executable code"), "{addr:#x}: {err}");
    }
    let done = exe.finish();
    assert!(done.status.success(), "{:?} {}", done.status, done.stderr);
    done.assert_clean();
}

#[test]
fn memory_access_is_real_and_checked() {
    let mut exe = Executor::start();
    let page = exe.page_size;
    let base = exe.reserve(2 * page);
    let w = |n: &str| format!("__llvm_orc_bootstrap_mem_write_{n}_wrapper");
    let r = |n: &str| format!("__llvm_orc_bootstrap_mem_read_{n}_wrapper");
    // Reserved memory is writable: write one of each width.
    assert_eq!(
        exe.call(&w("uint8s"), &Sps::new().u64(1).u64(base).u8(0xab).0),
        b""
    );
    assert_eq!(
        exe.call(
            &w("uint16s"),
            &Sps::new().u64(1).u64(base + 2).u16(0xbeef).0
        ),
        b""
    );
    assert_eq!(
        exe.call(
            &w("uint32s"),
            &Sps::new().u64(1).u64(base + 4).u32(0xdead_beef).0
        ),
        b""
    );
    assert_eq!(
        exe.call(
            &w("uint64s"),
            &Sps::new().u64(1).u64(base + 8).u64(u64::MAX - 1).0
        ),
        b""
    );
    assert_eq!(
        exe.call(
            &w("pointers"),
            &Sps::new().u64(1).u64(base + 16).u64(base).0
        ),
        b""
    );
    let text = Sps::new()
        .u64(2)
        .u64(base + 24)
        .bytes(b"jit\0")
        .u64(base + 32)
        .bytes(b"xyz\0")
        .0;
    assert_eq!(exe.call(&w("buffers"), &text), b"");
    // Read them back.
    let one = |addr: u64| Sps::new().u64(1).u64(addr).0;
    assert_eq!(
        exe.call(&r("uint8s"), &one(base)),
        Sps::new().u64(1).u8(0xab).0
    );
    assert_eq!(
        exe.call(&r("uint16s"), &one(base + 2)),
        Sps::new().u64(1).u16(0xbeef).0
    );
    assert_eq!(
        exe.call(&r("uint32s"), &one(base + 4)),
        Sps::new().u64(1).u32(0xdead_beef).0
    );
    assert_eq!(
        exe.call(&r("uint64s"), &one(base + 8)),
        Sps::new().u64(1).u64(u64::MAX - 1).0
    );
    assert_eq!(
        exe.call(&r("pointers"), &one(base + 16)),
        Sps::new().u64(1).u64(base).0
    );
    let strings = Sps::new().u64(2).u64(base + 24).u64(base + 32).0;
    assert_eq!(
        exe.call(&r("strings"), &strings),
        Sps::new().u64(2).str("jit").str("xyz").0
    );
    let buffers = Sps::new()
        .u64(2)
        .u64(base)
        .u64(base + 2)
        .u64(base + 2)
        .u64(base + 2)
        .0;
    assert_eq!(
        exe.call(&r("buffers"), &buffers),
        Sps::new().u64(2).bytes(&[0xab, 0]).bytes(&[]).0
    );
    // A string that ends right before an unmapped page: page-sized chunks find it.
    let tail = base + 2 * page - 4;
    exe.call(
        &w("buffers"),
        &Sps::new().u64(1).u64(tail).bytes(b"end\0").0,
    );
    assert_eq!(
        exe.call(&r("strings"), &one(tail)),
        Sps::new().u64(1).str("end").0
    );

    // Unmapped and read-only memory: reads fail with an empty reply (no error channel),
    // writes with an SPS Error, and nothing crashes.
    for addr in [0u64, 8, u64::MAX - 3] {
        assert_eq!(exe.call(&r("uint32s"), &one(addr)), b"", "{addr:#x}");
        assert_eq!(exe.call(&r("strings"), &one(addr)), b"", "{addr:#x}");
        let err = error(&exe.call(&w("uint32s"), &Sps::new().u64(1).u64(addr).u32(1).0));
        assert!(err.unwrap_err().contains("write at"), "{addr:#x}");
    }
    let backwards = Sps::new().u64(1).u64(base + 8).u64(base).0;
    assert_eq!(exe.call(&r("buffers"), &backwards), b"");
    let huge = Sps::new().u64(1).u64(base).u64(base + (1 << 40)).0;
    assert_eq!(exe.call(&r("buffers"), &huge), b"");
    let ro = exe.reserve(page);
    exe.initialize(&[(0x01, ro, 4, b"rodt")], &[]).unwrap();
    assert_eq!(
        exe.call(&r("uint8s"), &one(ro)),
        Sps::new().u64(1).u8(b'r').0
    );
    let err = error(&exe.call(&w("uint8s"), &Sps::new().u64(1).u64(ro).u8(0).0)).unwrap_err();
    assert!(err.contains("Bad address"), "{err}");
    assert_eq!(
        exe.call(&r("uint8s"), &one(ro)),
        Sps::new().u64(1).u8(b'r').0
    );
    // Undecodable arguments.
    assert_eq!(exe.call(&r("uint8s"), &[1, 2, 3]), b"");
    let err = error(&exe.call(&w("uint8s"), &Sps::new().u64(5).0)).unwrap_err();
    assert!(err.contains("cannot decode"), "{err}");
    let done = exe.finish();
    assert!(done.status.success());
    done.assert_clean();
    assert_eq!(done.stat("protocol_errors"), 2);
}

#[test]
fn dylibs_open_and_resolve() {
    let mut exe = Executor::start();
    let instance = exe.sym("__llvm_orc_SimpleExecutorDylibManager_Instance");
    let open = "__llvm_orc_SimpleExecutorDylibManager_open_wrapper";
    let resolve = "__llvm_orc_SimpleExecutorDylibManager_resolve_wrapper";
    let this = expected_addr(&exe.call(open, &Sps::new().u64(instance).str("").u64(0).0)).unwrap();
    let lookup = Sps::new()
        .u64(this)
        .u64(3)
        .str("printf")
        .u8(1)
        .str("qsort")
        .u8(0)
        .str("mapcore_no_such_symbol")
        .u8(0)
        .0;
    let reply = exe.call(resolve, &lookup);
    let mut r = Rd(&reply);
    assert_eq!((r.u8(), r.u64()), (1, 3));
    for _ in 0..2 {
        assert_eq!(r.u8(), 1, "found");
        assert_ne!(r.u64(), 0);
        assert_eq!((r.u8(), r.u8()), (0x10, 0), "Exported");
    }
    assert_eq!(r.u8(), 0, "missing symbol is None");
    r.end();
    // Another library, resolved through its own handle.
    let libm = expected_addr(&exe.call(open, &Sps::new().u64(instance).str("libm.so.6").u64(0).0))
        .unwrap();
    let reply = exe.call(resolve, &Sps::new().u64(libm).u64(1).str("cos").u8(1).0);
    assert_eq!(&reply[..10], &[1, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
    // Failures.
    let missing = exe.call(
        open,
        &Sps::new()
            .u64(instance)
            .str("/nonexistent/libx.so")
            .u64(0)
            .0,
    );
    assert!(expected_addr(&missing).unwrap_err().contains("cannot open"));
    let wrong = exe.call(open, &Sps::new().u64(instance + 1).str("").u64(0).0);
    assert!(expected_addr(&wrong)
        .unwrap_err()
        .contains("not the instance"));
    let bogus = exe.call(
        resolve,
        &Sps::new().u64(0x1234).u64(1).str("printf").u8(1).0,
    );
    assert!(expected_addr(&bogus).unwrap_err().contains("not a handle"));
    let nul = exe.call(
        resolve,
        &Sps::new().u64(this).u64(1).bytes(b"pri\0ntf").u8(1).0,
    );
    assert_eq!(nul, Sps::new().u8(1).u64(1).u8(0).0);
    let done = exe.finish();
    assert!(done.status.success());
    assert_eq!(done.stat("protocol_errors"), 2);
}

/// A minimal `.eh_frame`: GCC's x86-64 CIE (24 bytes) and the zero terminator.
const EH_FRAME: [u8; 28] = [
    0x14, 0, 0, 0, // length
    0, 0, 0, 0, // CIE id
    1, b'z', b'R', 0, // version, augmentation "zR"
    0x01, 0x78, 0x10, // code align 1, data align -8, return address register 16
    0x01, 0x1b, // augmentation data: FDE pointer encoding pcrel|sdata4
    0x0c, 0x07, 0x08, 0x90, 0x01, 0x00, 0x00, // def_cfa rsp+8, offset r16 at cfa-8, padding
    0, 0, 0, 0, // terminator
];

#[test]
fn eh_frame_actions_register_and_deregister() {
    let mut exe = Executor::start();
    let page = exe.page_size;
    let (reg, dereg) = (exe.sym(REGISTER_EH), exe.sym(DEREGISTER_EH));
    let base = exe.reserve(4 * page);
    let eh = range(base, base + 28);
    let key = exe
        .initialize(&[(0x01, base, 28, &EH_FRAME)], &[(reg, &eh, dereg, &eh)])
        .unwrap();
    // Registering the same section twice is refused; the region is rolled back.
    let twice = exe
        .initialize(
            &[(0x01, base + page, 28, &EH_FRAME)],
            &[(reg, &eh, dereg, &eh)],
        )
        .unwrap_err();
    assert!(twice.contains("already registered"), "{twice}");
    exe.deinitialize(&[key]).unwrap();

    // Malformed sections never reach libgcc, and the failed initialize leaves nothing behind.
    let garbage = [0xffu8, 0, 0, 0, 1, 2, 3, 4];
    let bad = range(base, base + 8);
    let err = exe.initialize(&[(0x01, base, 8, &garbage)], &[(reg, &bad, dereg, &bad)]);
    assert!(err.unwrap_err().contains("overruns"));
    // The records fill the range exactly and no terminator follows it.
    let mut no_terminator = EH_FRAME;
    no_terminator[24] = 1;
    let unterminated = range(base + page, base + page + 24);
    let err = exe.initialize(
        &[
            (0x01, base, 8, b""),
            (0x01, base + page, 28, &no_terminator),
        ],
        &[(reg, &unterminated, dereg, &unterminated)],
    );
    assert!(err.unwrap_err().contains("no zero terminator"));
    let empty = range(base + 2 * page, base + 2 * page + 28);
    let err = exe.initialize(&[(0x01, base, 8, b"")], &[(reg, &empty, dereg, &empty)]);
    assert!(err.unwrap_err().contains("is empty"));
    // An FDE whose CIE pointer leads before the section: libgcc would follow it on the next
    // unwind.
    let mut stray_fde = EH_FRAME[..24].to_vec();
    stray_fde.extend_from_slice(&[20, 0, 0, 0, 0x00, 0x01, 0, 0]);
    stray_fde.extend_from_slice(&[0; 20]);
    let stray_cie = range(base, base + 48);
    let err = exe.initialize(
        &[(0x01, base, 52, &stray_fde)],
        &[(reg, &stray_cie, dereg, &stray_cie)],
    );
    assert!(err
        .unwrap_err()
        .contains("CIE pointer does not lead to a CIE"));
    let unreadable = range(8, 36);
    let err = exe.initialize(&[(0x01, base, 8, b"")], &[(reg, &unreadable, 0, b"")]);
    assert!(err.unwrap_err().contains("not readable"));
    assert_eq!(
        exe.initialize(&[(0x03, base, 4 * page, b"")], &[]).unwrap(),
        base
    );
    exe.deinitialize(&[base]).unwrap();

    // Deregistering an unknown section fails without aborting (libgcc would abort).
    let stray = range(base + 2 * page, base + 2 * page + 28);
    let key = exe
        .initialize(&[(0x03, base, 8, b"")], &[(0, b"", dereg, &stray)])
        .unwrap();
    let err = exe.deinitialize(&[key]).unwrap_err();
    assert!(err.contains("no EH frame registered"), "{err}");
    // Called directly, the actions answer with an SPS Error.
    let err = error(&exe.call(DEREGISTER_EH, &stray)).unwrap_err();
    assert!(err.contains("no EH frame registered"), "{err}");
    assert!(error(&exe.call(REGISTER_EH, &[1, 2]))
        .unwrap_err()
        .contains("bad EH-frame range"));

    // Actions naming something that is not an action or not code.
    let reserve = exe.sym(RESERVE);
    let err = exe
        .initialize(&[(0x03, base, 8, b"")], &[(reserve, b"", 0, b"")])
        .unwrap_err();
    assert!(err.contains("is not an allocation action"), "{err}");
    for target in [8, base, exe.instance()] {
        let err = exe
            .initialize(&[(0x03, base, 8, b"")], &[(target, b"", 0, b"")])
            .unwrap_err();
        assert!(err.contains("not executable code"), "{target:#x}: {err}");
    }

    // A live registration at EOF is deregistered by the shutdown.
    let eh2 = range(base + 3 * page, base + 3 * page + 28);
    exe.initialize(
        &[(0x01, base + 3 * page, 28, &EH_FRAME)],
        &[(reg, &eh2, dereg, &eh2)],
    )
    .unwrap();
    let done = exe.finish();
    assert!(done.status.success(), "{}", done.stderr);
    done.assert_clean();
    assert_eq!(done.stat("eh_register"), 2);
    assert_eq!(done.stat("eh_deregister"), 2);
    assert_eq!(done.stat("live_regions_at_eof"), 1);
}

/// Registrations nobody deregisters (a direct call, a finalize action without its dealloc
/// pair) end before their memory is freed: a section registered again at the same address
/// after a release or deinitialize is a new registration, not "already registered" (with a
/// stale one, the next unwind would walk freed memory). Memory freed by the initialize itself
/// (Finalize lifetime) cannot be registered.
#[test]
fn registrations_end_before_their_memory_is_freed() {
    let mut exe = Executor::start();
    let page = exe.page_size;
    let (reg, dereg) = (exe.sym(REGISTER_EH), exe.sym(DEREGISTER_EH));
    for _ in 0..2 {
        // Called directly, then the slab released.
        let base = exe.reserve(page);
        let eh = range(base, base + 28);
        exe.initialize(&[(0x01, base, 28, &EH_FRAME)], &[]).unwrap();
        error(&exe.call(REGISTER_EH, &eh)).unwrap();
        exe.release(&[base]).unwrap();
        // Usually the same address again; registering there must work.
        let base = exe.reserve(page);
        let eh = range(base, base + 28);
        exe.initialize(&[(0x01, base, 28, &EH_FRAME)], &[]).unwrap();
        error(&exe.call(REGISTER_EH, &eh)).unwrap();
        exe.release(&[base]).unwrap();
        // A finalize action without a dealloc pair, then the region deinitialized.
        let base = exe.reserve(2 * page);
        let eh2 = range(base + page, base + page + 28);
        let key = exe
            .initialize(
                &[(0x01, base + page, 28, &EH_FRAME)],
                &[(reg, &eh2, 0, b"")],
            )
            .unwrap();
        exe.deinitialize(&[key]).unwrap();
        let key = exe
            .initialize(
                &[(0x01, base + page, 28, &EH_FRAME)],
                &[(reg, &eh2, 0, b"")],
            )
            .unwrap();
        // With its dealloc pair, deinitialize still succeeds: the dealloc finds its section.
        exe.deinitialize(&[key]).unwrap();
        let key = exe
            .initialize(
                &[(0x01, base + page, 28, &EH_FRAME)],
                &[(reg, &eh2, dereg, &eh2)],
            )
            .unwrap();
        exe.deinitialize(&[key]).unwrap();
        exe.release(&[base]).unwrap();
    }
    // Nothing may be registered in a Finalize-lifetime segment: it is freed before the
    // initialize returns.
    let base = exe.reserve(2 * page);
    let eh = range(base + page, base + page + 28);
    let gdb = Sps::new().u64(base + page).u64(base + page + 28).u8(0).0;
    for (action, want) in [(reg, "EH"), (exe.sym(REGISTER_GDB), "debug")] {
        let args = if want == "EH" { &eh } else { &gdb };
        let err = exe
            .initialize(
                &[(0x01, base, 8, b""), (0x09, base + page, 28, &EH_FRAME)],
                &[(action, args, 0, b"")],
            )
            .unwrap_err();
        assert!(err.contains("Finalize-lifetime segment"), "{want}: {err}");
    }
    exe.release(&[base]).unwrap();
    let done = exe.finish();
    assert!(done.status.success(), "{}", done.stderr);
    done.assert_clean();
    assert_eq!(done.stat("eh_register"), 2 * 5);
    assert_eq!(done.stat("debug_register"), 0);
    assert_eq!(done.stat("action_failures"), 2);
}

/// A finalize action failing after others registered an EH frame and a debug object (without
/// dealloc pairs): both are undone before the rollback resets the region's pages, while libgcc
/// can still read the section, and the section can be registered again.
#[test]
fn a_failed_initialize_undoes_its_registrations_before_the_rollback() {
    let mut exe = Executor::launch(
        Command::new(EXE)
            .arg("filedescs=0,1")
            .env("MAPCORE_EXECUTOR_TRACE", "1"),
    );
    let page = exe.page_size;
    let (reg, gdb) = (exe.sym(REGISTER_EH), exe.sym(REGISTER_GDB));
    let base = exe.reserve(page);
    let eh = range(base, base + 28);
    let object = Sps::new().u64(base).u64(base + 28).u8(0).0;
    let segment: Seg<'_> = (0x01, base, 28, &EH_FRAME);
    let err = exe
        .initialize(
            &[segment],
            &[(reg, &eh, 0, b""), (gdb, &object, 0, b""), (8, b"", 0, b"")],
        )
        .unwrap_err();
    assert!(err.contains("finalize action 2 failed"), "{err}");
    exe.initialize(&[segment], &[(reg, &eh, 0, b"")]).unwrap();
    let done = exe.finish();
    assert!(done.status.success(), "{}", done.stderr);
    done.assert_clean();
    assert_eq!(done.stat("eh_register"), 2);
    assert!(
        done.stderr
            .contains("an action failed: 2 registrations undone before the rollback"),
        "{}",
        done.stderr
    );
}

/// The GDB JIT action registers a debug object and the registration ends when the object's
/// memory, or the code it describes, is freed; its arguments are checked.
#[test]
fn debug_objects_are_registered_and_unregistered_with_their_memory() {
    let mut exe = Executor::launch(
        Command::new(EXE)
            .arg("filedescs=0,1")
            .env("MAPCORE_EXECUTOR_TRACE", "1"),
    );
    let page = exe.page_size;
    let gdb = exe.sym(REGISTER_GDB);
    let objects = exe.reserve(4 * page);
    let code = exe.reserve(4 * page);
    let elf = b"\x7fELF not really";
    let mut keys = Vec::new();
    for i in 0..4 {
        keys.push(
            exe.initialize(&[(0x01, objects + i * page, elf.len() as u64, elf)], &[])
                .unwrap(),
        );
    }
    // (ExecutorAddrRange, bool), as llvm-jitlink sends it in a finalize action of the code.
    let args = |i: u64, notify: u8| {
        let start = objects + i * page;
        Sps::new()
            .u64(start)
            .u64(start + elf.len() as u64)
            .u8(notify)
            .0
    };
    let a = args(0, 1);
    let code_key = exe
        .initialize(&[(0x05, code, 1, &[0xc3])], &[(gdb, &a, 0, b"")])
        .unwrap();
    // Freeing the code ends it: the object it described lives on.
    exe.deinitialize(&[code_key]).unwrap();
    // Freeing the object ends it: the code lives on.
    let b = args(1, 0);
    exe.initialize(&[(0x05, code, 1, &[0xc3])], &[(gdb, &b, 0, b"")])
        .unwrap();
    exe.deinitialize(&[keys[1]]).unwrap();
    // Called directly, then the objects' slab released.
    error(&exe.call(REGISTER_GDB, &args(2, 1))).unwrap();
    exe.release(&[objects]).unwrap();
    // Live at the end of the session: the shutdown ends it.
    let live = Sps::new().u64(code).u64(code + 1).u8(1).0;
    error(&exe.call(REGISTER_GDB, &live)).unwrap();
    // Bad arguments.
    for bad in [
        Sps::new().u64(code).u64(code).u8(1).0,
        Sps::new().u64(0).u64(8).u8(0).0,
        Sps::new().u64(code).u64(code + 1).u8(2).0,
        Sps::new().u64(code).u64(code + 1).0,
    ] {
        let err = error(&exe.call(REGISTER_GDB, &bad)).unwrap_err();
        assert!(err.contains("debug-object"), "{err}");
    }
    let done = exe.finish();
    assert!(done.status.success(), "{}", done.stderr);
    done.assert_clean();
    assert_eq!(done.stat("debug_register"), 4);
    // Each ended when its memory went, one at a time, the last at the shutdown.
    let freed = |start: u64, end: u64| format!("{start:#x}..{end:#x} is freed: 1 registrations");
    let expected = [
        freed(code, code + page),
        freed(objects + page, objects + 2 * page),
        freed(objects, objects + 4 * page),
        freed(0, u64::MAX),
    ];
    let mut at = 0;
    for line in expected {
        let found = done.stderr[at..].find(&line);
        at += found.unwrap_or_else(|| panic!("no {line:?} in order in {}", done.stderr));
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn foreign_alloc_actions_use_the_c_wrapper_abi() {
    let mut exe = Executor::start();
    let page = exe.page_size;
    let base = exe.reserve(2 * page);
    // CWrapperFunctionBuffer f(const char *, size_t): returns {inline "\0", size 1}, an SPS
    // Error success. mov eax, 0 ; mov edx, 1 ; ret
    let ok = [0xb8, 0, 0, 0, 0, 0xba, 1, 0, 0, 0, 0xc3];
    // Returns {inline "\x01\0\0\0\0\0\0\0", size 8}: an Error with an empty message (too
    // short, but the flag says failure). mov eax, 1 ; mov edx, 8 ; ret
    let fail = [0xb8, 1, 0, 0, 0, 0xba, 8, 0, 0, 0, 0xc3];
    let mut code = ok.to_vec();
    code.resize(16, 0xcc);
    code.extend_from_slice(&fail);
    exe.initialize(&[(0x05, base, code.len() as u64, &code)], &[])
        .unwrap();
    let key = exe
        .initialize(
            &[(0x03, base + page, 8, b"")],
            &[(base, b"args", base, b"")],
        )
        .unwrap();
    exe.deinitialize(&[key]).unwrap();
    let err = exe
        .initialize(&[(0x03, base + page, 8, b"")], &[(base + 16, b"", 0, b"")])
        .unwrap_err();
    assert!(err.contains("finalize action 0 failed"), "{err}");
    assert!(err.contains("returned an undecodable result"), "{err}");
    let done = exe.finish();
    assert!(done.status.success());
    done.assert_clean();
    assert_eq!(done.stat("action_failures"), 1);
}

/// x86-64 code of a wrapper function `f(data, size)` that tail-calls
/// `dispatch_fn(ctx, tag, data, size)`: how the ORC runtime calls the controller.
#[cfg(target_arch = "x86_64")]
fn calls_the_controller(ctx: u64, dispatch_fn: u64, tag: u64) -> Vec<u8> {
    let mut code = vec![0x48, 0x89, 0xfa, 0x48, 0x89, 0xf1]; // mov rdx, rdi ; mov rcx, rsi
    for (opcode, imm) in [(0xbf, ctx), (0xbe, tag), (0xb8, dispatch_fn)] {
        code.extend_from_slice(&[0x48, opcode]); // movabs rdi / rsi / rax, imm
        code.extend_from_slice(&imm.to_le_bytes());
    }
    code.extend_from_slice(&[0xff, 0xe0]); // jmp rax
    code
}

#[cfg(target_arch = "x86_64")]
#[test]
fn jit_wrappers_are_called_and_call_the_controller_back() {
    const TAG: u64 = 0x1234_5678;
    let mut exe = Executor::start();
    let page = exe.page_size;
    let base = exe.reserve(2 * page);
    let ctx = exe.sym("__llvm_orc_SimpleRemoteEPC_dispatch_ctx");
    let code = calls_the_controller(ctx, exe.sym("__llvm_orc_SimpleRemoteEPC_dispatch_fn"), TAG);
    exe.initialize(&[(0x05, base, code.len() as u64, &code)], &[])
        .unwrap();

    // Out-of-line and inline arguments and results.
    for (args, answer) in [
        (
            &b"arguments, out of line"[..],
            &b"an answer out of line"[..],
        ),
        (b"inline", b"ok"),
    ] {
        let seqno = exe.seqno;
        exe.seqno += 1;
        exe.send(CALL, seqno, base, args);
        // The JIT'd wrapper's call arrives first, numbered by the executor.
        let (opcode, up_seqno, tag, payload) = exe.receive().expect("the executor's call");
        assert_eq!((opcode, tag, &payload[..]), (CALL, TAG, args));
        // While it waits, the executor answers the controller's calls.
        let nested = exe.reserve(page);
        exe.release(&[nested]).unwrap();
        exe.send(RESULT, up_seqno, 0, answer);
        let (opcode, got_seqno, tag, payload) = exe.receive().expect("the Result");
        assert_eq!(
            (opcode, got_seqno, tag, &payload[..]),
            (RESULT, seqno, 0, answer)
        );
    }

    // Outside a call that runs JIT'd code (here a finalize action, run inside the map), JIT'd
    // code cannot reach the controller: the action fails, nothing is sent.
    let err = exe
        .initialize(&[(0x03, base + page, 8, b"")], &[(base, b"", 0, b"")])
        .unwrap_err();
    assert!(
        err.contains("not inside a call that runs JIT'd code"),
        "{err}"
    );

    let done = exe.finish();
    assert!(done.status.success());
    done.assert_clean();
    assert_eq!(done.stat("jit_wrapper_calls"), 2);
    assert_eq!(done.stat("controller_calls"), 2);
    assert_eq!(done.stat("slabs_reused"), 1);
}

#[cfg(target_arch = "x86_64")]
#[test]
fn eof_while_jit_code_waits_for_the_controller_ends_the_session() {
    let mut exe = Executor::start();
    let base = exe.reserve(exe.page_size);
    let ctx = exe.sym("__llvm_orc_SimpleRemoteEPC_dispatch_ctx");
    let code = calls_the_controller(ctx, exe.sym("__llvm_orc_SimpleRemoteEPC_dispatch_fn"), 7);
    exe.initialize(&[(0x05, base, code.len() as u64, &code)], &[])
        .unwrap();
    exe.send(CALL, 99, base, b"args");
    let (opcode, _, tag, _) = exe.receive().expect("the executor's call");
    assert_eq!((opcode, tag), (CALL, 7));
    // The controller goes away instead of answering: no Result for call 99, a clean end.
    let done = exe.finish();
    assert!(done.status.success(), "{}", done.stderr);
    assert_eq!(done.session_end, "eof");
    done.assert_clean();
    assert_eq!(done.stat("protocol_errors"), 0);
}

// ---- hostile input ------------------------------------------------------------------------------

#[test]
fn hostile_calls_get_error_replies() {
    let mut exe = Executor::start();
    let page = exe.page_size;
    let inst = exe.instance();
    // Unknown tags, data symbols and dispatch_fn are not callable: SPS Error replies.
    for tag in [
        0,
        0xdead_beef,
        inst,
        exe.sym("__llvm_orc_SimpleRemoteEPC_dispatch_ctx"),
    ] {
        let err = error(&exe.call_tag(tag, b"whatever")).unwrap_err();
        assert!(err.contains("no wrapper function at tag"), "{err}");
    }
    let err = error(&exe.call("__llvm_orc_SimpleRemoteEPC_dispatch_fn", b"")).unwrap_err();
    assert!(err.contains("cannot be called"), "{err}");
    // reserve: wrong instance, undecodable, trailing bytes, sizes the map refuses.
    let cases: [(Vec<u8>, &str); 7] = [
        (Sps::new().u64(inst + 1).u64(page).0, "not the instance"),
        (Sps::new().u64(inst).0, "cannot decode"),
        (Sps::new().u64(inst).u64(page).u8(0).0, "cannot decode"),
        (Sps::new().u64(inst).u64(0).0, "zero or not a page multiple"),
        (
            Sps::new().u64(inst).u64(page + 1).0,
            "zero or not a page multiple",
        ),
        (
            Sps::new().u64(inst).u64(1 << 50).0,
            "exceeds the configured maximum",
        ),
        (vec![], "cannot decode"),
    ];
    for (args, want) in cases {
        let err = expected_addr(&exe.call(RESERVE, &args)).unwrap_err();
        assert!(err.contains(want), "{err} (wanted {want})");
    }
    // lli's destructor sends (instance, empty Seq) to the reserve wrapper: the reply must
    // decode as an SPS Error *success* (first byte 0).
    let reply = exe.call(RESERVE, &Sps::new().u64(inst).u64(0).0);
    assert_eq!(reply[0], 0);

    let base = exe.reserve(2 * page);
    let bad_requests: [(Vec<Seg<'_>>, &str); 7] = [
        (vec![(0x03, 0x1000, page, b"")], "outside every slab"),
        (vec![(0x07, base, page, b"")], "write and execute"),
        (vec![(0x03, base + 8, 8, b"")], "not page-aligned"),
        (vec![(0x03, base, 2, b"abc")], "more content than size"),
        (
            vec![(0x03, base, 3 * page, b"")],
            "not inside the request's slab",
        ),
        (
            vec![(0x01, base, 8, b""), (0x03, base + 8, 8, b"")],
            "not page-aligned",
        ),
        (vec![], "no standard-lifetime segment"),
    ];
    for (segments, want) in bad_requests {
        let err = exe.initialize(&segments, &[]).unwrap_err();
        assert!(err.contains(want), "{err} (wanted {want})");
    }
    let undecodable: [Vec<u8>; 5] = [
        Sps::new()
            .u64(inst)
            .u64(1)
            .segment(0x10, base, 8, b"")
            .u64(0)
            .0,
        Sps::new().u64(inst).u64(u64::MAX).0,
        // A null action is no action, whatever its arguments, but they are bounded.
        Sps::new()
            .u64(inst)
            .u64(0)
            .u64(1)
            .action(0, &[0; 41])
            .action(0, b"")
            .0,
        Sps::new()
            .u64(inst)
            .u64(0)
            .u64(1)
            .action(1, &[0; 41])
            .action(0, b"")
            .0,
        Sps::new().u64(inst + 8).u64(0).u64(0).0,
    ];
    for args in undecodable {
        let err = expected_addr(&exe.call(INITIALIZE, &args)).unwrap_err();
        assert!(
            err.contains("cannot decode") || err.contains("not the instance"),
            "{err}"
        );
    }
    // deinitialize / release: unknown addresses, wrong instance, undecodable.
    assert!(exe
        .deinitialize(&[base])
        .unwrap_err()
        .contains("not the key of any region"));
    assert!(exe
        .deinitialize(&[0x1000])
        .unwrap_err()
        .contains("not inside any slab"));
    assert!(exe
        .release(&[base + 8])
        .unwrap_err()
        .contains("not its base"));
    let wrong = error(&exe.call(RELEASE, &Sps::new().u64(7).addrs(&[base]).0)).unwrap_err();
    assert!(wrong.contains("not the instance"));
    let short = error(&exe.call(DEINITIALIZE, &Sps::new().u64(inst).u64(2).u64(base).0));
    assert!(short.unwrap_err().contains("cannot decode"));
    // The map is untouched by all of that: the whole slab is still free.
    assert_eq!(
        exe.initialize(&[(0x03, base, 2 * page, b"")], &[]).unwrap(),
        base
    );
    let done = exe.finish();
    assert!(done.status.success());
    done.assert_clean();
    assert_eq!(done.stat("protocol_errors"), 4 + 1 + 3 + 1 + 5 + 2);
    assert_eq!(done.stat("slabs_reserved"), 1);
    assert!(
        done.stderr
            .contains("no wrapper function at tag 0xdeadbeef"),
        "{}",
        done.stderr
    );
}

/// A session with one reserved slab and one live region, then `bytes` on the wire.
fn broken_by(bytes: &[u8]) -> (Vec<u8>, Finished) {
    let mut exe = Executor::start();
    let page = exe.page_size;
    let base = exe.reserve(page);
    exe.initialize(&[(0x01, base, 4, b"data")], &[]).unwrap();
    exe.send_raw(bytes);
    exe.finish_after_hangup()
}

#[test]
fn broken_streams_get_a_hangup_and_everything_is_released() {
    let cases: [(Vec<u8>, &str); 6] = [
        (header(8, CALL, 1, 0), "smaller than the header"),
        (header(32, 9, 1, 0), "unknown"),
        (header(32, SETUP, 0, 0), "unexpected Setup"),
        (
            header(33, RESULT, 4, 0).into_iter().chain([0]).collect(),
            "unexpected Result",
        ),
        (header(1 << 40, CALL, 1, 0), "payload limit"),
        (header(u64::MAX, CALL, 1, 0), "payload limit"),
    ];
    for (bytes, want) in cases {
        let (hangup, done) = broken_by(&bytes);
        let reason = error(&hangup).unwrap_err();
        assert!(reason.contains(want), "{reason} (wanted {want})");
        assert_eq!(done.status.code(), Some(1), "{want}: {}", done.stderr);
        assert_eq!(done.session_end, "broken");
        assert_eq!(done.stat("live_slabs_at_eof"), 1);
        assert_eq!(done.stat("live_regions_at_eof"), 1);
        done.assert_clean();
        assert_eq!(done.stat("protocol_errors"), 1);
        assert!(done.stderr.contains("hanging up"), "{}", done.stderr);
    }
}

#[test]
fn eof_inside_a_message_is_a_broken_stream() {
    for cut in [1usize, 31, 32, 40] {
        let mut exe = Executor::start();
        let page = exe.page_size;
        exe.reserve(page);
        let mut message = header(32 + 16, CALL, 9, exe.sym(RESERVE));
        message.extend_from_slice(&Sps::new().u64(exe.instance()).u64(page).0);
        exe.send_raw(&message[..cut]);
        let (hangup, done) = exe.finish_after_hangup();
        assert!(error(&hangup)
            .unwrap_err()
            .contains("stream ended inside a message"));
        assert_eq!(done.status.code(), Some(1));
        assert_eq!(done.session_end, "broken");
        done.assert_clean();
    }
}

#[test]
fn a_controller_hangup_ends_the_session_cleanly() {
    let mut exe = Executor::start();
    let page = exe.page_size;
    exe.reserve(page);
    let reason = Sps::new().u8(1).str("controller says bye").0;
    exe.send(HANGUP, 0, 0, &reason);
    let done = exe.finish();
    assert!(done.status.success());
    assert_eq!(done.session_end, "hangup");
    done.assert_clean();
    assert!(done.stderr.contains("controller says bye"));
}

/// xorshift64*: deterministic garbage.
struct Garbage(u64);

impl Garbage {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Bytes biased towards what SPS decoders look at: small counts, 0/1 flags, real addresses.
    fn bytes(&mut self, interesting: &[u64]) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..self.next() % 12 {
            match self.next() % 6 {
                0 => out.extend_from_slice(&(self.next() % 4).to_le_bytes()),
                1 => out.push((self.next() % 3) as u8),
                2 => {
                    let i = self.next() as usize % interesting.len();
                    out.extend_from_slice(&interesting[i].to_le_bytes());
                }
                3 => out.extend_from_slice(&self.next().to_le_bytes()),
                4 => out.push(self.next() as u8),
                _ => out.extend_from_slice(&(self.next() % 0x3000).to_le_bytes()),
            }
        }
        out
    }
}

#[test]
fn garbage_arguments_never_crash_the_executor() {
    let mut exe = Executor::start();
    let page = exe.page_size;
    let base = exe.reserve(4 * page);
    let mut tags: Vec<(String, u64)> = exe
        .symbols
        .iter()
        .filter(|(name, _)| !name.contains("run_as"))
        .map(|(n, &a)| (n.clone(), a))
        .collect();
    tags.sort();
    let mut interesting: Vec<u64> = tags.iter().map(|(_, a)| *a).collect();
    interesting.extend([base, base + page, 0, page]);
    let mut garbage = Garbage(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        let (_, tag) = &tags[garbage.next() as usize % tags.len()];
        let args = garbage.bytes(&interesting);
        exe.call_tag(*tag, &args);
    }
    // Still serving, and the original slab is still there.
    let next = exe.reserve(page);
    assert_ne!(next, base);
    let done = exe.finish();
    assert!(done.status.success(), "{}", done.stderr);
    done.assert_clean();
    assert!(done.stat("protocol_errors") > 0);
}

#[test]
fn garbage_streams_never_crash_the_executor() {
    let mut garbage = Garbage(0x1234_5678_9abc_def1);
    for round in 0..20 {
        let mut exe = Executor::start();
        let reserve = exe.sym(RESERVE);
        let mut bytes = Vec::new();
        for _ in 0..8 {
            let words = garbage.bytes(&[reserve, exe.instance(), 32, 40, 3, 2, 1]);
            bytes.extend_from_slice(&words);
        }
        // Feed it in a separate thread: the executor may hang up before reading it all.
        let mut to = exe.to.take().unwrap();
        let feeder = std::thread::spawn(move || {
            let _ = to.write_all(&bytes);
        });
        let mut rest = Vec::new();
        let _ = exe.from.read_to_end(&mut rest);
        feeder.join().unwrap();
        let status = exe.child.wait().unwrap();
        assert!(
            matches!(status.code(), Some(0 | 1)),
            "round {round}: {status:?}"
        );
        let (stats, _) = read_stats(&exe.stats_path);
        assert_eq!(
            stats.get("live_slabs_after_shutdown"),
            Some(&0),
            "round {round}"
        );
    }
}

#[test]
fn eof_releases_everything() {
    let mut exe = Executor::start();
    let page = exe.page_size;
    let (reg, dereg) = (exe.sym(REGISTER_EH), exe.sym(DEREGISTER_EH));
    let slabs: Vec<u64> = (0..3).map(|_| exe.reserve(2 * page)).collect();
    let eh = range(slabs[0], slabs[0] + 28);
    exe.initialize(
        &[(0x01, slabs[0], 28, &EH_FRAME)],
        &[(reg, &eh, dereg, &eh)],
    )
    .unwrap();
    exe.initialize(
        &[
            (0x03, slabs[1], page, b"x"),
            (0x01, slabs[1] + page, 1, b"y"),
        ],
        &[],
    )
    .unwrap();
    let done = exe.finish();
    assert!(done.status.success());
    assert_eq!(done.session_end, "eof");
    assert_eq!(done.stat("live_slabs_at_eof"), 3);
    assert_eq!(done.stat("live_regions_at_eof"), 2);
    assert_eq!(done.stat("slabs_released_at_shutdown"), 3);
    assert_eq!(
        (done.stat("eh_register"), done.stat("eh_deregister")),
        (1, 1)
    );
    done.assert_clean();
}

// ---- the shared-memory mapper service ---------------------------------------------------------

const SHM_INSTANCE: &str = "__llvm_orc_ExecutorSharedMemoryMapperService_Instance";
const SHM_RESERVE: &str = "__llvm_orc_ExecutorSharedMemoryMapperService_Reserve";
const SHM_INITIALIZE: &str = "__llvm_orc_ExecutorSharedMemoryMapperService_Initialize";
const SHM_DEINITIALIZE: &str = "__llvm_orc_ExecutorSharedMemoryMapperService_Deinitialize";
const SHM_RELEASE: &str = "__llvm_orc_ExecutorSharedMemoryMapperService_Release";

/// A shared-memory segment: group byte, address, size (the content is written through the
/// object, as LLVM's controller does).
type ShmSeg = (u8, u64, u64);

/// Where `shm_open` keeps the object called `name`.
fn shm_path(name: &str) -> PathBuf {
    PathBuf::from("/dev/shm").join(name.trim_start_matches('/'))
}

/// Opens the object called `name` read-write, as the controller does to write the contents.
fn shm_open(name: &str) -> File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(shm_path(name))
        .unwrap_or_else(|e| panic!("open {name}: {e}"))
}

/// The entries of /dev/shm whose name starts with `prefix`.
fn shm_entries(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

impl Executor {
    /// The shared-memory reserve: base and name.
    fn shm_reserve_with(&mut self, instance: u64, size: u64) -> Result<(u64, String), String> {
        let reply = self.call(SHM_RESERVE, &Sps::new().u64(instance).u64(size).0);
        let mut r = Rd(&reply);
        let result = match r.u8() {
            1 => Ok((r.u64(), r.string())),
            0 => Err(r.string()),
            b => panic!("bad Expected tag {b}"),
        };
        r.end();
        result
    }

    fn shm_reserve(&mut self, size: u64) -> (u64, String) {
        self.shm_reserve_with(self.sym(SHM_INSTANCE), size)
            .expect("shared-memory reserve")
    }

    fn shm_initialize(&mut self, reservation: u64, segments: &[ShmSeg]) -> Result<u64, String> {
        self.shm_initialize_with(reservation, segments, &[])
    }

    /// The shared-memory initialize with `actions` (finalize fn, args, dealloc fn, args).
    fn shm_initialize_with(
        &mut self,
        reservation: u64,
        segments: &[ShmSeg],
        actions: &[(u64, &[u8], u64, &[u8])],
    ) -> Result<u64, String> {
        let mut args = Sps::new()
            .u64(self.sym(SHM_INSTANCE))
            .u64(reservation)
            .u64(segments.len() as u64);
        for &(group, addr, size) in segments {
            args = args.u8(group).u64(addr).u64(size);
        }
        args = args.u64(actions.len() as u64);
        for &(f, f_args, d, d_args) in actions {
            args = args.action(f, f_args).action(d, d_args);
        }
        expected_addr(&self.call(SHM_INITIALIZE, &args.0))
    }

    fn read_buffer(&mut self, addr: u64, len: u64) -> Vec<u8> {
        let read = Sps::new().u64(1).u64(addr).u64(addr + len).0;
        let reply = self.call("__llvm_orc_bootstrap_mem_read_buffers_wrapper", &read);
        let mut r = Rd(&reply);
        assert_eq!(r.u64(), 1);
        let bytes = r.bytes().to_vec();
        r.end();
        bytes
    }
}

#[test]
fn shared_memory_lifecycle_runs_the_controllers_code_in_place() {
    use std::os::unix::fs::FileExt;
    let mut exe = Executor::start();
    let page = exe.page_size;
    let instance = exe.sym(SHM_INSTANCE);
    assert_ne!(instance, exe.instance(), "a service of its own");
    let (base, name) = exe.shm_reserve(4 * page);
    assert_eq!(base % page, 0);
    assert!(
        name.starts_with("/mapcore_") && name[1..].find('/').is_none(),
        "{name}"
    );
    assert!(
        shm_path(&name).exists(),
        "{name} is in /dev/shm until initialize"
    );
    // The controller writes code and data through the object, then initializes.
    let object = shm_open(&name);
    // mov eax, edi; ret: returns its first argument.
    object.write_all_at(&[0x89, 0xf8, 0xc3], 0).unwrap();
    object.write_all_at(b"hello", page).unwrap();
    let key = exe
        .shm_initialize(base, &[(0x05, base, 3), (0x01, base + page, 5)])
        .unwrap();
    assert_eq!(key, base);
    assert!(!shm_path(&name).exists(), "initialize unlinks the name");
    assert_eq!(exe.read_buffer(base + page, 8), b"hello\0\0\0");
    let args = Sps::new().u64(base).i32(-17).0;
    let reply = exe.call("__llvm_orc_bootstrap_run_as_int_function_wrapper", &args);
    assert_eq!(reply, (-17i32).to_le_bytes(), "the controller's code runs");
    // Deinitialize resets the pages: the code is gone (they read zero), the pages are free.
    let deinit = Sps::new().u64(instance).addrs(&[key]).0;
    error(&exe.call(SHM_DEINITIALIZE, &deinit)).unwrap();
    assert_eq!(exe.read_buffer(base, 3), [0, 0, 0]);
    assert_eq!(exe.read_buffer(base + page, 5), [0; 5]);
    let args = Sps::new().u64(base).i32(5).0;
    assert_eq!(
        exe.call("__llvm_orc_bootstrap_run_as_int_function_wrapper", &args),
        b"",
        "freed code is not executable"
    );
    // Reuse: the controller writes new code in place, the same pages initialize again.
    object.write_all_at(&[0xb8, 7, 0, 0, 0, 0xc3], 0).unwrap(); // mov eax, 7; ret
    assert_eq!(exe.shm_initialize(base, &[(0x05, base, 6)]).unwrap(), base);
    let reply = exe.call("__llvm_orc_bootstrap_run_as_int_function_wrapper", &args);
    assert_eq!(reply, 7i32.to_le_bytes());
    let release = Sps::new().u64(instance).addrs(&[base]).0;
    error(&exe.call(SHM_RELEASE, &release)).unwrap();
    let twice = error(&exe.call(SHM_RELEASE, &release)).unwrap_err();
    assert!(twice.contains("not inside any slab"), "{twice}");
    // A reservation the controller never opens is released, and its name unlinked, at EOF.
    let (_, unopened) = exe.shm_reserve(page);
    assert!(shm_path(&unopened).exists());
    let done = exe.finish();
    assert!(done.status.success(), "{}", done.stderr);
    done.assert_clean();
    assert!(!shm_path(&unopened).exists(), "{unopened} left in /dev/shm");
    assert_eq!(done.stat("shm_reserve_calls"), 2);
    assert_eq!(done.stat("shm_reserve_bytes"), 5 * page);
    assert_eq!(done.stat("shm_initialize_calls"), 2);
    assert_eq!(done.stat("shm_segments_initialized"), 3);
    assert_eq!(done.stat("shm_regions_deinitialized"), 1);
    assert_eq!(done.stat("shm_slabs_released"), 1);
    assert_eq!(done.stat("shm_slabs_released_at_shutdown"), 1);
    assert_eq!(
        done.stat("slabs_reserved"),
        0,
        "the memory manager is not used"
    );
    assert_eq!(done.stat(&format!("calls.{SHM_RELEASE}")), 2);
    assert_eq!(done.stat("protocol_errors"), 0);
}

#[test]
fn shared_memory_hostile_calls_change_nothing() {
    let mut exe = Executor::start();
    let page = exe.page_size;
    let instance = exe.sym(SHM_INSTANCE);
    // Wrong instances: the memory manager's, and garbage.
    for wrong in [exe.instance(), instance + 1, 0] {
        let err = exe.shm_reserve_with(wrong, page).unwrap_err();
        assert!(err.contains("not the instance"), "{err}");
    }
    let err = exe.shm_reserve_with(instance, page + 1).unwrap_err();
    assert!(err.contains("not a page multiple"), "{err}");
    let (base, name) = exe.shm_reserve(4 * page);
    let (other, _) = exe.shm_reserve(page);
    let live = exe
        .shm_initialize(base, &[(0x03, base + 3 * page, 8)])
        .unwrap();
    let bad: [(u64, Vec<ShmSeg>, &str); 9] = [
        (0x1000, vec![(0x03, 0x1000, 8)], "not a reservation"),
        (
            base + page,
            vec![(0x03, base + page, 8)],
            "not a reservation",
        ),
        (
            base,
            vec![(0x03, base + 4 * page, 8)],
            "outside the reservation",
        ),
        (
            base,
            vec![(0x03, base, 5 * page)],
            "outside the reservation",
        ),
        (
            base,
            vec![(0x03, base, u64::MAX - 8)],
            "outside the reservation",
        ),
        (base, vec![(0x03, other, 8)], "outside the reservation"),
        (base, vec![(0x07, base, 8)], "write and execute"),
        (
            base,
            vec![(0x03, base, 8), (0x05, base + 16, 8)],
            "not page-aligned",
        ),
        (base, vec![(0x03, base + 2 * page, 2 * page)], "overlaps"),
    ];
    for (reservation, segments, want) in bad {
        let err = exe.shm_initialize(reservation, &segments).unwrap_err();
        assert!(err.contains(want), "{err} (wanted {want})");
    }
    let sharing = exe.shm_initialize(base, &[(0x03, base, 8), (0x01, base + 8, 8)]);
    assert!(sharing.unwrap_err().contains("not page-aligned"));
    let undecodable: [Vec<u8>; 5] = [
        Sps::new().u64(instance).u64(base).0,
        Sps::new()
            .u64(instance)
            .u64(base)
            .u64(1)
            .u8(0x10)
            .u64(base)
            .u64(8)
            .u64(0)
            .0,
        Sps::new().u64(instance).u64(base).u64(0).u64(0).u8(0).0,
        Sps::new().u64(instance).u64(base).u64(u64::MAX).0,
        Sps::new().u64(instance + 8).u64(base).u64(0).u64(0).0,
    ];
    for args in undecodable {
        let err = expected_addr(&exe.call(SHM_INITIALIZE, &args)).unwrap_err();
        assert!(
            err.contains("cannot decode") || err.contains("not the instance"),
            "{err}"
        );
    }
    // deinitialize / release: unknown and interior addresses, another service's instance.
    let list = |inst: u64, addrs: &[u64]| Sps::new().u64(inst).addrs(addrs).0;
    let err = error(&exe.call(SHM_DEINITIALIZE, &list(instance, &[live + 8]))).unwrap_err();
    assert!(err.contains("inside a region"), "{err}");
    let err = error(&exe.call(SHM_DEINITIALIZE, &list(instance, &[0x1000]))).unwrap_err();
    assert!(err.contains("not inside any slab"), "{err}");
    let err = error(&exe.call(SHM_RELEASE, &list(instance, &[base + 8]))).unwrap_err();
    assert!(err.contains("not its base"), "{err}");
    let mem = exe.instance();
    let err = error(&exe.call(SHM_RELEASE, &list(mem, &[base]))).unwrap_err();
    assert!(err.contains("not the instance"), "{err}");
    // The memory manager's wrappers do not reach this service's slabs.
    assert!(exe
        .release(&[base])
        .unwrap_err()
        .contains("not inside any slab"));
    // Nothing changed: the rest of the slab is free.
    assert!(
        !shm_path(&name).exists(),
        "the successful initialize unlinked it"
    );
    assert_eq!(
        exe.shm_initialize(base, &[(0x03, base, 3 * page)]).unwrap(),
        base
    );
    error(&exe.call(SHM_DEINITIALIZE, &list(instance, &[live, base]))).unwrap();
    let done = exe.finish();
    assert!(done.status.success());
    done.assert_clean();
    assert_eq!(done.stat("shm_slabs_reserved"), 2);
    assert_eq!(done.stat("shm_regions_deinitialized"), 2);
    assert_eq!(done.stat("protocol_errors"), 3 + 5 + 1);
}

#[test]
fn a_refused_initialize_leaves_the_name_for_the_controller() {
    let mut exe = Executor::start();
    let page = exe.page_size;
    let (base, name) = exe.shm_reserve(page);
    let err = exe.shm_initialize(base, &[(0x07, base, 8)]).unwrap_err();
    assert!(err.contains("write and execute"), "{err}");
    assert!(
        shm_path(&name).exists(),
        "a refused initialize unlinks nothing"
    );
    exe.shm_initialize(base, &[(0x03, base, 8)]).unwrap();
    assert!(!shm_path(&name).exists());
    let done = exe.finish();
    assert!(done.status.success());
    done.assert_clean();
}

#[test]
fn shared_memory_actions_run_and_roll_back() {
    use std::os::unix::fs::FileExt;
    let mut exe = Executor::start();
    let page = exe.page_size;
    let (reg, dereg) = (exe.sym(REGISTER_EH), exe.sym(DEREGISTER_EH));
    let (base, name) = exe.shm_reserve(4 * page);
    let object = shm_open(&name);
    object.write_all_at(&EH_FRAME, 0).unwrap();
    let eh = range(base, base + 28);
    let pair: [(u64, &[u8], u64, &[u8]); 1] = [(reg, &eh, dereg, &eh)];
    // Refused before any side effect: no action ran, the controller's bytes and the name stay.
    let err = exe
        .shm_initialize_with(base, &[(0x01, base, 28), (0x07, base + page, 8)], &pair)
        .unwrap_err();
    assert!(err.contains("write and execute"), "{err}");
    let mut bytes = [0u8; 28];
    object.read_exact_at(&mut bytes, 0).unwrap();
    assert_eq!(bytes, EH_FRAME, "the controller's contents are untouched");
    assert!(shm_path(&name).exists());
    let key = exe
        .shm_initialize_with(base, &[(0x01, base, 28)], &pair)
        .unwrap();
    // A failing finalize action (the same frames twice) rolls the second region back.
    object.write_all_at(&EH_FRAME, page).unwrap();
    let twice = exe
        .shm_initialize_with(base, &[(0x01, base + page, 28)], &pair)
        .unwrap_err();
    assert!(twice.contains("already registered"), "{twice}");
    assert_eq!(
        exe.shm_initialize(base, &[(0x03, base + page, 3 * page)])
            .unwrap(),
        base + page,
        "the rolled-back pages are free"
    );
    let deinit = Sps::new().u64(exe.sym(SHM_INSTANCE)).addrs(&[key]).0;
    error(&exe.call(SHM_DEINITIALIZE, &deinit)).unwrap();
    let done = exe.finish();
    assert!(done.status.success());
    done.assert_clean();
    assert_eq!(
        (done.stat("eh_register"), done.stat("eh_deregister")),
        (1, 1)
    );
    assert_eq!(done.stat("shm_regions_deinitialized"), 1);
}

/// LLVM 22's controller deinitializes an allocation it abandons before initializing it (a link
/// that fails, e.g. on an undefined symbol): nothing to do, as with LLVM's own service. A key
/// deinitialized twice, an interior address and an unaligned one are still errors.
#[test]
fn an_abandoned_allocation_is_deinitialized_quietly() {
    let mut exe = Executor::start();
    let page = exe.page_size;
    let instance = exe.sym(SHM_INSTANCE);
    let (base, _) = exe.shm_reserve(4 * page);
    let deinit = |exe: &mut Executor, keys: &[u64]| {
        error(&exe.call(SHM_DEINITIALIZE, &Sps::new().u64(instance).addrs(keys).0))
    };
    deinit(&mut exe, &[base + page]).unwrap();
    let key = exe.shm_initialize(base, &[(0x03, base, 8)]).unwrap();
    deinit(&mut exe, &[key]).unwrap();
    let twice = deinit(&mut exe, &[key]).unwrap_err();
    assert!(twice.contains("not the key of any region"), "{twice}");
    let live = exe
        .shm_initialize(base, &[(0x03, base + page, 2 * page)])
        .unwrap();
    let interior = deinit(&mut exe, &[live + page]).unwrap_err();
    assert!(interior.contains("inside a region"), "{interior}");
    let unaligned = deinit(&mut exe, &[base + 3 * page + 8]).unwrap_err();
    assert!(unaligned.contains("1 batch entries failed"), "{unaligned}");
    // One failing entry among abandoned ones: only it is reported.
    let mixed = deinit(&mut exe, &[base + 3 * page, key, live]).unwrap_err();
    assert!(mixed.contains("1 batch entries failed"), "{mixed}");
    assert!(mixed.contains(&format!("key {key:#x}")), "{mixed}");
    // Released, the slab's keys are forgotten.
    let release = Sps::new().u64(instance).addrs(&[base]).0;
    error(&exe.call(SHM_RELEASE, &release)).unwrap();
    let done = exe.finish();
    assert!(done.status.success());
    done.assert_clean();
    assert_eq!(done.stat("shm_regions_deinitialized"), 2);
    assert_eq!(done.stat("protocol_errors"), 0);
}

#[test]
fn a_killed_executor_leaves_nothing_in_dev_shm() {
    let mut exe = Executor::start();
    let page = exe.page_size;
    // Killed between reserve and the controller's open: only the guard can unlink these.
    let names: Vec<String> = (0..3).map(|_| exe.shm_reserve(page).1).collect();
    for name in &names {
        assert!(shm_path(name).exists(), "{name}");
    }
    let prefix: String = names[0][1..].rsplitn(3, '_').last().unwrap().to_owned();
    assert_eq!(shm_entries(&prefix).len(), 3, "{prefix}");
    exe.child.kill().unwrap(); // SIGKILL
    let status = exe.child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    // The guard unlinks them once it sees the executor gone.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !shm_entries(&prefix).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        shm_entries(&prefix),
        Vec::<String>::new(),
        "left after SIGKILL"
    );
}

#[test]
fn setup_advertises_the_shared_memory_mapper() {
    let exe = Executor::start();
    let names = [
        SHM_INSTANCE,
        SHM_RESERVE,
        SHM_INITIALIZE,
        SHM_DEINITIALIZE,
        SHM_RELEASE,
    ];
    let addrs: Vec<u64> = names.iter().map(|n| exe.sym(n)).collect();
    for (i, a) in addrs.iter().enumerate() {
        assert!(!addrs[..i].contains(a), "{} shares an address", names[i]);
        assert!(!exe
            .symbols
            .iter()
            .any(|(n, v)| v == a && !names.contains(&n.as_str())));
    }
    let done = exe.finish();
    assert!(done.status.success());
    assert_eq!(done.stat("shm_reserve_calls"), 0);
}

// ---- launch conventions -------------------------------------------------------------------------

#[test]
fn lli_style_two_descriptors() {
    let mut exe = Executor::launch(Command::new(EXE).args(["0", "1"]));
    exe.reserve(exe.page_size);
    let done = exe.finish();
    assert!(done.status.success());
    done.assert_clean();
}

#[test]
fn inherited_descriptors_other_than_stdio() {
    // The shell moves the pipes to descriptors 5 and 7, as llvm-jitlink's own (3, 6).
    let script = format!("exec '{EXE}' filedescs=5,7 5<&0 7>&1 0</dev/null 1>/dev/null");
    let mut exe = Executor::launch(Command::new("sh").args(["-c", &script]));
    exe.reserve(exe.page_size);
    let done = exe.finish();
    assert!(done.status.success(), "{}", done.stderr);
    done.assert_clean();
}

#[test]
fn tcp_listen_mode() {
    let stderr_path = scratch("tcp-stderr");
    let stats_path = scratch("tcp-stats");
    let child = Command::new(EXE)
        .arg("listen=127.0.0.1:0")
        .env("MAPCORE_EXECUTOR_STATS", &stats_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let _watchdog = Watchdog::new(child.id());
    let addr = loop {
        let text = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("listening on ")) {
            break line.rsplit(' ').next().unwrap().to_owned();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stream = TcpStream::connect(&addr).unwrap();
    let mut head = [0u8; 32];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(&head[8..16], &SETUP.to_le_bytes());
    let size = u64::from_le_bytes(head[..8].try_into().unwrap()) as usize;
    let mut setup = vec![0u8; size - 32];
    stream.read_exact(&mut setup).unwrap();
    // Find the reserve tag and the instance in the symbol table.
    let mut r = Rd(&setup);
    r.string();
    let page = r.u64();
    r.u64();
    let mut symbols = HashMap::new();
    for _ in 0..r.u64() {
        let name = r.string();
        symbols.insert(name, r.u64());
    }
    let args = Sps::new().u64(symbols[MEM_INSTANCE]).u64(page).0;
    let mut message = header(32 + args.len() as u64, CALL, 1, symbols[RESERVE]);
    message.extend_from_slice(&args);
    stream.write_all(&message).unwrap();
    let mut reply = Vec::new();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    BufReader::new(&stream).read_to_end(&mut reply).unwrap();
    assert_eq!(&reply[8..16], &RESULT.to_le_bytes());
    assert!(expected_addr(&reply[32..]).is_ok());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert!(
        output.stdout.is_empty(),
        "the executor wrote to stdout: {:?}",
        output.stdout
    );
    let (stats, end) = read_stats(&stats_path);
    assert_eq!(end, "eof");
    assert_eq!(stats["slabs_reserved"], 1);
    assert_eq!(stats["live_slabs_after_shutdown"], 0);
}

#[test]
fn bad_arguments_are_a_usage_error() {
    for args in [
        &[][..],
        &["filedescs=3"],
        &["filedescs=97,98"],
        &["1", "2", "3"],
        &["listen=no-such-host.invalid:1"],
    ] {
        let output = Command::new(EXE)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(output.stdout.is_empty());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("mapcore-executor:"), "{args:?}: {stderr}");
    }
    let output = Command::new(EXE).stdin(Stdio::null()).output().unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("usage:"));
}

#[test]
fn stderr_lines_are_prefixed() {
    let mut exe = Executor::start();
    exe.call_tag(1, b"");
    let done = exe.finish();
    let stderr = BufReader::new(done.stderr.as_bytes());
    for line in stderr.lines() {
        assert!(line.unwrap().starts_with("mapcore-executor: "));
    }
}
