//! Helpers shared by the real-memory test binaries: `/proc/self/maps` and `mincore` oracles,
//! machine code for the host architecture, raw memory access, and upstream's helper actions.
//!
//! # Safety
//!
//! The helpers that touch memory or run code are `unsafe fn`s whose callers promise the
//! addresses are mapped with the needed protection and hold what the helper expects.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the helpers"
)]
#![expect(
    unsafe_code,
    reason = "raw access to JIT memory, running JIT code, mincore"
)]

use std::fs;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};

use mapcore_std::{Action, ActionError, DualMappedHost, LibcHost, Prot, StdHost};

// ---- hosts -------------------------------------------------------------------------------

/// The host a real-memory test runs on: each such test runs once per host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// [`LibcHost`]: private mappings flipped with `mprotect`.
    Flip,
    /// [`DualMappedHost`]: a memory file mapped twice, protections changed lazily.
    Dual,
}

impl Kind {
    /// A new host of this kind.
    pub(crate) fn host(self) -> StdHost {
        match self {
            Self::Flip => LibcHost::new().into(),
            Self::Dual => DualMappedHost::new().into(),
        }
    }

    /// The `/proc/self/maps` permissions of the execution view at `prot` (private or shared
    /// memory).
    pub(crate) fn perms(self, prot: Prot) -> String {
        match self {
            Self::Flip => format!("{prot}p"),
            Self::Dual => format!("{prot}s"),
        }
    }

    /// The protection pages of a segment at `prot` are left at after deinitialize: flip hosts
    /// reset them to read-write; lazily, they keep it, except code whose bytes are discarded.
    pub(crate) fn freed(self, prot: Prot, discard: bool) -> Prot {
        match self {
            Self::Dual if !(discard && prot.contains(Prot::EXEC)) => prot,
            _ => Prot::READ_WRITE,
        }
    }

    /// The path of test `name` of this kind, as `for_each_host!` names it.
    pub(crate) fn test_path(self, name: &str) -> String {
        match self {
            Self::Flip => format!("flip::{name}"),
            Self::Dual => format!("dual::{name}"),
        }
    }
}

/// Makes one test per host, `flip::name` and `dual::name`, of functions `fn name(kind: Kind)`.
#[macro_export]
macro_rules! for_each_host {
    ($($name:ident),* $(,)?) => {
        mod flip {
            $(#[test] fn $name() { super::$name(super::common::Kind::Flip); })*
        }
        mod dual {
            $(#[test] fn $name() { super::$name(super::common::Kind::Dual); })*
        }
    };
}

// ---- /proc/self/maps -----------------------------------------------------------------------

/// One line of `/proc/self/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Vma {
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// `rwxp` style.
    pub(crate) perms: String,
}

/// Every mapping of this process.
pub(crate) fn vmas() -> Vec<Vma> {
    let text = fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
    text.lines()
        .map(|line| {
            let mut fields = line.split_whitespace();
            let range = fields.next().expect("address range");
            let perms = fields.next().expect("permissions").to_owned();
            let (start, end) = range.split_once('-').expect("start-end");
            let hex = |s: &str| usize::from_str_radix(s, 16).expect("hex address");
            Vma {
                start: hex(start),
                end: hex(end),
                perms,
            }
        })
        .collect()
}

/// The permissions `/proc/self/maps` shows for every byte of `[start, end)`, if they are the
/// same throughout; otherwise a description of what is there instead.
pub(crate) fn perms_of(start: usize, end: usize) -> Result<String, String> {
    let covering: Vec<Vma> = vmas()
        .into_iter()
        .filter(|v| v.start < end && start < v.end)
        .collect();
    let mut at = start;
    let mut perms: Option<&str> = None;
    for vma in &covering {
        if vma.start > at {
            return Err(format!(
                "{at:#x}..{:#x} is not mapped; mappings: {covering:x?}",
                vma.start
            ));
        }
        match perms {
            None => perms = Some(&vma.perms),
            Some(p) if p == vma.perms => {}
            Some(_) => {
                return Err(format!(
                    "mixed permissions over {start:#x}..{end:#x}: {covering:x?}"
                ))
            }
        }
        at = vma.end;
    }
    if at < end {
        return Err(format!(
            "{at:#x}..{end:#x} is not mapped; mappings: {covering:x?}"
        ));
    }
    Ok(perms.unwrap_or_default().to_owned())
}

/// Whether any byte of `[start, end)` is mapped.
pub(crate) fn any_mapped(start: usize, end: usize) -> bool {
    vmas().iter().any(|v| v.start < end && start < v.end)
}

/// The `/proc/self/maps` permission string of private memory with protection `prot`.
pub(crate) fn maps_perms(prot: Prot) -> String {
    format!("{prot}p")
}

// ---- mincore -------------------------------------------------------------------------------

/// How many pages of `[start, start + len)` are resident, per `mincore`.
///
/// # Panics
///
/// If `mincore` fails (the range is not mapped, or `start` is not page-aligned).
pub(crate) fn resident_pages(start: usize, len: usize) -> usize {
    let page = mapcore_std::page_size();
    let mut vec = vec![0u8; len.div_ceil(page)];
    // SAFETY: mincore only reads the page tables of the range and writes one byte per page
    // into `vec`, which has exactly that many bytes.
    let rc = unsafe {
        libc::mincore(
            ptr::with_exposed_provenance_mut(start),
            len,
            vec.as_mut_ptr(),
        )
    };
    assert_eq!(
        rc,
        0,
        "mincore({start:#x}, {len:#x}): {}",
        std::io::Error::last_os_error()
    );
    vec.iter().filter(|b| **b & 1 != 0).count()
}

// ---- raw memory ----------------------------------------------------------------------------

/// Reads `len` bytes at `addr`.
///
/// # Safety
///
/// `[addr, addr + len)` is mapped readable and nobody writes it meanwhile.
pub(crate) unsafe fn read(addr: usize, len: usize) -> Vec<u8> {
    (0..len)
        // SAFETY: each byte is mapped readable, as the caller promises.
        .map(|i| unsafe { ptr::with_exposed_provenance::<u8>(addr + i).read_volatile() })
        .collect()
}

/// Writes `bytes` at `addr`.
///
/// # Safety
///
/// `[addr, addr + bytes.len())` is mapped writable and nobody else accesses it meanwhile.
pub(crate) unsafe fn write(addr: usize, bytes: &[u8]) {
    for (i, b) in bytes.iter().enumerate() {
        // SAFETY: each byte is mapped writable, as the caller promises.
        unsafe { ptr::with_exposed_provenance_mut::<u8>(addr + i).write_volatile(*b) };
    }
}

// ---- machine code --------------------------------------------------------------------------

/// Machine code for the host architecture, System V / AAPCS64 calling convention.
pub(crate) mod code {
    /// `extern "C" fn(x: u64) -> u64 { x * 3 + 7 }`
    #[cfg(target_arch = "x86_64")]
    pub(crate) const TIMES3_PLUS7: &[u8] = &[
        0x48, 0x8d, 0x04, 0x7f, // lea rax, [rdi + rdi*2]
        0x48, 0x83, 0xc0, 0x07, // add rax, 7
        0xc3, // ret
    ];
    /// `extern "C" fn(x: u64) -> u64 { x * 3 + 7 }`
    #[cfg(target_arch = "aarch64")]
    pub(crate) const TIMES3_PLUS7: &[u8] = &[
        0x00, 0x04, 0x00, 0x8b, // add x0, x0, x0, lsl #1
        0x00, 0x1c, 0x00, 0x91, // add x0, x0, #7
        0xc0, 0x03, 0x5f, 0xd6, // ret
    ];

    /// `extern "C" fn(p: *const u64) -> u64 { p[0] + p[1] }`
    #[cfg(target_arch = "x86_64")]
    pub(crate) const SUM_PAIR: &[u8] = &[
        0x48, 0x8b, 0x07, // mov rax, [rdi]
        0x48, 0x03, 0x47, 0x08, // add rax, [rdi + 8]
        0xc3, // ret
    ];
    /// `extern "C" fn(p: *const u64) -> u64 { p[0] + p[1] }`
    #[cfg(target_arch = "aarch64")]
    pub(crate) const SUM_PAIR: &[u8] = &[
        0x01, 0x08, 0x40, 0xa9, // ldp x1, x2, [x0]
        0x20, 0x00, 0x02, 0x8b, // add x0, x1, x2
        0xc0, 0x03, 0x5f, 0xd6, // ret
    ];

    /// `extern "C" fn() -> u64 { value }`
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn ret_const(value: u16) -> Vec<u8> {
        let [lo, hi] = value.to_le_bytes();
        vec![0xb8, lo, hi, 0, 0, 0xc3] // mov eax, value; ret
    }
    /// `extern "C" fn() -> u64 { value }`
    #[cfg(target_arch = "aarch64")]
    pub(crate) fn ret_const(value: u16) -> Vec<u8> {
        let movz = 0xd280_0000u32 | (u32::from(value) << 5); // movz x0, #value
        let mut code = movz.to_le_bytes().to_vec();
        code.extend_from_slice(&0xd65f_03c0u32.to_le_bytes()); // ret
        code
    }
}

/// Calls the `extern "C" fn() -> u64` at `addr`.
///
/// # Safety
///
/// `addr` holds such a function, made executable and instruction-cache coherent.
pub(crate) unsafe fn call0(addr: usize) -> u64 {
    // SAFETY: the caller promises a function of this signature at `addr`.
    let f = unsafe {
        std::mem::transmute::<*const (), extern "C" fn() -> u64>(ptr::with_exposed_provenance(addr))
    };
    f()
}

/// Calls the `extern "C" fn(u64) -> u64` at `addr` with `arg`.
///
/// # Safety
///
/// `addr` holds such a function, made executable and instruction-cache coherent, and it is
/// sound to call with `arg`.
pub(crate) unsafe fn call1(addr: usize, arg: u64) -> u64 {
    // SAFETY: the caller promises a function of this signature at `addr`.
    let f = unsafe {
        std::mem::transmute::<*const (), extern "C" fn(u64) -> u64>(ptr::with_exposed_provenance(
            addr,
        ))
    };
    f(arg)
}

// ---- the helper actions of orc-rt's tests -----------------------------------------------------

const UNDECODABLE: ActionError = ActionError::new(-1);

fn two_u64(args: &[u8]) -> Result<(usize, u64), ActionError> {
    let (a, b) = args.split_at_checked(8).ok_or(UNDECODABLE)?;
    let a = u64::from_ne_bytes(a.try_into().map_err(|_| UNDECODABLE)?);
    let b = u64::from_ne_bytes(b.try_into().map_err(|_| UNDECODABLE)?);
    Ok((usize::try_from(a).map_err(|_| UNDECODABLE)?, b))
}

fn pair_args(a: u64, b: u64) -> Vec<u8> {
    [a.to_ne_bytes(), b.to_ne_bytes()].concat()
}

/// Upstream `write(P, V)`: stores the u64 `V` at JIT address `P`.
fn write_u64(args: &[u8]) -> Result<(), ActionError> {
    let (p, v) = two_u64(args)?;
    // SAFETY: the tests only build this action for an aligned address in a read-write
    // segment of the region being initialized.
    unsafe { ptr::with_exposed_provenance_mut::<u64>(p).write_volatile(v) };
    Ok(())
}

/// Upstream `read(Dst, Src)`: copies the u64 at JIT address `Src` into the sentinel `Dst`.
fn read_u64(args: &[u8]) -> Result<(), ActionError> {
    let (dst, src) = two_u64(args)?;
    let src = usize::try_from(src).map_err(|_| UNDECODABLE)?;
    // SAFETY: the tests only build this action for an aligned, readable address of the
    // region and a live `AtomicU64` sentinel.
    unsafe {
        let value = ptr::with_exposed_provenance::<u64>(src).read_volatile();
        (*ptr::with_exposed_provenance::<AtomicU64>(dst)).store(value, Ordering::SeqCst);
    }
    Ok(())
}

/// Adds one to the `AtomicU64` whose address is the argument.
fn bump(args: &[u8]) -> Result<(), ActionError> {
    let addr: [u8; 8] = args.try_into().map_err(|_| UNDECODABLE)?;
    let addr = usize::try_from(u64::from_ne_bytes(addr)).map_err(|_| UNDECODABLE)?;
    // SAFETY: the tests only build this action for a live `AtomicU64`.
    unsafe { (*ptr::with_exposed_provenance::<AtomicU64>(addr)).fetch_add(1, Ordering::SeqCst) };
    Ok(())
}

fn addr_of(sentinel: &AtomicU64) -> u64 {
    ptr::from_ref(sentinel).expose_provenance() as u64
}

/// An action storing `value` at JIT address `at`.
pub(crate) fn write_action(at: usize, value: u64) -> Action {
    Action::new(write_u64, &pair_args(at as u64, value)).expect("16 argument bytes fit")
}

/// An action copying the u64 at JIT address `from` into `sentinel`, which must outlive the
/// map (or at least the action).
pub(crate) fn read_action(sentinel: &AtomicU64, from: usize) -> Action {
    Action::new(read_u64, &pair_args(addr_of(sentinel), from as u64))
        .expect("16 argument bytes fit")
}

/// An action adding one to `counter`, which must outlive the map (or at least the action).
pub(crate) fn bump_action(counter: &AtomicU64) -> Action {
    Action::with_u64(bump, addr_of(counter))
}

// ---- skips ---------------------------------------------------------------------------------

/// The skips a run expects, by reason, comma-separated (the aarch64 gate under qemu-user sets
/// `mdwe,emulator`): with `CI=true`, any other skip fails its test.
pub(crate) const EXPECTED_SKIPS_ENV: &str = "MAPCORE_EXPECTED_SKIPS";

/// Says that `test` did not check something because of `reason` (a short name: `mdwe`,
/// `emulator`, `max-map-count`) and `why`: one `SKIPPED ... NOT checked` line on stdout,
/// which CI's logs collect. Under `CI=true` a skip the run does not list in
/// [`EXPECTED_SKIPS_ENV`] fails the test instead: a check CI did not make is no pass.
///
/// # Panics
///
/// Under `CI=true`, unless [`EXPECTED_SKIPS_ENV`] lists `reason`.
pub(crate) fn skipped(test: &str, reason: &str, why: impl std::fmt::Display) {
    let line = format!("SKIPPED {test} ({reason}): {why}; NOT checked");
    println!("{line}");
    let in_ci = std::env::var_os("CI").is_some_and(|v| v == "true");
    let expected = std::env::var(EXPECTED_SKIPS_ENV).unwrap_or_default();
    assert!(
        !in_ci || expected.split(',').any(|s| s.trim() == reason),
        "{line}: CI=true and {EXPECTED_SKIPS_ENV}={expected:?} does not list `{reason}`"
    );
}

// ---- child processes -------------------------------------------------------------------------

/// A command prefix (words separated by whitespace) that runs a test binary of this target, for
/// tests that run their own binary again in a child process. Needed where the tests themselves
/// run under an emulator: under `qemu-aarch64` a child process cannot `exec` an aarch64 binary
/// directly (there is no binfmt handler), so the child is run as
/// `qemu-aarch64 -L /usr/aarch64-linux-gnu <this binary> ...`. Unset: the binary runs directly.
pub(crate) const TEST_RUNNER_ENV: &str = "MAPCORE_TEST_RUNNER";

/// A command that runs this test binary again: directly, or through [`TEST_RUNNER_ENV`].
pub(crate) fn this_test_binary() -> std::process::Command {
    let exe = std::env::current_exe().expect("current_exe");
    let runner = std::env::var(TEST_RUNNER_ENV).unwrap_or_default();
    let mut words = runner.split_whitespace();
    match words.next() {
        None => std::process::Command::new(exe),
        Some(program) => {
            let mut command = std::process::Command::new(program);
            command.args(words).arg(exe);
            command
        }
    }
}

/// Why a child process that ran this test binary again may have failed to start, for the
/// parent's message: exit status 127 is the shell's and `posix_spawn`'s "could not exec".
pub(crate) fn exec_hint(status: std::process::ExitStatus) -> &'static str {
    if status.code() == Some(127) && std::env::var_os(TEST_RUNNER_ENV).is_none() {
        "; exit status 127: the child could not run this test binary again. Under an emulator \
         (qemu-user) set MAPCORE_TEST_RUNNER to its command, e.g. \
         MAPCORE_TEST_RUNNER=\"qemu-aarch64 -L /usr/aarch64-linux-gnu\""
    } else {
        ""
    }
}

/// Set in the child process that [`in_mdwe_child`] starts.
const MDWE_CHILD_ENV: &str = "MAPCORE_STD_MDWE_CHILD";
const MDWE_CHILD_CHECKED: &str = "MDWE-CHILD: all checks passed";
const MDWE_CHILD_UNSUPPORTED: &str = "MDWE-CHILD: PR_SET_MDWE unsupported";

/// Runs `checks` in a child process in which no mapping may gain execute permission
/// (`prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN)`, Linux 6.3+, which cannot be undone): the
/// test binary runs itself again for the test `test` alone. In the parent, fails unless the
/// child ran `checks` to the end; [`skipped`] (reason `mdwe`) when the kernel has no
/// `PR_SET_MDWE`.
pub(crate) fn in_mdwe_child(test: &str, checks: impl FnOnce()) {
    if std::env::var_os(MDWE_CHILD_ENV).is_some() {
        // SAFETY: PR_SET_MDWE takes integer arguments only and changes no memory.
        let rc = unsafe { libc::prctl(libc::PR_SET_MDWE, libc::PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) };
        if rc != 0 {
            let error = std::io::Error::last_os_error();
            assert_eq!(
                error.raw_os_error(),
                Some(libc::EINVAL),
                "prctl(PR_SET_MDWE): {error}"
            );
            println!("{MDWE_CHILD_UNSUPPORTED}: {error}");
            return;
        }
        checks();
        println!("{MDWE_CHILD_CHECKED}");
        return;
    }
    let (stdout, stderr) = run_child(test, MDWE_CHILD_ENV);
    // With --nocapture the child's line follows libtest's "test NAME ... " on the same line.
    if let Some(line) = stdout
        .lines()
        .find_map(|l| l.find(MDWE_CHILD_UNSUPPORTED).map(|at| &l[at..]))
    {
        skipped(
            test,
            "mdwe",
            format_args!(
                "PR_SET_MDWE is refused here ({line}): a kernel before 6.3, or an emulator such \
                 as qemu-user, which checks page protections itself and does not pass \
                 PR_SET_MDWE on"
            ),
        );
        return;
    }
    assert!(
        stdout.contains(MDWE_CHILD_CHECKED),
        "the child did not run the checks:\n{stdout}\n{stderr}"
    );
}

/// Set in the child process that [`in_own_process`] starts.
const OWN_PROCESS_ENV: &str = "MAPCORE_STD_OWN_PROCESS";
const OWN_PROCESS_CHECKED: &str = "OWN-PROCESS: all checks passed";

/// Runs `checks` in a child process of its own (the test binary again, for the test `test`
/// alone), for checks that change process-wide settings such as resource limits. In the
/// parent, fails unless the child ran `checks` to the end.
pub(crate) fn in_own_process(test: &str, checks: impl FnOnce()) {
    if std::env::var_os(OWN_PROCESS_ENV).is_some() {
        checks();
        println!("{OWN_PROCESS_CHECKED}");
        return;
    }
    let (stdout, stderr) = run_child(test, OWN_PROCESS_ENV);
    assert!(
        stdout.contains(OWN_PROCESS_CHECKED),
        "the child did not run the checks:\n{stdout}\n{stderr}"
    );
}

/// Runs this test binary again for the test `test` alone, with `env` set, and returns its
/// stdout and stderr; fails unless it exited successfully.
fn run_child(test: &str, env: &str) -> (String, String) {
    let output = this_test_binary()
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(env, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "child failed ({}{}):\n{stdout}\n{stderr}",
        output.status,
        exec_hint(output.status)
    );
    (stdout, stderr)
}
