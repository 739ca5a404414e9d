//! Helpers shared by the Cranelift test binaries: building small Cranelift modules, the
//! expected results of their functions, calling JIT'd functions, and `/proc/self/status`.
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

use std::fs;

use mapcore_std::cranelift::cranelift_codegen::ir::condcodes::IntCC;
use mapcore_std::cranelift::cranelift_codegen::ir::{
    types, AbiParam, InstBuilder, MemFlagsData, Value,
};
use mapcore_std::cranelift::cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use mapcore_std::cranelift::cranelift_jit::{JITBuilder, JITMemoryProvider, JITModule};
use mapcore_std::cranelift::cranelift_module::{
    default_libcall_names, DataDescription, DataId, FuncId, Linkage, Module, ModuleResult,
};

/// A JIT module whose memory comes from `provider`.
pub(crate) fn module_with(provider: Box<dyn JITMemoryProvider + Send>) -> JITModule {
    let mut builder = JITBuilder::new(default_libcall_names()).expect("native ISA");
    builder.memory_provider(provider);
    JITModule::new(builder)
}

/// Declares `extern "C" fn(i64 x params) -> i64` named `name`.
pub(crate) fn declare(
    module: &mut JITModule,
    name: &str,
    linkage: Linkage,
    params: usize,
) -> ModuleResult<FuncId> {
    let mut sig = module.make_signature();
    sig.params
        .extend((0..params).map(|_| AbiParam::new(types::I64)));
    sig.returns.push(AbiParam::new(types::I64));
    module.declare_function(name, linkage, &sig)
}

/// Defines the declared function `id`: `body` gets the module, the builder positioned in the
/// entry block and the parameters, and returns the value to return.
pub(crate) fn define(
    module: &mut JITModule,
    id: FuncId,
    body: impl FnOnce(&mut JITModule, &mut FunctionBuilder<'_>, &[Value]) -> Value,
) -> ModuleResult<()> {
    let mut ctx = module.make_context();
    ctx.func.signature = module
        .declarations()
        .get_function_decl(id)
        .signature
        .clone();
    let mut fctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let params = b.block_params(entry).to_vec();
    let result = body(module, &mut b, &params);
    b.ins().return_(&[result]);
    b.seal_all_blocks();
    b.finalize(module.isa().frontend_config());
    module.define_function(id, &mut ctx)
}

/// Calls `b`'s call to `callee` with `args` and returns its one result.
pub(crate) fn call_fn(
    module: &mut JITModule,
    b: &mut FunctionBuilder<'_>,
    callee: FuncId,
    args: &[Value],
) -> Value {
    let fref = module.declare_func_in_func(callee, b.func);
    let call = b.ins().call(fref, args);
    b.inst_results(call)[0]
}

/// The address of data object `data` as a value.
pub(crate) fn data_addr(
    module: &mut JITModule,
    b: &mut FunctionBuilder<'_>,
    data: DataId,
) -> Value {
    let gv = module.declare_data_in_func(data, b.func);
    let ptr = module.target_config().pointer_type();
    b.ins().symbol_value(ptr, gv)
}

/// Defines a data object with `bytes` (and no relocations).
pub(crate) fn data(
    module: &mut JITModule,
    name: &str,
    writable: bool,
    bytes: Vec<u8>,
) -> ModuleResult<DataId> {
    let id = module.declare_data(name, Linkage::Local, writable, false)?;
    let mut desc = DataDescription::new();
    desc.define(bytes.into_boxed_slice());
    module.define_data(id, &desc)?;
    Ok(id)
}

// ---- the small program ---------------------------------------------------------------------

/// The greeting whose length the program asks `strlen` for.
pub(crate) const GREETING: &[u8] = b"hello from mapcore memory\0";

/// The functions of [`define_program`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Program {
    /// `fib(n)`, recursive.
    pub(crate) fib: FuncId,
    /// `sum_to(n) = 1 + 2 + ... + n`, a loop.
    pub(crate) sum_to: FuncId,
    /// `greeting_len() = strlen(*greeting_ptr)`: imported libc call, a pointer in writable data
    /// relocated to read-only data.
    pub(crate) greeting_len: FuncId,
    /// `square(i) = SQUARES[i & 15]`, a read-only table.
    pub(crate) square: FuncId,
    /// `bump() = { counter += 1; counter }`, writable data.
    pub(crate) bump: FuncId,
}

/// Declares and defines the small program in `module` (not finalized).
pub(crate) fn define_program(module: &mut JITModule) -> ModuleResult<Program> {
    let i64t = types::I64;
    // fib(n) = n < 2 ? n : fib(n - 1) + fib(n - 2)
    let fib = declare(module, "fib", Linkage::Export, 1)?;
    define(module, fib, |module, b, p| {
        let n = p[0];
        let recurse = b.create_block();
        let done = b.create_block();
        b.append_block_param(done, i64t);
        let small = b.ins().icmp_imm_s(IntCC::SignedLessThan, n, 2);
        b.ins().brif(small, done, &[n.into()], recurse, &[]);
        b.switch_to_block(recurse);
        let n1 = b.ins().iadd_imm_s(n, -1);
        let n2 = b.ins().iadd_imm_s(n, -2);
        let f1 = call_fn(module, b, fib, &[n1]);
        let f2 = call_fn(module, b, fib, &[n2]);
        let sum = b.ins().iadd(f1, f2);
        b.ins().jump(done, &[sum.into()]);
        b.switch_to_block(done);
        b.block_params(done)[0]
    })?;

    // sum_to(n): for i in 1..=n { acc += i }
    let sum_to = declare(module, "sum_to", Linkage::Export, 1)?;
    define(module, sum_to, |_, b, p| {
        let n = p[0];
        let head = b.create_block();
        let body = b.create_block();
        let exit = b.create_block();
        b.append_block_param(head, i64t); // i
        b.append_block_param(head, i64t); // acc
        b.append_block_param(exit, i64t);
        let one = b.ins().iconst(i64t, 1);
        let zero = b.ins().iconst(i64t, 0);
        b.ins().jump(head, &[one.into(), zero.into()]);
        b.switch_to_block(head);
        let i = b.block_params(head)[0];
        let acc = b.block_params(head)[1];
        let more = b.ins().icmp(IntCC::SignedLessThanOrEqual, i, n);
        b.ins().brif(more, body, &[], exit, &[acc.into()]);
        b.switch_to_block(body);
        let acc2 = b.ins().iadd(acc, i);
        let i2 = b.ins().iadd_imm_s(i, 1);
        b.ins().jump(head, &[i2.into(), acc2.into()]);
        b.switch_to_block(exit);
        b.block_params(exit)[0]
    })?;

    // Read-only greeting, and a writable pointer to it (an absolute relocation in data).
    let greeting = data(module, "greeting", false, GREETING.to_vec())?;
    let greeting_ptr = module.declare_data("greeting_ptr", Linkage::Local, true, false)?;
    let mut desc = DataDescription::new();
    desc.define_zeroinit(8);
    let gv = module.declare_data_in_data(greeting, &mut desc);
    desc.write_data_addr(0, gv, 0);
    module.define_data(greeting_ptr, &desc)?;

    // strlen, imported from libc by name.
    let strlen = declare(module, "strlen", Linkage::Import, 1)?;
    let greeting_len = declare(module, "greeting_len", Linkage::Export, 0)?;
    define(module, greeting_len, |module, b, _| {
        let slot = data_addr(module, b, greeting_ptr);
        let ptr = b.ins().load(i64t, MemFlagsData::trusted(), slot, 0);
        call_fn(module, b, strlen, &[ptr])
    })?;

    // A read-only table of squares.
    let table: Vec<u8> = (0..16i64).flat_map(|i| (i * i).to_ne_bytes()).collect();
    let squares = data(module, "squares", false, table)?;
    let square = declare(module, "square", Linkage::Export, 1)?;
    define(module, square, |module, b, p| {
        let base = data_addr(module, b, squares);
        let index = b.ins().band_imm_s(p[0], 15);
        let offset = b.ins().ishl_imm_s(index, 3);
        let at = b.ins().iadd(base, offset);
        b.ins().load(i64t, MemFlagsData::trusted(), at, 0)
    })?;

    // A writable counter.
    let counter = data(module, "counter", true, vec![0; 8])?;
    let bump = declare(module, "bump", Linkage::Export, 0)?;
    define(module, bump, |module, b, _| {
        let at = data_addr(module, b, counter);
        let old = b.ins().load(i64t, MemFlagsData::trusted(), at, 0);
        let new = b.ins().iadd_imm_s(old, 1);
        b.ins().store(MemFlagsData::trusted(), new, at, 0);
        new
    })?;

    Ok(Program {
        fib,
        sum_to,
        greeting_len,
        square,
        bump,
    })
}

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
                    let y = call_fn(module, b, previous, &[x]);
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
