//! Page arithmetic: aligned addresses and half-open page ranges.
//!
//! Everything here is checked: no function wraps around the address space.

/// A half-open range of whole pages, `[start, end)`, both page-aligned.
///
/// The range never wraps: `start <= end` always holds.
///
/// The default is the empty range at address 0.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PageRange {
    start: usize,
    end: usize,
}

impl PageRange {
    /// Makes a range from aligned bounds, or `None` if a bound is unaligned
    /// (`page_size` must be a power of two) or `end < start`.
    #[must_use]
    pub const fn new(start: usize, end: usize, page_size: usize) -> Option<Self> {
        if start & (page_size - 1) != 0 || end & (page_size - 1) != 0 || end < start {
            return None;
        }
        Some(Self { start, end })
    }

    /// The pages covering `[addr, addr + len)`, or `None` if `addr` is unaligned or the end
    /// overflows once rounded up to a page.
    #[must_use]
    pub fn covering(addr: usize, len: usize, page_size: usize) -> Option<Self> {
        if addr & (page_size - 1) != 0 {
            return None;
        }
        let end = align_up(addr.checked_add(len)?, page_size)?;
        Some(Self { start: addr, end })
    }

    /// First byte of the range.
    #[must_use]
    pub const fn start(&self) -> usize {
        self.start
    }

    /// One past the last byte of the range.
    #[must_use]
    pub const fn end(&self) -> usize {
        self.end
    }

    /// Length in bytes (a multiple of the page size).
    #[must_use]
    pub const fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether the range holds no page.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Whether the two ranges share at least one page (an empty range shares none).
    #[must_use]
    pub const fn overlaps(&self, other: &Self) -> bool {
        !self.is_empty() && !other.is_empty() && self.start < other.end && other.start < self.end
    }

    /// Whether `addr` lies inside the range.
    #[must_use]
    pub const fn contains(&self, addr: usize) -> bool {
        self.start <= addr && addr < self.end
    }

    /// Whether `other` lies entirely inside `self`.
    #[must_use]
    pub const fn encloses(&self, other: &Self) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    /// The union of two ranges that touch or overlap, or `None` if there is a gap between them.
    #[must_use]
    pub fn join(&self, other: &Self) -> Option<Self> {
        if self.end < other.start || other.end < self.start {
            return None;
        }
        Some(Self {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        })
    }
}

impl PageRange {
    /// The smallest range covering both (an empty range adds nothing).
    #[must_use]
    #[inline]
    pub(crate) fn cover(&self, other: &Self) -> Self {
        if self.is_empty() {
            return *other;
        }
        if other.is_empty() {
            return *self;
        }
        Self {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// Rounds `value` up to a multiple of `align` (a power of two), or `None` on overflow.
#[must_use]
pub const fn align_up(value: usize, align: usize) -> Option<usize> {
    match value.checked_add(align - 1) {
        Some(v) => Some(v & !(align - 1)),
        None => None,
    }
}

/// Whether `value` is a multiple of `align` (a power of two).
#[must_use]
pub(crate) const fn is_aligned(value: usize, align: usize) -> bool {
    value & (align - 1) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn covering_rounds_up_and_checks_alignment() {
        assert_eq!(
            PageRange::covering(0x1000, 1, 0x1000),
            PageRange::new(0x1000, 0x2000, 0x1000)
        );
        assert_eq!(
            PageRange::covering(0x1000, 0, 0x1000),
            PageRange::new(0x1000, 0x1000, 0x1000)
        );
        assert_eq!(PageRange::covering(0x1001, 1, 0x1000), None);
        assert_eq!(PageRange::covering(usize::MAX & !0xfff, 1, 0x1000), None);
        assert_eq!(PageRange::covering(0x1000, usize::MAX, 0x1000), None);
    }

    #[test]
    fn new_rejects_reversed_and_unaligned_bounds() {
        assert!(PageRange::new(0x2000, 0x1000, 0x1000).is_none());
        assert!(PageRange::new(0x1000, 0x1800, 0x1000).is_none());
    }

    #[test]
    fn join_needs_contact() {
        let a = PageRange::new(0x1000, 0x2000, 0x1000).unwrap();
        let b = PageRange::new(0x2000, 0x3000, 0x1000).unwrap();
        let c = PageRange::new(0x4000, 0x5000, 0x1000).unwrap();
        assert_eq!(a.join(&b), PageRange::new(0x1000, 0x3000, 0x1000));
        assert_eq!(b.join(&a), PageRange::new(0x1000, 0x3000, 0x1000));
        assert_eq!(a.join(&c), None);
        assert!(!a.overlaps(&b));
    }

    // Miri blocks proptest's failure persistence (it calls getcwd), so these run natively only.
    proptest! {
        #[test]
        #[cfg_attr(miri, ignore)]
        fn align_up_is_smallest_multiple(v in any::<usize>(), shift in 0u32..20) {
            let align = 1usize << shift;
            match align_up(v, align) {
                Some(r) => {
                    prop_assert!(r >= v && r - v < align && is_aligned(r, align));
                }
                None => prop_assert!(v > usize::MAX - (align - 1)),
            }
        }

        #[test]
        #[cfg_attr(miri, ignore)]
        fn overlap_is_symmetric(a in 0usize..64, b in 0usize..64, c in 0usize..64, d in 0usize..64) {
            let p = 0x1000;
            let r1 = PageRange::new(a.min(b) * p, a.max(b) * p, p).unwrap();
            let r2 = PageRange::new(c.min(d) * p, c.max(d) * p, p).unwrap();
            prop_assert_eq!(r1.overlaps(&r2), r2.overlaps(&r1));
            let pagewise = (r1.start()..r1.end()).step_by(p).any(|x| r2.contains(x));
            prop_assert_eq!(r1.overlaps(&r2), pagewise);
        }
    }
}
