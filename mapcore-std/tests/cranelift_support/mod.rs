//! Helpers shared by the Cranelift test binaries: the program of the `cranelift_jit` example
//! and many small generated functions, the expected results of their functions, calling JIT'd
//! functions, and `/proc/self/status`.
//!
//! # Safety
//!
//! Calling JIT'd code needs `transmute`; [`call`] is an `unsafe fn` whose callers promise the
//! pointer is a finalized function of the right signature.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the helpers"
)]
#![expect(unsafe_code, reason = "calling JIT'd functions")]
#![expect(
    clippy::result_large_err,
    reason = "the helpers return Cranelift's own `ModuleResult`"
)]

#[path = "../../examples/cranelift_jit/program.rs"]
pub(crate) mod program;

use std::fs;

use mapcore_std::cranelift::cranelift_codegen::ir::InstBuilder;
use mapcore_std::cranelift::cranelift_jit::{JITBuilder, JITMemoryProvider, JITModule};
use mapcore_std::cranelift::cranelift_module::{
    default_libcall_names, FuncId, Linkage, ModuleResult,
};

use program::{declare, define, emit_call, Program, GREETING};

/// A JIT module whose memory comes from `provider`.
pub(crate) fn module_with(provider: Box<dyn JITMemoryProvider + Send>) -> JITModule {
    let mut builder = JITBuilder::new(default_libcall_names()).expect("native ISA");
    builder.memory_provider(provider);
    JITModule::new(builder)
}

// ---- the example's program -----------------------------------------------------------------

/// Runs the finalized program and returns every result, in a fixed order.
///
/// # Safety
///
/// `program` was defined by [`define_program`] in `module`, which is finalized and not freed.
pub(crate) unsafe fn run_program(module: &JITModule, program: &Program) -> Vec<i64> {
    let f = |id| module.get_finalized_function(id);
    let mut out = Vec::new();
    // SAFETY: each pointer is a finalized function of the program with the signature given,
    // as the caller promises.
    unsafe {
        out.extend([0, 1, 2, 10, 20, 25].map(|n| call1(f(program.fib), n)));
        out.extend([0, 1, 10, 1000, 100_000].map(|n| call1(f(program.sum_to), n)));
        out.push(call0(f(program.greeting_len)));
        out.extend([0, 3, 15, 16, 17, -1].map(|i| call1(f(program.square), i)));
        out.extend((0..3).map(|_| call0(f(program.bump))));
    }
    out
}

/// What [`run_program`] returns, computed in Rust.
pub(crate) fn expected_program() -> Vec<i64> {
    fn fib(n: i64) -> i64 {
        if n < 2 {
            n
        } else {
            fib(n - 1) + fib(n - 2)
        }
    }
    let mut out = Vec::new();
    out.extend([0, 1, 2, 10, 20, 25].map(fib));
    out.extend([0i64, 1, 10, 1000, 100_000].map(|n| (1..=n).sum::<i64>()));
    out.push(GREETING.len() as i64 - 1);
    out.extend([0i64, 3, 15, 16, 17, -1].map(|i| (i & 15) * (i & 15)));
    out.extend([1, 2, 3]);
    out
}

// ---- many small functions ------------------------------------------------------------------

/// The constant of generated function `i`.
fn constant(i: usize) -> i64 {
    i as i64 * 7 + 3
}

/// What generated function `i` computes, in Rust. Every fifth calls its predecessor.
pub(crate) fn expected_small(i: usize, x: i64) -> i64 {
    let c = constant(i);
    match i % 5 {
        0 => x.wrapping_add(c),
        1 => x.wrapping_mul(c),
        2 => x ^ c,
        3 => x.wrapping_sub(c),
        _ => expected_small(i - 1, x).wrapping_add(c),
    }
}

/// Declares and defines generated functions `range`, each `fn(x: i64) -> i64` named `f{i}`
/// computing [`expected_small`]; function `i` with `i % 5 == 4` calls `ids[i - 1]`, which must
/// already be declared.
pub(crate) fn define_small(
    module: &mut JITModule,
    ids: &mut Vec<FuncId>,
    range: std::ops::Range<usize>,
) -> ModuleResult<()> {
    for i in range {
        assert_eq!(ids.len(), i, "functions are defined in order");
        let id = declare(module, &format!("f{i}"), Linkage::Local, 1)?;
        let c = constant(i);
        let previous = ids.last().copied();
        define(module, id, |module, b, p| {
            let x = p[0];
            match i % 5 {
                0 => b.ins().iadd_imm_s(x, c),
                1 => b.ins().imul_imm_s(x, c),
                2 => b.ins().bxor_imm_s(x, c),
                3 => b.ins().iadd_imm_s(x, -c),
                _ => {
                    let previous = previous.expect("i % 5 == 4 has a predecessor");
                    let y = emit_call(module, b, previous, &[x]);
                    b.ins().iadd_imm_s(y, c)
                }
            }
        })?;
        ids.push(id);
    }
    Ok(())
}

/// The inputs every generated function is checked with.
pub(crate) const INPUTS: [i64; 4] = [0, 1, -5, 123_456_789];

/// Calls every generated function on every input and panics on the first wrong result.
///
/// # Safety
///
/// `ids` are the finalized, live functions [`define_small`] defined in `module`, in order.
pub(crate) unsafe fn check_small(module: &JITModule, ids: &[FuncId]) {
    for (i, id) in ids.iter().enumerate() {
        let f = module.get_finalized_function(*id);
        for x in INPUTS {
            // SAFETY: `f` is generated function `i`, finalized and live, as promised.
            let got = unsafe { call1(f, x) };
            assert_eq!(got, expected_small(i, x), "f{i}({x})");
        }
    }
}

// ---- calling JIT'd code --------------------------------------------------------------------

/// Calls the `extern "C" fn() -> i64` at `f`.
///
/// # Safety
///
/// `f` is a finalized, live function of that signature.
pub(crate) unsafe fn call0(f: *const u8) -> i64 {
    // SAFETY: as the caller promises.
    let f = unsafe { std::mem::transmute::<*const u8, extern "C" fn() -> i64>(f) };
    f()
}

/// Calls the `extern "C" fn(i64) -> i64` at `f` with `x`.
///
/// # Safety
///
/// `f` is a finalized, live function of that signature.
pub(crate) unsafe fn call1(f: *const u8, x: i64) -> i64 {
    // SAFETY: as the caller promises.
    let f = unsafe { std::mem::transmute::<*const u8, extern "C" fn(i64) -> i64>(f) };
    f(x)
}

// ---- /proc/self/status ---------------------------------------------------------------------

/// A `kB` field of `/proc/self/status` (`VmSize`, `VmRSS`), in bytes.
pub(crate) fn status_bytes(field: &str) -> usize {
    let status = fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    let kb: usize = line
        .trim()
        .strip_suffix("kB")
        .expect("a kB value")
        .trim()
        .parse()
        .expect("a number");
    kb * 1024
}
