//! Compile-time checks: the map is `Send` and `Sync` over the recording host, owned or
//! borrowed, with fixed or growable tables, so it can be shared between threads (and put in a
//! `static`) as the concurrency contract requires.

use mapcore::testing::RecordingHost;
use mapcore::{DefaultStorage, Fixed, Growable, JitMap};

const fn assert_send_sync<T: Send + Sync>() {}

// Checked when the test crate compiles, whether or not any test runs.
const _: () = {
    assert_send_sync::<JitMap<RecordingHost>>();
    assert_send_sync::<JitMap<RecordingHost, Growable>>();
    assert_send_sync::<JitMap<&'static RecordingHost, Growable>>();
    assert_send_sync::<JitMap<&'static RecordingHost, DefaultStorage>>();
    assert_send_sync::<JitMap<&'static RecordingHost, Fixed<1, 1, 1>>>();
};

#[test]
fn map_is_send_and_sync() {
    assert_send_sync::<JitMap<RecordingHost>>();
    assert_send_sync::<JitMap<&'static RecordingHost, Growable>>();
    // And it really crosses threads: a map built here is used and dropped on another thread.
    let map = JitMap::<RecordingHost>::new(RecordingHost::new(4096));
    let base = map.reserve(4096).unwrap();
    let map = std::thread::spawn(move || {
        assert_eq!(map.release(base), Ok(()));
        map
    })
    .join()
    .unwrap();
    assert_eq!(map.slab_count(), 0);
}
