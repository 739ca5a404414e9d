//! The system page size, read once.

use core::sync::atomic::{AtomicUsize, Ordering};

/// The page size once read; 0 until then.
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);

/// `sysconf(_SC_PAGESIZE)`: the system page size in bytes (4 KiB on x86_64; 4, 16 or 64 KiB
/// on aarch64), read once per process and cached.
///
/// # Panics
///
/// If `sysconf` fails or reports a size that is not a non-zero power of two, which no
/// supported system does.
#[doc(alias = "sysconf")]
#[doc(alias = "_SC_PAGESIZE")]
#[must_use]
pub fn page_size() -> usize {
    match PAGE_SIZE.load(Ordering::Relaxed) {
        0 => {
            let size = crate::sys::sysconf_page_size()
                .unwrap_or_else(|error| panic!("sysconf(_SC_PAGESIZE) failed: {error}"));
            assert!(
                size.is_power_of_two(),
                "page size {size} is not a power of two"
            );
            // Several threads may race here; they all store the same value.
            PAGE_SIZE.store(size, Ordering::Relaxed);
            size
        }
        size => size,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn page_size_is_a_cached_power_of_two() {
        let size = super::page_size();
        assert!(size.is_power_of_two() && size >= 4096, "{size}");
        assert_eq!(super::page_size(), size);
        assert_eq!(
            super::PAGE_SIZE.load(core::sync::atomic::Ordering::Relaxed),
            size
        );
    }
}
