//! Decoded sequences that stay in the buffer: no copy, no heap.

use core::fmt;
use core::iter::FusedIterator;
use core::marker::PhantomData;
use core::slice::ChunksExact;

use super::decode::Decode;
use super::reader::Reader;

/// A validated `Sequence<T>` still in its buffer; iterating it decodes the elements in order.
///
/// Every element was decoded once when the sequence was read, so iteration cannot fail: it
/// yields exactly [`len`](Self::len) elements.
pub struct Seq<'a, T> {
    reader: Reader<'a>,
    remaining: usize,
    // The sequence yields T but owns none.
    elem: PhantomData<fn() -> T>,
}

impl<'a, T> Seq<'a, T> {
    /// `reader` is at the first of `count` elements that have been validated.
    pub(super) const fn new(reader: Reader<'a>, count: usize) -> Self {
        Self {
            reader,
            remaining: count,
            elem: PhantomData,
        }
    }

    /// How many elements are left.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.remaining
    }

    /// Whether no element is left.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.remaining == 0
    }
}

impl<T> Clone for Seq<'_, T> {
    fn clone(&self) -> Self {
        Self {
            reader: self.reader.clone(),
            remaining: self.remaining,
            elem: PhantomData,
        }
    }
}

impl<'a, T: Decode<'a>> Iterator for Seq<'a, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.remaining = self.remaining.checked_sub(1)?;
        let item = T::decode(&mut self.reader).ok();
        if item.is_none() {
            // Unreachable for a deterministic `Decode`; stop rather than yield garbage.
            self.remaining = 0;
        }
        item
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<'a, T: Decode<'a>> ExactSizeIterator for Seq<'a, T> {}

impl<'a, T: Decode<'a>> FusedIterator for Seq<'a, T> {}

impl<'a, T: Decode<'a> + fmt::Debug> fmt::Debug for Seq<'a, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}

/// A validated `Sequence<ExecutorAddr>` still in its buffer; every address fits `usize`.
///
/// Addresses have a fixed size, so the sequence can be walked from either end (batch calls
/// are processed back to front).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AddrSeq<'a> {
    // A multiple of 8 bytes, each group a little-endian u64 that fits usize.
    bytes: &'a [u8],
}

impl<'a> AddrSeq<'a> {
    /// `bytes` holds validated addresses.
    pub(super) const fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// How many addresses.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.bytes.len() / 8
    }

    /// Whether there is no address.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The addresses in order.
    #[must_use]
    pub fn iter(&self) -> AddrIter<'a> {
        AddrIter {
            chunks: self.bytes.chunks_exact(8),
        }
    }
}

impl<'a> IntoIterator for AddrSeq<'a> {
    type Item = usize;
    type IntoIter = AddrIter<'a>;

    fn into_iter(self) -> AddrIter<'a> {
        self.iter()
    }
}

impl fmt::Debug for AddrSeq<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter().map(Hex)).finish()
    }
}

struct Hex(usize);

impl fmt::Debug for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

fn to_usize(chunk: &[u8]) -> Option<usize> {
    let bytes = <[u8; 8]>::try_from(chunk).ok()?;
    usize::try_from(u64::from_le_bytes(bytes)).ok()
}

/// Iterator over an [`AddrSeq`], from either end.
#[derive(Debug, Clone)]
pub struct AddrIter<'a> {
    chunks: ChunksExact<'a, u8>,
}

impl Iterator for AddrIter<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        self.chunks.next().and_then(to_usize)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.chunks.size_hint()
    }
}

impl DoubleEndedIterator for AddrIter<'_> {
    fn next_back(&mut self) -> Option<usize> {
        self.chunks.next_back().and_then(to_usize)
    }
}

impl ExactSizeIterator for AddrIter<'_> {}

impl FusedIterator for AddrIter<'_> {}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::format;
    use std::vec::Vec;

    use super::super::decode::from_bytes;
    use super::super::error::DecodeError;
    use super::*;

    fn seq_bytes(items: &[u64]) -> Vec<u8> {
        let mut bytes = Vec::from((items.len() as u64).to_le_bytes());
        for item in items {
            bytes.extend_from_slice(&item.to_le_bytes());
        }
        bytes
    }

    #[test]
    fn addr_seq_iterates_both_ways() {
        let bytes = seq_bytes(&[0x1000, 0x2000, 0x3000]);
        let addrs = from_bytes::<AddrSeq<'_>>(&bytes).unwrap();
        assert_eq!(addrs.len(), 3);
        assert_eq!(addrs.iter().collect::<Vec<_>>(), [0x1000, 0x2000, 0x3000]);
        assert_eq!(
            addrs.iter().rev().collect::<Vec<_>>(),
            [0x3000, 0x2000, 0x1000]
        );
        assert_eq!(addrs.iter().len(), 3);
        assert_eq!(format!("{addrs:?}"), "[0x1000, 0x2000, 0x3000]");
    }

    #[test]
    fn empty_addr_seq() {
        let bytes = seq_bytes(&[]);
        let addrs = from_bytes::<AddrSeq<'_>>(&bytes).unwrap();
        assert!(addrs.is_empty());
        assert_eq!(addrs.iter().next(), None);
    }

    #[test]
    fn seq_of_tuples_decodes_lazily_after_validation() {
        let mut bytes = Vec::from(2u64.to_le_bytes());
        for (group, addr) in [(1u8, 0x10u64), (5, 0x20)] {
            bytes.push(group);
            bytes.extend_from_slice(&addr.to_le_bytes());
        }
        let seq = from_bytes::<Seq<'_, (u8, u64)>>(&bytes).unwrap();
        assert_eq!(seq.len(), 2);
        assert_eq!(format!("{seq:?}"), "[(1, 16), (5, 32)]");
        assert_eq!(seq.collect::<Vec<_>>(), [(1, 0x10), (5, 0x20)]);

        // A bad element anywhere rejects the whole sequence up front.
        bytes.truncate(bytes.len() - 1);
        assert_eq!(
            from_bytes::<Seq<'_, (u8, u64)>>(&bytes).err(),
            Some(DecodeError::CountTooLarge { offset: 0 })
        );
        let mut bools = Vec::from(2u64.to_le_bytes());
        bools.extend_from_slice(&[1, 2]);
        assert_eq!(
            from_bytes::<Seq<'_, bool>>(&bools).err(),
            Some(DecodeError::InvalidBool { offset: 9 })
        );
    }

    #[test]
    fn nested_sequences() {
        // Seq<Seq<u8>> = [[1, 2], []]
        let mut bytes = Vec::from(2u64.to_le_bytes());
        bytes.extend_from_slice(&2u64.to_le_bytes());
        bytes.extend_from_slice(&[1, 2]);
        bytes.extend_from_slice(&0u64.to_le_bytes());
        let outer = from_bytes::<Seq<'_, Seq<'_, u8>>>(&bytes).unwrap();
        let inner: Vec<Vec<u8>> = outer.map(Iterator::collect).collect();
        assert_eq!(inner, [Vec::from([1, 2]), Vec::new()]);
    }
}
