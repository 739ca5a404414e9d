//! The dual-mapping floor (`floor-dual`): the limit of the mechanism the dual-mapped host and
//! jit-allocator use, written by hand with libc. One memory file (`memfd_create`) is mapped
//! twice, once: a read-write alias and a read-execute execution view. Per operation the blob
//! is copied through the alias and called through the execution view; on free the bytes
//! written are overwritten with traps through the alias (what jit-allocator does). No system
//! call per operation on x86_64.
//!
//! W1b's rodata page is made read-only in the execution view by the first operation that puts
//! rodata there (one `mprotect`), and stays so: a slot reused with the same layout needs no
//! call, as in the dual-mapped host.
//!
//! # Safety
//!
//! Raw `memfd_create`/`mmap`/`mprotect`/`munmap` on the one file and two views this contender
//! made, and copies into the alias; every address used lies inside those views.
#![expect(unsafe_code, reason = "raw libc memory calls: this is a floor")]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr;

use super::{page_ceil, Contender, Layout, Security, Slots, Token};
use crate::blob::{make_coherent, noop_action, TRAP};

/// A memory file mapped as a read-write alias and a read-execute view, set up once per
/// workload.
#[derive(Debug)]
pub(crate) struct FloorDual {
    file: Option<OwnedFd>,
    alias: *mut u8,
    exec: *mut u8,
    slab_len: usize,
    slots: Slots,
    /// Bytes of code and of rodata written into each slot, overwritten with traps on free.
    written: Vec<(usize, usize)>,
    /// Each slot's read-only range in the execution view (slab offset and length), if a W1b
    /// operation made one there.
    read_only: Vec<Option<(usize, usize)>>,
}

/// Panics with errno unless the libc call succeeded.
fn check(ok: bool, what: &str) {
    assert!(ok, "{what}: {}", io::Error::last_os_error());
}

/// A new anonymous memory file, executable where the kernel asks for it (`MFD_EXEC`, Linux
/// 6.3 and later, where `vm.memfd_noexec` may otherwise refuse to map it executable).
fn memory_file() -> OwnedFd {
    const NAME: &std::ffi::CStr = c"floor-dual";
    // SAFETY: `NAME` is a valid C string; memfd_create returns a new descriptor.
    let mut fd = unsafe { libc::memfd_create(NAME.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_EXEC) };
    if fd < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        // SAFETY: as above; a kernel before 6.3 does not know MFD_EXEC.
        fd = unsafe { libc::memfd_create(NAME.as_ptr(), libc::MFD_CLOEXEC) };
    }
    check(fd >= 0, "memfd_create");
    // SAFETY: `fd` was just returned by memfd_create and is owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `mmap(NULL, len, prot, MAP_SHARED, fd, 0)`.
fn map_shared(fd: &OwnedFd, len: usize, prot: libc::c_int) -> *mut u8 {
    // SAFETY: a new shared mapping of a file this contender owns, at an address of the
    // kernel's choice: it replaces nothing.
    let view = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            prot,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    check(view != libc::MAP_FAILED, "mmap");
    view.cast()
}

impl FloorDual {
    pub(crate) fn new() -> Self {
        Self {
            file: None,
            alias: ptr::null_mut(),
            exec: ptr::null_mut(),
            slab_len: 0,
            slots: Slots::default(),
            written: Vec::new(),
            read_only: Vec::new(),
        }
    }

    /// Copies `bytes` through the alias to `offset` bytes into the slab.
    fn write(&self, offset: usize, bytes: &[u8]) {
        assert!(offset + bytes.len() <= self.slab_len);
        // SAFETY: the alias is `slab_len` bytes of read-write shared memory, the range is
        // inside it (checked above), and `bytes` lies on the heap, not in the file.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), self.alias.add(offset), bytes.len()) };
    }

    /// Overwrites `len` bytes at `offset` with traps through the alias.
    fn fill_trap(&self, offset: usize, len: usize) {
        assert!(offset + len <= self.slab_len);
        // SAFETY: inside the alias (checked above); no region lives there any more.
        unsafe { ptr::write_bytes(self.alias.add(offset), TRAP, len) };
    }

    /// `mprotect` of `len` bytes at `offset` in the execution view.
    fn protect(&self, offset: usize, len: usize, prot: libc::c_int) {
        assert!(offset + len <= self.slab_len);
        // SAFETY: whole pages inside the execution view (checked above), of a free slot.
        let ret = unsafe { libc::mprotect(self.exec.add(offset).cast(), len, prot) };
        check(ret == 0, "mprotect");
    }

    /// Gives `slot` the read-only range `wanted` in the execution view and makes the rest of
    /// it read-execute again, if it is not so already.
    fn shape(&mut self, slot: usize, wanted: Option<(usize, usize)>) {
        let had = self.read_only[slot];
        if had == wanted {
            return;
        }
        if let Some((offset, len)) = had {
            self.protect(offset, len, libc::PROT_READ | libc::PROT_EXEC);
        }
        if let Some((offset, len)) = wanted {
            self.protect(offset, len, libc::PROT_READ);
        }
        self.read_only[slot] = wanted;
    }
}

impl Contender for FloorDual {
    fn name(&self) -> &'static str {
        "floor-dual"
    }

    fn security(&self) -> Security {
        Security::Dual
    }

    fn prepare(&mut self, layout: Layout) {
        self.slots.reset(layout);
        self.slab_len = self.slots.slab_bytes();
        self.written = vec![(0, 0); layout.slots];
        self.read_only = vec![None; layout.slots];
        let file = memory_file();
        let len = libc::off_t::try_from(self.slab_len).expect("slab size fits off_t");
        // SAFETY: a descriptor this contender just created.
        check(
            unsafe { libc::ftruncate(file.as_raw_fd(), len) } == 0,
            "ftruncate",
        );
        self.alias = map_shared(&file, self.slab_len, libc::PROT_READ | libc::PROT_WRITE);
        self.exec = map_shared(&file, self.slab_len, libc::PROT_READ | libc::PROT_EXEC);
        self.file = Some(file);
    }

    fn finish(&mut self) {
        for view in [self.alias, self.exec] {
            // SAFETY: a view this contender mapped; every region in it is gone.
            check(
                unsafe { libc::munmap(view.cast(), self.slab_len) } == 0,
                "munmap",
            );
        }
        self.alias = ptr::null_mut();
        self.exec = ptr::null_mut();
        self.file = None;
    }

    fn init(&mut self, code: &[u8]) -> Token {
        let (slot, offset) = self.slots.take();
        self.shape(slot, None);
        self.write(offset, code);
        let exec = self.exec.wrapping_add(offset);
        make_coherent(exec.addr(), code.len());
        self.written[slot] = (code.len(), 0);
        Token {
            exec: exec.expose_provenance(),
            rodata: 0,
            len: page_ceil(code.len()),
            id: slot,
        }
    }

    fn init_with_rodata(&mut self, code: &[u8], rodata: &[u8]) -> Token {
        let (slot, offset) = self.slots.take();
        let data = offset + page_ceil(code.len());
        self.shape(slot, Some((data, page_ceil(rodata.len()))));
        self.write(offset, code);
        self.write(data, rodata);
        let exec = self.exec.wrapping_add(offset);
        make_coherent(exec.addr(), code.len());
        noop_action(&[]).expect("finalize action");
        self.written[slot] = (code.len(), rodata.len());
        Token {
            exec: exec.expose_provenance(),
            rodata: self.exec.wrapping_add(data).expose_provenance(),
            len: data - offset + page_ceil(rodata.len()),
            id: slot,
        }
    }

    fn deinit(&mut self, token: Token) {
        let offset = token.exec - self.exec.addr();
        let (code, rodata) = self.written[token.id];
        self.fill_trap(offset, code);
        if rodata > 0 {
            self.fill_trap(offset + page_ceil(code), rodata);
        }
        self.slots.put(token.id);
    }

    fn deinit_with_rodata(&mut self, token: Token) {
        noop_action(&[]).expect("dealloc action");
        self.deinit(token);
    }
}
