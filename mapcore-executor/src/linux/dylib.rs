//! The dylib manager (`__llvm_orc_SimpleExecutorDylibManager_{open,resolve}_wrapper`).
//!
//! | Wrapper | Arguments | Reply |
//! |---|---|---|
//! | open | `(Addr instance, String path, u64 mode)` | `Expected<Addr handle>` |
//! | resolve | `(Addr handle, Seq<(String name, bool required)>)` | `Expected<Seq<Optional<(Addr, (u8 flags, u8 target flags))>>>` |
//!
//! An empty path opens the executor itself (`dlopen(NULL)`), whose global scope also holds
//! libc and every library opened since (all with `RTLD_GLOBAL`). Only handles this manager
//! returned are accepted by resolve: `dlsym` on a made-up handle would crash. A missing symbol
//! is `None`; the controller reports it ("Symbols not found").
//!
//! # Safety
//!
//! `dlopen` gets NUL-terminated paths, `dlsym` NUL-terminated names and only handles that
//! `dlopen` returned; `dlerror`'s string is copied at once.
#![expect(unsafe_code, reason = "dlopen, dlsym and dlerror")]

use std::ffi::{c_void, CStr, CString};

use mapcore_sps::{from_bytes, Seq};

use super::anchor::Anchor;
use super::reply::{self, Failure};

/// `JITSymbolFlags::Exported`, what LLVM's own executor reports for every symbol.
const EXPORTED: u8 = 0x10;

/// The dylib manager's state: the handles it opened.
#[derive(Debug, Default)]
pub(crate) struct Dylibs {
    handles: Vec<u64>,
}

/// The pending `dlerror` message.
fn dl_error() -> String {
    // SAFETY: dlerror has no preconditions; its string is copied before any other dl call.
    let message = unsafe { libc::dlerror() };
    if message.is_null() {
        return "unknown dynamic loader error".to_owned();
    }
    // SAFETY: a non-null dlerror result is a NUL-terminated string, valid until the next dl
    // call on this thread.
    unsafe { CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned()
}

/// `open_wrapper`.
pub(crate) fn open(dylibs: &mut Dylibs, args: &[u8]) -> Result<Vec<u8>, Failure> {
    const NAME: &str = "dylib open";
    let (instance, path, _mode) =
        from_bytes::<(u64, &[u8], u64)>(args).map_err(|e| Failure::decode(NAME, e))?;
    if instance != Anchor::DylibManager.addr() {
        return Err(Failure::wrong_instance(NAME, instance));
    }
    let flags = libc::RTLD_NOW | libc::RTLD_GLOBAL;
    let handle = if path.is_empty() {
        // SAFETY: a null path opens the main program; no other precondition.
        unsafe { libc::dlopen(std::ptr::null(), flags) }
    } else {
        let c_path = CString::new(path)
            .map_err(|_| Failure::protocol(format_args!("{NAME}: the path contains a NUL byte")))?;
        // SAFETY: `c_path` is NUL-terminated; loading runs the library's constructors, which
        // is what opening a library means.
        unsafe { libc::dlopen(c_path.as_ptr(), flags) }
    };
    if handle.is_null() {
        return Err(Failure::rejected(format_args!(
            "cannot open {:?}: {}",
            String::from_utf8_lossy(path),
            dl_error()
        )));
    }
    let handle = handle.expose_provenance() as u64;
    if !dylibs.handles.contains(&handle) {
        dylibs.handles.push(handle);
    }
    reply::expected_addr(handle)
}

/// `resolve_wrapper`.
pub(crate) fn resolve(dylibs: &mut Dylibs, args: &[u8]) -> Result<Vec<u8>, Failure> {
    const NAME: &str = "dylib resolve";
    let (handle, names) =
        from_bytes::<(u64, Seq<'_, (&[u8], bool)>)>(args).map_err(|e| Failure::decode(NAME, e))?;
    if !dylibs.handles.contains(&handle) {
        return Err(Failure::protocol(format_args!(
            "{NAME}: {handle:#x} is not a handle this executor opened"
        )));
    }
    let raw = std::ptr::with_exposed_provenance_mut::<c_void>(handle as usize);
    let mut found: Vec<Option<(u64, (u8, u8))>> = Vec::with_capacity(names.len());
    let mut bytes = 8;
    for (name, _required) in names {
        bytes += 19;
        let Ok(c_name) = CString::new(name) else {
            found.push(None);
            continue;
        };
        // SAFETY: `raw` is a handle dlopen returned (checked above) and never closed;
        // `c_name` is NUL-terminated.
        let addr = unsafe { libc::dlsym(raw, c_name.as_ptr()) };
        found.push((!addr.is_null()).then(|| (addr.addr() as u64, (EXPORTED, 0))));
    }
    reply::encode(bytes, |w| w.expected(Ok(&found[..])))
}
