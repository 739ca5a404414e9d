//! [`StdJitMap`]: the map of a normal process.
//!
//! No wrapper type is needed: [`JitMap`]'s own `Drop` already releases every slab (running
//! every remaining dealloc action), [`LibcHost`] has no state, and [`Growable`] storage lifts
//! the fixed table limits. So the std map is a type alias and this module has no unsafe code.

use mapcore::{Error, Growable, JitMap};

use crate::error::OsError;
use crate::flip_host::LibcHost;

/// A [`JitMap`] over [`LibcHost`] with [`Growable`] tables: real `mmap`ed memory, no fixed
/// limit on slabs, live regions or their segments (the per-request limits
/// [`MAX_SEGMENTS`](mapcore::MAX_SEGMENTS) and [`MAX_ACTION_PAIRS`](mapcore::MAX_ACTION_PAIRS)
/// still apply), `Send + Sync`, and dropping it releases everything: pending dealloc actions
/// run, newest first, then every slab is unmapped.
///
/// # Examples
///
/// ```
/// use mapcore_std::{LibcHost, Prot, Segment, InitRequest, StdJitMap};
///
/// let map = StdJitMap::new(LibcHost::new());
/// let page = map.page_size();
/// let base = map.reserve(4 * page)?;
/// let data = [Segment::new(Prot::READ, base, 5, b"hello")];
/// let key = map.initialize(&InitRequest::new(&data, &[]))?;
/// assert_eq!(key, base);
/// map.deinitialize(key)?;
/// drop(map); // unmaps the slab
/// # Ok::<(), mapcore_std::StdError>(())
/// ```
pub type StdJitMap = JitMap<LibcHost, Growable>;

/// The error of every [`StdJitMap`] operation: a map [`Error`] whose host errors are
/// [`OsError`]s.
pub type StdError = Error<OsError>;

/// The std map can be shared between threads and moved to another.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<StdJitMap>();
};
