//! Page protections, segment lifetimes and the allocation group that pairs them.

use core::fmt;
use core::ops::{BitAnd, BitOr};

/// Page protection flags: any combination of read, write and execute.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Prot(u8);

impl Prot {
    /// No access.
    pub const NONE: Self = Self(0);
    /// Readable.
    pub const READ: Self = Self(1);
    /// Writable.
    pub const WRITE: Self = Self(2);
    /// Executable.
    pub const EXEC: Self = Self(4);
    /// Read and write: the protection of free pages.
    pub const READ_WRITE: Self = Self(3);
    /// Read and execute: the usual protection of code.
    pub const READ_EXEC: Self = Self(5);
    /// Every protection bit.
    pub const ALL: Self = Self(7);

    /// The flags from their bit encoding (read = 1, write = 2, exec = 4), or `None` if other
    /// bits are set.
    #[must_use]
    pub const fn from_bits(bits: u8) -> Option<Self> {
        if bits & !7 == 0 {
            Some(Self(bits))
        } else {
            None
        }
    }

    /// The bit encoding: read = 1, write = 2, exec = 4.
    #[must_use]
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether every flag of `other` is set in `self`.
    #[must_use]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether both write and execute are set, which W^X forbids.
    #[must_use]
    pub const fn is_write_exec(self) -> bool {
        self.contains(Self(2 | 4))
    }
}

impl BitOr for Prot {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl BitAnd for Prot {
    type Output = Self;
    fn bitand(self, rhs: Self) -> Self {
        Self(self.0 & rhs.0)
    }
}

impl fmt::Debug for Prot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `r-x` style, as in `/proc/self/maps`.
impl fmt::Display for Prot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flag = |bit: Self, c: &'static str| if self.contains(bit) { c } else { "-" };
        write!(
            f,
            "{}{}{}",
            flag(Self::READ, "r"),
            flag(Self::WRITE, "w"),
            flag(Self::EXEC, "x")
        )
    }
}

/// How long a segment's memory lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Lifetime {
    /// Lives until the region is deinitialized.
    #[default]
    Standard,
    /// Lives only while initialize runs its finalize actions; freed before initialize returns.
    Finalize,
}

/// Protection plus lifetime: the allocation group of a segment.
///
/// Groups order by lifetime, then by protection bits, so every Standard group sorts before
/// every Finalize group (the order of orc-rt's `AllocGroup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AllocGroup {
    /// Final page protection.
    pub prot: Prot,
    /// Lifetime of the segment's memory.
    pub lifetime: Lifetime,
}

impl AllocGroup {
    /// A Standard-lifetime group with the given protection.
    #[must_use]
    pub const fn new(prot: Prot) -> Self {
        Self {
            prot,
            lifetime: Lifetime::Standard,
        }
    }

    /// A group with the given protection and lifetime.
    #[must_use]
    pub const fn with_lifetime(prot: Prot, lifetime: Lifetime) -> Self {
        Self { prot, lifetime }
    }
}

impl PartialOrd for AllocGroup {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for AllocGroup {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        (self.lifetime, self.prot).cmp(&(other.lifetime, other.prot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // T33: MemProt basics.
    #[test]
    fn t33_prot_basics() {
        for x in [Prot::READ, Prot::WRITE, Prot::EXEC] {
            assert_eq!(Prot::NONE & x, Prot::NONE);
            assert_eq!(Prot::NONE | x, x);
            assert_eq!(Prot::ALL & x, x);
        }
        assert!(Prot::ALL.is_write_exec());
        assert!(!Prot::READ_EXEC.is_write_exec());
        assert_eq!(Prot::from_bits(8), None);
    }

    // T34: AllocGroup construction.
    #[test]
    fn t34_alloc_group_construction() {
        let d = AllocGroup::default();
        assert_eq!((d.prot, d.lifetime), (Prot::NONE, Lifetime::Standard));
        let rw = AllocGroup::new(Prot::READ_WRITE);
        assert_eq!(
            (rw.prot, rw.lifetime),
            (Prot::READ_WRITE, Lifetime::Standard)
        );
        let f = AllocGroup::with_lifetime(Prot::READ_WRITE, Lifetime::Finalize);
        assert_eq!((f.prot, f.lifetime), (Prot::READ_WRITE, Lifetime::Finalize));
        assert_ne!(rw, f);
        assert_eq!(
            f,
            AllocGroup::with_lifetime(Prot::READ_WRITE, Lifetime::Finalize)
        );
    }

    // T35: ordering (the one-byte wire format is tested with its decoder, in mapcore-sps).
    #[test]
    fn t35_alloc_group_ordering() {
        assert!(AllocGroup::new(Prot::READ) < AllocGroup::new(Prot::WRITE));
        assert!(
            AllocGroup::new(Prot::EXEC) < AllocGroup::with_lifetime(Prot::READ, Lifetime::Finalize)
        );
        assert!(
            AllocGroup::with_lifetime(Prot::NONE, Lifetime::Finalize)
                < AllocGroup::with_lifetime(Prot::READ, Lifetime::Finalize)
        );
        assert!(
            AllocGroup::new(Prot::ALL) < AllocGroup::with_lifetime(Prot::NONE, Lifetime::Finalize)
        );
    }

    #[test]
    fn display_matches_proc_maps() {
        extern crate std;
        use std::string::ToString;
        assert_eq!(Prot::READ_EXEC.to_string(), "r-x");
        assert_eq!(Prot::NONE.to_string(), "---");
        assert_eq!(Prot::ALL.to_string(), "rwx");
    }
}
