//! The example's program, built with Cranelift's frontend: `fib` (recursion), `sum_to` (a
//! loop), `greeting_len` (libc `strlen` on a string reached through a pointer in writable
//! data), `square` (a read-only table) and `bump` (a writable counter), with the small helpers
//! that declare and define them. The Cranelift tests (`tests/cranelift_support`) build the
//! same program from this file.
#![expect(
    clippy::result_large_err,
    reason = "the helpers return Cranelift's own `ModuleResult`"
)]

use mapcore_std::cranelift::cranelift_codegen::ir::condcodes::IntCC;
use mapcore_std::cranelift::cranelift_codegen::ir::{
    types, AbiParam, InstBuilder, MemFlagsData, Value,
};
use mapcore_std::cranelift::cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use mapcore_std::cranelift::cranelift_jit::JITModule;
use mapcore_std::cranelift::cranelift_module::{
    DataDescription, DataId, FuncId, Linkage, Module, ModuleResult,
};

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

/// Emits a call of `callee` with `args` and returns its one result.
pub(crate) fn emit_call(
    module: &mut JITModule,
    b: &mut FunctionBuilder<'_>,
    callee: FuncId,
    args: &[Value],
) -> Value {
    let fref = module.declare_func_in_func(callee, b.func);
    let call = b.ins().call(fref, args);
    b.inst_results(call)[0]
}

/// Emits the address of data object `data`.
pub(crate) fn data_addr(
    module: &mut JITModule,
    b: &mut FunctionBuilder<'_>,
    data: DataId,
) -> Value {
    let gv = module.declare_data_in_func(data, b.func);
    let pointer = module.target_config().pointer_type();
    b.ins().symbol_value(pointer, gv)
}

/// Declares and defines a local data object holding `bytes` (no relocations).
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

/// The string whose length `greeting_len` asks `strlen` for.
pub(crate) const GREETING: &[u8] = b"hello from mapcore memory\0";

/// What [`define_program`] defined.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Program {
    /// `fib(n)`, recursive.
    pub(crate) fib: FuncId,
    /// `sum_to(n) = 1 + 2 + ... + n`, a loop.
    pub(crate) sum_to: FuncId,
    /// `greeting_len() = strlen(*greeting_ptr)`: an imported libc call, through a pointer in
    /// writable data relocated to read-only data.
    pub(crate) greeting_len: FuncId,
    /// `square(i) = squares[i & 15]`, a read-only table.
    pub(crate) square: FuncId,
    /// `bump() = { counter += 1; counter }`, writable data.
    pub(crate) bump: FuncId,
    /// The read-only table of `square`.
    pub(crate) squares: DataId,
    /// The writable counter of `bump`.
    pub(crate) counter: DataId,
}

/// Declares and defines the program in `module` (not finalized).
pub(crate) fn define_program(module: &mut JITModule) -> ModuleResult<Program> {
    let i64t = types::I64;
    let trusted = MemFlagsData::trusted();

    // fib(n) = if n < 2 { n } else { fib(n - 1) + fib(n - 2) }
    let fib = declare(module, "fib", Linkage::Export, 1)?;
    define(module, fib, |module, b, p| {
        let n = p[0];
        let (recurse, done) = (b.create_block(), b.create_block());
        b.append_block_param(done, i64t);
        let small = b.ins().icmp_imm_s(IntCC::SignedLessThan, n, 2);
        b.ins().brif(small, done, &[n.into()], recurse, &[]);
        b.switch_to_block(recurse);
        let n1 = b.ins().iadd_imm_s(n, -1);
        let n2 = b.ins().iadd_imm_s(n, -2);
        let f1 = emit_call(module, b, fib, &[n1]);
        let f2 = emit_call(module, b, fib, &[n2]);
        let sum = b.ins().iadd(f1, f2);
        b.ins().jump(done, &[sum.into()]);
        b.switch_to_block(done);
        b.block_params(done)[0]
    })?;

    // sum_to(n): for i in 1..=n { acc += i }
    let sum_to = declare(module, "sum_to", Linkage::Export, 1)?;
    define(module, sum_to, |_, b, p| {
        let n = p[0];
        let (head, body, exit) = (b.create_block(), b.create_block(), b.create_block());
        b.append_block_param(head, i64t); // i
        b.append_block_param(head, i64t); // acc
        b.append_block_param(exit, i64t);
        let (one, zero) = (b.ins().iconst(i64t, 1), b.ins().iconst(i64t, 0));
        b.ins().jump(head, &[one.into(), zero.into()]);
        b.switch_to_block(head);
        let (i, acc) = (b.block_params(head)[0], b.block_params(head)[1]);
        let more = b.ins().icmp(IntCC::SignedLessThanOrEqual, i, n);
        b.ins().brif(more, body, &[], exit, &[acc.into()]);
        b.switch_to_block(body);
        let acc = b.ins().iadd(acc, i);
        let i = b.ins().iadd_imm_s(i, 1);
        b.ins().jump(head, &[i.into(), acc.into()]);
        b.switch_to_block(exit);
        b.block_params(exit)[0]
    })?;

    // A read-only string, a writable pointer to it (an absolute relocation in data), and
    // strlen imported from libc by name.
    let greeting = data(module, "greeting", false, GREETING.to_vec())?;
    let greeting_ptr = module.declare_data("greeting_ptr", Linkage::Local, true, false)?;
    let mut desc = DataDescription::new();
    desc.define_zeroinit(8);
    let target = module.declare_data_in_data(greeting, &mut desc);
    desc.write_data_addr(0, target, 0);
    module.define_data(greeting_ptr, &desc)?;
    let strlen = declare(module, "strlen", Linkage::Import, 1)?;
    let greeting_len = declare(module, "greeting_len", Linkage::Export, 0)?;
    define(module, greeting_len, |module, b, _| {
        let slot = data_addr(module, b, greeting_ptr);
        let s = b.ins().load(i64t, trusted, slot, 0);
        emit_call(module, b, strlen, &[s])
    })?;

    // square(i) = squares[i & 15], a read-only table.
    let table: Vec<u8> = (0..16i64).flat_map(|i| (i * i).to_ne_bytes()).collect();
    let squares = data(module, "squares", false, table)?;
    let square = declare(module, "square", Linkage::Export, 1)?;
    define(module, square, |module, b, p| {
        let base = data_addr(module, b, squares);
        let index = b.ins().band_imm_s(p[0], 15);
        let offset = b.ins().ishl_imm_s(index, 3);
        let at = b.ins().iadd(base, offset);
        b.ins().load(i64t, trusted, at, 0)
    })?;

    // bump() = { counter += 1; counter }, writable data.
    let counter = data(module, "counter", true, vec![0; 8])?;
    let bump = declare(module, "bump", Linkage::Export, 0)?;
    define(module, bump, |module, b, _| {
        let at = data_addr(module, b, counter);
        let old = b.ins().load(i64t, trusted, at, 0);
        let new = b.ins().iadd_imm_s(old, 1);
        b.ins().store(trusted, new, at, 0);
        new
    })?;

    Ok(Program {
        fib,
        sum_to,
        greeting_len,
        square,
        bump,
        squares,
        counter,
    })
}
