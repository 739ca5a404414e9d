//! Quickstart: JIT real machine code into mapcore memory, run it, then reuse the same pages for
//! different code.
//!
//! Run from the repository root: `cargo run --release --example quickstart`
//!
//! A JIT produces machine code as bytes. To run them, a process needs memory that is
//! *executable*, and for safety it should never be writable and executable at once (W^X).
//! mapcore does the bookkeeping: you reserve a slab of address space, then *initialize* a
//! region in it (copy the bytes, set each segment's page protection, run "finalize" actions),
//! and later *deinitialize* it (run the matching "dealloc" actions, make the pages writable and
//! empty again) so the same addresses can hold new code.
#![expect(
    unsafe_code,
    reason = "calling JIT'd code and touching JIT memory is inherently unsafe"
)]

use std::error::Error;
use std::ptr;

use mapcore_std::{
    Action, ActionError, ActionPair, InitRequest, LibcHost, Prot, Segment, StdJitMap,
};

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("the quickstart carries machine code for x86_64 and aarch64 only");

/// Round 1: `extern "C" fn(x: u64) -> u64 { x * 3 + 7 }`.
#[cfg(target_arch = "x86_64")]
const TIMES3_PLUS7: &[u8] = &[
    0x48, 0x8d, 0x04, 0x7f, // lea rax, [rdi + rdi*2]
    0x48, 0x83, 0xc0, 0x07, // add rax, 7
    0xc3, // ret
];
#[cfg(target_arch = "aarch64")]
const TIMES3_PLUS7: &[u8] = &[
    0x00, 0x04, 0x00, 0x8b, // add x0, x0, x0, lsl #1
    0x00, 0x1c, 0x00, 0x91, // add x0, x0, #7
    0xc0, 0x03, 0x5f, 0xd6, // ret
];

/// Round 2: `extern "C" fn(p: *const u64) -> u64 { p[0] + p[1] }`; we pass it the absolute
/// address of the read-only constants.
#[cfg(target_arch = "x86_64")]
const SUM_PAIR: &[u8] = &[
    0x48, 0x8b, 0x07, // mov rax, [rdi]
    0x48, 0x03, 0x47, 0x08, // add rax, [rdi + 8]
    0xc3, // ret
];
#[cfg(target_arch = "aarch64")]
const SUM_PAIR: &[u8] = &[
    0x01, 0x08, 0x40, 0xa9, // ldp x1, x2, [x0]
    0x20, 0x00, 0x02, 0x8b, // add x0, x1, x2
    0xc0, 0x03, 0x5f, 0xd6, // ret
];

/// What the finalize action writes into the data page, as a runtime would register something.
const MARKER: u64 = 0x600d_c0de;

/// Finalize action: runs inside `initialize`, after the pages have their final protections.
/// Its argument bytes are the address of the read-write data page.
fn register(args: &[u8]) -> Result<(), ActionError> {
    let data = ptr::with_exposed_provenance_mut::<u64>(address_in(args)?);
    // SAFETY: `data` is the start of the region's read-write data page (see `main`), and
    // nothing else uses it while initialize runs.
    let before = unsafe { data.replace(MARKER) };
    println!(
        "    [finalize] registered: data page at {data:p} held {before:#x}, wrote {MARKER:#x}"
    );
    Ok(())
}

/// Dealloc action: runs inside `deinitialize`, before the pages are reset.
fn deregister(args: &[u8]) -> Result<(), ActionError> {
    let addr = address_in(args)?;
    // SAFETY: as in `register`; the page is still mapped read-write while dealloc actions run.
    let marker = unsafe { ptr::with_exposed_provenance::<u64>(addr).read() };
    println!("    [dealloc]  deregistered: the data page still held {marker:#x}");
    Ok(())
}

fn address_in(args: &[u8]) -> Result<usize, ActionError> {
    let bytes: [u8; 8] = args.try_into().map_err(|_| ActionError::new(1))?;
    usize::try_from(u64::from_ne_bytes(bytes)).map_err(|_| ActionError::new(2))
}

/// One line of `/proc/self/maps`: start, end, permissions.
type Mapping = (usize, usize, String);

/// The mappings of `[base, base + len)` as the kernel reports them in `/proc/self/maps`,
/// clipped to the range (the kernel may merge our mapping with a neighbouring one that has the
/// same permissions).
fn mappings(base: usize, len: usize) -> Result<Vec<Mapping>, Box<dyn Error>> {
    let mut found = Vec::new();
    for line in std::fs::read_to_string("/proc/self/maps")?.lines() {
        let (range, rest) = line.split_once(' ').ok_or("bad maps line")?;
        let (start, end) = range.split_once('-').ok_or("bad maps range")?;
        let (start, end) = (
            usize::from_str_radix(start, 16)?,
            usize::from_str_radix(end, 16)?,
        );
        let (start, end) = (start.max(base), end.min(base + len));
        if start < end {
            found.push((
                start,
                end,
                rest.get(..4).ok_or("bad maps permissions")?.to_owned(),
            ));
        }
    }
    Ok(found)
}

fn show_pages(what: &str, base: usize, len: usize) -> Result<(), Box<dyn Error>> {
    println!("  {what} (from /proc/self/maps):");
    for (start, end, perms) in mappings(base, len)? {
        println!(
            "    base+{:#06x}..base+{:#06x}  {perms}",
            start - base,
            end - base
        );
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    // The map: real mmap'ed memory; dropping it would release everything still there.
    let map = StdJitMap::new(LibcHost::new());
    let page = map.page_size();

    let arch = std::env::consts::ARCH;

    // 1. Reserve a slab: 3 pages of address space, read-write and zero to start with.
    let len = 3 * page;
    let base = map.reserve(len)?;
    println!("1. reserved {len} bytes at base = {base:#x} (page size {page} bytes, {arch})");
    show_pages("fresh slab", base, len)?;

    // The region's layout: code, then read-only constants, then read-write data.
    let (code_at, consts_at, data_at) = (base, base + page, base + 2 * page);
    let constants: Vec<u8> = [40u64, 2].iter().flat_map(|v| v.to_ne_bytes()).collect();
    let segments = |code: &'static [u8]| {
        [
            Segment::new(Prot::READ_EXEC, code_at, code.len(), code),
            Segment::new(Prot::READ, consts_at, constants.len(), &constants),
            Segment::new(Prot::READ_WRITE, data_at, page, &[]), // no content: reads zero
        ]
    };
    // One finalize/dealloc pair, both given the data page's address as their argument.
    let actions = [ActionPair::new(
        Action::with_u64(register, data_at as u64),
        Action::with_u64(deregister, data_at as u64),
    )];

    // 2. Initialize: copy the code and constants in, set protections, run `register`.
    println!("\n2. initialize: code (r-x) at {code_at:#x}, constants (r--) at {consts_at:#x}, data (rw-) at {data_at:#x}");
    let key = map.initialize(&InitRequest::new(&segments(TIMES3_PLUS7), &actions))?;
    show_pages("after initialize", base, len)?;

    // 3. Call the code: the address becomes a function pointer of the matching signature.
    // SAFETY: `code_at` holds TIMES3_PLUS7, executable, with the instruction cache made
    // coherent by initialize; it follows the C calling convention for `fn(u64) -> u64`.
    let times3_plus7 = unsafe {
        std::mem::transmute::<*const (), extern "C" fn(u64) -> u64>(ptr::with_exposed_provenance(
            code_at,
        ))
    };
    println!(
        "\n3. called the JIT'd code: f(5) = {} (x * 3 + 7)",
        times3_plus7(5)
    );

    // 4. Deinitialize: `deregister` runs, then the pages go back to read-write and zero.
    println!("\n4. deinitialize region {key:#x}");
    map.deinitialize(key)?;
    show_pages("after deinitialize", base, len)?;

    // 5. Reuse the same addresses for different code; `times3_plus7` must not be called again.
    println!("\n5. initialize again at the same addresses, with different code");
    let key = map.initialize(&InitRequest::new(&segments(SUM_PAIR), &actions))?;
    show_pages("after the second initialize", base, len)?;
    // SAFETY: `code_at` now holds SUM_PAIR, executable and coherent; it reads two u64 at its
    // argument, which is the readable constants segment.
    let sum_pair = unsafe {
        std::mem::transmute::<*const (), extern "C" fn(*const u64) -> u64>(
            ptr::with_exposed_provenance(code_at),
        )
    };
    let consts = ptr::with_exposed_provenance::<u64>(consts_at);
    println!(
        "   called the new code: g(constants) = {} (40 + 2, read from the r-- page)",
        sum_pair(consts)
    );

    // 6. Release the slab: remaining regions are deinitialized first, then it is unmapped.
    println!("\n6. release the slab (region {key:#x} is still live: its dealloc runs first)");
    map.release(base)?;
    println!(
        "  mappings left in the slab's range: {:?}",
        mappings(base, len)?
    );
    Ok(())
}
