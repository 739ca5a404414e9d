//! The C ABI of mapcore: reserve, initialize, deinitialize, release and the batch forms as C
//! functions, over the built-in Linux host or a host table of C function pointers; errors as
//! status codes with details and a message.
//!
//! The header is `include/mapcore.h`, generated from this crate by cbindgen and checked in;
//! build the static library with `cargo build --release -p mapcore-capi` and link
//! `target/release/libmapcore_capi.a` with `-lpthread -ldl -lm`. `examples/quickstart.c`
//! shows a whole round, and the README's section for C and C++ runtimes the link line.
//!
//! | module | what it holds |
//! |---|---|
//! | `map` | the `mapcore_map` handle, its constructors and operations |
//! | `request` | segments and action pairs, turned into a mapcore request |
//! | `host` | `mapcore_host`, the table of C functions, and the `Host` over it |
//! | `status` | `mapcore_status`, `mapcore_error` and the messages |
//!
//! The items are named as in C (`mapcore_map_reserve`, `MAPCORE_OK`); Rust programs use
//! `mapcore` or `mapcore-std` directly.
#![expect(
    non_camel_case_types,
    reason = "the items carry their C names, which the header shows as they are"
)]

mod host;
mod map;
mod request;
mod status;

pub use crate::host::{
    mapcore_host, MAPCORE_CAP_DISCARD, MAPCORE_CAP_REUSE_EXECUTABLE,
    MAPCORE_CAP_WRITES_THROUGH_ALIAS,
};
pub use crate::map::{
    mapcore_config, mapcore_config_default, mapcore_map, mapcore_map_deinitialize,
    mapcore_map_deinitialize_multiple, mapcore_map_free, mapcore_map_initialize,
    mapcore_map_new_dual, mapcore_map_new_host, mapcore_map_new_libc, mapcore_map_page_size,
    mapcore_map_region_count, mapcore_map_release, mapcore_map_release_multiple,
    mapcore_map_reserve, mapcore_map_shutdown, mapcore_map_slab_count,
};
pub use crate::request::{
    mapcore_action, mapcore_action_fn, mapcore_action_pair, mapcore_segment, MAPCORE_GROUP_EXEC,
    MAPCORE_GROUP_FINALIZE, MAPCORE_GROUP_READ, MAPCORE_GROUP_WRITE, MAPCORE_MAX_ACTION_ARGS,
    MAPCORE_MAX_ACTION_PAIRS, MAPCORE_MAX_SEGMENTS,
};
pub use crate::status::{
    mapcore_error, mapcore_host_op, mapcore_limit, mapcore_status, mapcore_status_name,
    MAPCORE_ERROR_MESSAGE_LEN, MAPCORE_NO_INDEX,
};
