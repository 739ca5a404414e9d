//! Cranelift JIT on mapcore memory: compile a small module with Cranelift, run it from a
//! mapcore slab, free it, and do it again on the same memory.
//!
//! Run from the repository root:
//! `cargo run --release -p mapcore-std --features cranelift --example cranelift_jit`
//!
//! The module has a recursive function (`fib`), a loop (`sum_to`), a call to an imported libc
//! function (`strlen`, on a string reached through a pointer in writable data), a read-only
//! table (`square`) and a writable counter (`bump`). [`MapcoreMemoryProvider`] places each kind
//! of memory in its own pages of one slab and, when Cranelift finalizes, asks mapcore to make
//! code read-execute and tables read-only. `JITModule::free_memory` hands everything back:
//! the pages are discarded and the slab is unmapped, so the next module gets the same addresses
//! and the process does not grow.
#![expect(unsafe_code, reason = "calling JIT'd code is inherently unsafe")]

use std::error::Error;
use std::fs;

use mapcore_std::cranelift::cranelift_codegen::ir::condcodes::IntCC;
use mapcore_std::cranelift::cranelift_codegen::ir::{
    types, AbiParam, InstBuilder, MemFlagsData, Value,
};
use mapcore_std::cranelift::cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use mapcore_std::cranelift::cranelift_jit::{JITBuilder, JITModule};
use mapcore_std::cranelift::cranelift_module::{
    default_libcall_names, DataDescription, DataId, FuncId, Linkage, Module,
};
use mapcore_std::MapcoreMemoryProvider;

type Res<T> = Result<T, Box<dyn Error>>;

const GREETING: &[u8] = b"hello from mapcore memory\0";

/// Declares `fn(i64 x params) -> i64` and defines it with `body`, which gets the module, a
/// builder in the entry block and the parameters, and returns the result.
fn function(
    module: &mut JITModule,
    name: &str,
    linkage: Linkage,
    params: usize,
    body: impl FnOnce(&mut JITModule, FuncId, &mut FunctionBuilder<'_>, &[Value]) -> Value,
) -> Res<FuncId> {
    let mut ctx = module.make_context();
    ctx.func
        .signature
        .params
        .extend((0..params).map(|_| AbiParam::new(types::I64)));
    ctx.func.signature.returns.push(AbiParam::new(types::I64));
    let id = module.declare_function(name, linkage, &ctx.func.signature)?;
    let mut fctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let params = b.block_params(entry).to_vec();
    let result = body(module, id, &mut b, &params);
    b.ins().return_(&[result]);
    b.seal_all_blocks();
    b.finalize(module.isa().frontend_config());
    module.define_function(id, &mut ctx)?;
    Ok(id)
}

/// Emits a call of `callee` with `args` and returns its result.
fn call(
    module: &mut JITModule,
    b: &mut FunctionBuilder<'_>,
    callee: FuncId,
    args: &[Value],
) -> Value {
    let fref = module.declare_func_in_func(callee, b.func);
    let inst = b.ins().call(fref, args);
    b.inst_results(inst)[0]
}

/// Emits the address of data object `data`.
fn address(module: &mut JITModule, b: &mut FunctionBuilder<'_>, data: DataId) -> Value {
    let gv = module.declare_data_in_func(data, b.func);
    let pointer = module.target_config().pointer_type();
    b.ins().symbol_value(pointer, gv)
}

struct Program {
    fib: FuncId,
    sum_to: FuncId,
    greeting_len: FuncId,
    square: FuncId,
    bump: FuncId,
    squares: DataId,
    counter: DataId,
}

fn define_program(module: &mut JITModule) -> Res<Program> {
    let i64t = types::I64;
    let trusted = MemFlagsData::trusted();

    // fib(n) = if n < 2 { n } else { fib(n - 1) + fib(n - 2) }
    let fib = function(module, "fib", Linkage::Export, 1, |module, fib, b, p| {
        let (recurse, done) = (b.create_block(), b.create_block());
        b.append_block_param(done, i64t);
        let small = b.ins().icmp_imm_s(IntCC::SignedLessThan, p[0], 2);
        b.ins().brif(small, done, &[p[0].into()], recurse, &[]);
        b.switch_to_block(recurse);
        let n1 = b.ins().iadd_imm_s(p[0], -1);
        let n2 = b.ins().iadd_imm_s(p[0], -2);
        let f1 = call(module, b, fib, &[n1]);
        let f2 = call(module, b, fib, &[n2]);
        let sum = b.ins().iadd(f1, f2);
        b.ins().jump(done, &[sum.into()]);
        b.switch_to_block(done);
        b.block_params(done)[0]
    })?;

    // sum_to(n) = 1 + 2 + ... + n, as a loop.
    let sum_to = function(module, "sum_to", Linkage::Export, 1, |_, _, b, p| {
        let (head, body, exit) = (b.create_block(), b.create_block(), b.create_block());
        b.append_block_param(head, i64t);
        b.append_block_param(head, i64t);
        b.append_block_param(exit, i64t);
        let (one, zero) = (b.ins().iconst(i64t, 1), b.ins().iconst(i64t, 0));
        b.ins().jump(head, &[one.into(), zero.into()]);
        b.switch_to_block(head);
        let (i, acc) = (b.block_params(head)[0], b.block_params(head)[1]);
        let more = b.ins().icmp(IntCC::SignedLessThanOrEqual, i, p[0]);
        b.ins().brif(more, body, &[], exit, &[acc.into()]);
        b.switch_to_block(body);
        let acc = b.ins().iadd(acc, i);
        let i = b.ins().iadd_imm_s(i, 1);
        b.ins().jump(head, &[i.into(), acc.into()]);
        b.switch_to_block(exit);
        b.block_params(exit)[0]
    })?;

    // A read-only string, a writable pointer to it, and strlen imported from libc.
    let greeting = module.declare_data("greeting", Linkage::Local, false, false)?;
    let mut desc = DataDescription::new();
    desc.define(GREETING.into());
    module.define_data(greeting, &desc)?;
    let greeting_ptr = module.declare_data("greeting_ptr", Linkage::Local, true, false)?;
    let mut desc = DataDescription::new();
    desc.define_zeroinit(8);
    let target = module.declare_data_in_data(greeting, &mut desc);
    desc.write_data_addr(0, target, 0);
    module.define_data(greeting_ptr, &desc)?;
    let mut strlen_sig = module.make_signature();
    strlen_sig.params.push(AbiParam::new(i64t));
    strlen_sig.returns.push(AbiParam::new(i64t));
    let strlen = module.declare_function("strlen", Linkage::Import, &strlen_sig)?;
    let greeting_len = function(
        module,
        "greeting_len",
        Linkage::Export,
        0,
        |module, _, b, _| {
            let slot = address(module, b, greeting_ptr);
            let s = b.ins().load(i64t, trusted, slot, 0);
            call(module, b, strlen, &[s])
        },
    )?;

    // square(i) = SQUARES[i & 15], a read-only table.
    let squares = module.declare_data("squares", Linkage::Local, false, false)?;
    let mut desc = DataDescription::new();
    desc.define((0..16i64).flat_map(|i| (i * i).to_ne_bytes()).collect());
    module.define_data(squares, &desc)?;
    let square = function(module, "square", Linkage::Export, 1, |module, _, b, p| {
        let table = address(module, b, squares);
        let index = b.ins().band_imm_s(p[0], 15);
        let offset = b.ins().ishl_imm_s(index, 3);
        let at = b.ins().iadd(table, offset);
        b.ins().load(i64t, trusted, at, 0)
    })?;

    // bump() = { COUNTER += 1; COUNTER }, writable data.
    let counter = module.declare_data("counter", Linkage::Local, true, false)?;
    let mut desc = DataDescription::new();
    desc.define_zeroinit(8);
    module.define_data(counter, &desc)?;
    let bump = function(module, "bump", Linkage::Export, 0, |module, _, b, _| {
        let at = address(module, b, counter);
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

/// The permissions `/proc/self/maps` shows for `addr`, like `r-xp`.
fn perms(addr: *const u8) -> String {
    let maps = fs::read_to_string("/proc/self/maps").unwrap_or_default();
    maps.lines()
        .find_map(|line| {
            let (range, rest) = line.split_once(' ')?;
            let (start, end) = range.split_once('-')?;
            let start = usize::from_str_radix(start, 16).ok()?;
            let end = usize::from_str_radix(end, 16).ok()?;
            (start..end)
                .contains(&addr.addr())
                .then(|| rest[..4].to_owned())
        })
        .unwrap_or_else(|| "unmapped".into())
}

/// `VmSize` and `VmRSS` from `/proc/self/status`, in KiB.
fn vm() -> (usize, usize) {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmSize:"), field("VmRSS:"))
}

/// One round: build, run, print, free. Returns the address of `fib` and VmSize after freeing.
fn round(n: usize) -> Res<(usize, usize)> {
    let provider = MapcoreMemoryProvider::new()?;
    let (base, size) = provider.slab().ok_or("no slab")?;
    println!(
        "round {n}: mapcore slab {base:#x}..{:#x} ({} MiB, MAP_NORESERVE)",
        base + size,
        size >> 20
    );

    let mut builder = JITBuilder::new(default_libcall_names())?;
    builder.memory_provider(Box::new(provider));
    let mut module = JITModule::new(builder);
    let program = define_program(&mut module)?;
    module.finalize_definitions()?;

    let f = |id| module.get_finalized_function(id);
    // SAFETY: every pointer is a finalized function of `module` with the signature given, and
    // `module` is alive until `free_memory` below.
    let (fib, sum_to, greeting_len, square, bump) = unsafe {
        type F0 = extern "C" fn() -> i64;
        type F1 = extern "C" fn(i64) -> i64;
        (
            std::mem::transmute::<*const u8, F1>(f(program.fib)),
            std::mem::transmute::<*const u8, F1>(f(program.sum_to)),
            std::mem::transmute::<*const u8, F0>(f(program.greeting_len)),
            std::mem::transmute::<*const u8, F1>(f(program.square)),
            std::mem::transmute::<*const u8, F0>(f(program.bump)),
        )
    };
    println!("  fib(30)             = {}", fib(30));
    println!("  sum_to(1_000_000)   = {}", sum_to(1_000_000));
    println!(
        "  strlen(greeting)    = {}   (libc strlen, via a pointer in writable data)",
        greeting_len()
    );
    println!(
        "  square(7), square(12) = {}, {}   (read-only table)",
        square(7),
        square(12)
    );
    println!(
        "  bump() x3           = {}, {}, {}   (writable counter)",
        bump(),
        bump(),
        bump()
    );
    assert_eq!(fib(30), 832_040);
    assert_eq!(sum_to(1_000_000), 500_000_500_000);
    assert_eq!(greeting_len(), GREETING.len() as i64 - 1);

    let fib_at = f(program.fib);
    let (squares_at, _) = module.get_finalized_data(program.squares);
    let (counter_at, _) = module.get_finalized_data(program.counter);
    println!("  code     fib     at {fib_at:?} {}", perms(fib_at));
    println!("  rodata   squares at {squares_at:?} {}", perms(squares_at));
    println!("  data     counter at {counter_at:?} {}", perms(counter_at));
    let (vm_live, rss_live) = vm();

    // SAFETY: none of the module's functions runs or is called again.
    unsafe { module.free_memory() };
    let (vm_freed, rss_freed) = vm();
    println!("  VmSize {vm_live} KiB live -> {vm_freed} KiB after free_memory; VmRSS {rss_live} -> {rss_freed} KiB");
    Ok((fib_at.addr(), vm_freed))
}

fn main() -> Res<()> {
    println!(
        "Cranelift {} on mapcore memory\n",
        mapcore_std::cranelift::cranelift_jit::VERSION
    );
    let mut rounds = Vec::new();
    for n in 0..3 {
        rounds.push(round(n)?);
        println!();
    }
    let same_address = rounds.windows(2).all(|w| w[0].0 == w[1].0);
    let stable = rounds.windows(2).all(|w| w[0].1 == w[1].1);
    println!(
        "same code addresses in every round: {}",
        if same_address {
            "yes"
        } else {
            "no (the kernel placed the new slab elsewhere)"
        }
    );
    println!(
        "VmSize after each free_memory: {:?} KiB -> {}",
        rounds.iter().map(|r| r.1).collect::<Vec<_>>(),
        if stable { "stable" } else { "changed" }
    );
    Ok(())
}
