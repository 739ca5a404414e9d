//! The zero-copy SPS reader: a bounds-checked cursor over an argument buffer.

use super::decode::Decode;
use super::error::DecodeError;
use super::seq::{AddrSeq, Seq};

/// A cursor over an SPS buffer. Every read is bounds-checked; strings and byte sequences are
/// borrowed from the buffer, never copied.
///
/// Tuples are read field by field in order. After an error the position is unspecified, so the
/// reader should be dropped.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    #[must_use]
    pub const fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// How many bytes have been read.
    #[must_use]
    pub const fn offset(&self) -> usize {
        self.pos
    }

    /// How many bytes are left.
    #[must_use]
    pub const fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Whether every byte has been read.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Checks that the buffer was consumed exactly: call it once the expected shape is complete.
    ///
    /// # Errors
    ///
    /// [`DecodeError::TrailingBytes`] if bytes are left.
    pub const fn finish(&self) -> Result<(), DecodeError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes { offset: self.pos })
        }
    }

    /// Reads a value of any [`Decode`] type: a primitive, a tuple, a sequence, an option.
    ///
    /// # Errors
    ///
    /// Whatever decoding `T` reports.
    pub fn read<T: Decode<'a>>(&mut self) -> Result<T, DecodeError> {
        T::decode(self)
    }

    /// Borrows the next `len` raw bytes (no count prefix).
    ///
    /// # Errors
    ///
    /// [`DecodeError::Truncated`] if fewer than `len` bytes are left.
    pub fn bytes(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        let truncated = DecodeError::Truncated { offset: self.pos };
        let end = self.pos.checked_add(len).ok_or(truncated)?;
        let bytes = self.buf.get(self.pos..end).ok_or(truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let offset = self.pos;
        let bytes = self.bytes(N)?;
        <[u8; N]>::try_from(bytes).map_err(|_| DecodeError::Truncated { offset })
    }

    /// Reads a `uint8_t` or `char`.
    ///
    /// # Errors
    ///
    /// [`DecodeError::Truncated`] at the end of the buffer.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        self.array::<1>().map(u8::from_le_bytes)
    }

    /// Reads an `int8_t`.
    ///
    /// # Errors
    ///
    /// [`DecodeError::Truncated`] at the end of the buffer.
    pub fn i8(&mut self) -> Result<i8, DecodeError> {
        self.array::<1>().map(i8::from_le_bytes)
    }

    /// Reads a `bool`, which must be the byte 0 or 1.
    ///
    /// # Errors
    ///
    /// [`DecodeError::Truncated`] at the end of the buffer, [`DecodeError::InvalidBool`] for
    /// any other byte.
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        let offset = self.pos;
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::InvalidBool { offset }),
        }
    }

    /// Reads a little-endian `uint16_t`.
    ///
    /// # Errors
    ///
    /// [`DecodeError::Truncated`] if fewer than 2 bytes are left.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        self.array().map(u16::from_le_bytes)
    }

    /// Reads a little-endian `int16_t`.
    ///
    /// # Errors
    ///
    /// [`DecodeError::Truncated`] if fewer than 2 bytes are left.
    pub fn i16(&mut self) -> Result<i16, DecodeError> {
        self.array().map(i16::from_le_bytes)
    }

    /// Reads a little-endian `uint32_t`.
    ///
    /// # Errors
    ///
    /// [`DecodeError::Truncated`] if fewer than 4 bytes are left.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        self.array().map(u32::from_le_bytes)
    }

    /// Reads a little-endian `int32_t`.
    ///
    /// # Errors
    ///
    /// [`DecodeError::Truncated`] if fewer than 4 bytes are left.
    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        self.array().map(i32::from_le_bytes)
    }

    /// Reads a little-endian `uint64_t`.
    ///
    /// # Errors
    ///
    /// [`DecodeError::Truncated`] if fewer than 8 bytes are left.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        self.array().map(u64::from_le_bytes)
    }

    /// Reads a little-endian `int64_t`.
    ///
    /// # Errors
    ///
    /// [`DecodeError::Truncated`] if fewer than 8 bytes are left.
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        self.array().map(i64::from_le_bytes)
    }

    /// Reads an `ExecutorAddr` as the u64 it is on the wire (an opaque token such as a wrapper
    /// instance, or a foreign function address).
    ///
    /// # Errors
    ///
    /// [`DecodeError::Truncated`] if fewer than 8 bytes are left.
    pub fn addr(&mut self) -> Result<u64, DecodeError> {
        self.u64()
    }

    /// Reads a u64 address or size that must fit this target's `usize`.
    ///
    /// # Errors
    ///
    /// [`DecodeError::Truncated`] if fewer than 8 bytes are left, [`DecodeError::ValueTooLarge`]
    /// if the value does not fit `usize`.
    pub fn usize(&mut self) -> Result<usize, DecodeError> {
        let offset = self.pos;
        usize::try_from(self.u64()?).map_err(|_| DecodeError::ValueTooLarge { offset })
    }

    /// Reads a sequence count and checks that `count` elements of at least `min_elem_len` bytes
    /// each (a zero counts as one) fit in the remaining bytes, so no loop over a hostile count
    /// runs long.
    ///
    /// # Errors
    ///
    /// [`DecodeError::Truncated`] if fewer than 8 bytes are left, [`DecodeError::CountTooLarge`]
    /// if the count does not fit `usize` or the elements cannot fit.
    pub fn count(&mut self, min_elem_len: usize) -> Result<usize, DecodeError> {
        let offset = self.pos;
        let too_large = DecodeError::CountTooLarge { offset };
        let count = usize::try_from(self.u64()?).map_err(|_| too_large)?;
        let needed = count.checked_mul(min_elem_len.max(1)).ok_or(too_large)?;
        if needed > self.remaining() {
            return Err(too_large);
        }
        Ok(count)
    }

    /// Borrows a `Sequence<char>` (or `Sequence<uint8_t>`) as raw bytes.
    ///
    /// # Errors
    ///
    /// [`DecodeError::Truncated`] or [`DecodeError::CountTooLarge`] if the count or the bytes do
    /// not fit in the buffer.
    pub fn char_seq(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.count(1)?;
        self.bytes(len)
    }

    /// Borrows an SPS `String` as `&str`.
    ///
    /// # Errors
    ///
    /// As [`char_seq`](Self::char_seq), and [`DecodeError::InvalidUtf8`] if the bytes are not
    /// UTF-8.
    pub fn string(&mut self) -> Result<&'a str, DecodeError> {
        let len = self.count(1)?;
        let start = self.pos;
        let bytes = self.bytes(len)?;
        core::str::from_utf8(bytes).map_err(|e| DecodeError::InvalidUtf8 {
            offset: start.saturating_add(e.valid_up_to()),
        })
    }

    /// Reads a `Sequence<T>`: every element is decoded once now, to find the end and reject bad
    /// input, and again lazily when the returned [`Seq`] is iterated.
    ///
    /// # Errors
    ///
    /// As [`count`](Self::count), and whatever decoding an element reports.
    pub fn seq<T: Decode<'a>>(&mut self) -> Result<Seq<'a, T>, DecodeError> {
        let count = self.count(T::MIN_LEN)?;
        let start = self.clone();
        for _ in 0..count {
            T::decode(self)?;
        }
        Ok(Seq::new(start, count))
    }

    /// Reads a `Sequence<ExecutorAddr>` whose every address must fit `usize`.
    ///
    /// # Errors
    ///
    /// As [`count`](Self::count), and [`DecodeError::ValueTooLarge`] for an address that does
    /// not fit `usize`.
    pub fn addr_seq(&mut self) -> Result<AddrSeq<'a>, DecodeError> {
        let count = self.count(8)?;
        let start = self.pos;
        for _ in 0..count {
            self.usize()?;
        }
        let bytes = self.buf.get(start..self.pos).unwrap_or_default();
        Ok(AddrSeq::new(bytes))
    }

    /// Reads an `Optional<T>`: a bool, then `T` if it is true.
    ///
    /// # Errors
    ///
    /// As [`bool`](Self::bool), and whatever decoding `T` reports.
    pub fn optional<T: Decode<'a>>(&mut self) -> Result<Option<T>, DecodeError> {
        if self.bool()? {
            T::decode(self).map(Some)
        } else {
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_little_endian() {
        let bytes = [
            0x01, // u8
            0x02, 0x01, // u16
            0x04, 0x03, 0x02, 0x01, // u32
            0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, // u64
            0xff, 0xff, 0xff, 0xff, // i32 -1
            0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // i64 -2
            0x80, // i8
            0x00, 0x80, // i16
        ];
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u8(), Ok(1));
        assert_eq!(r.u16(), Ok(0x0102));
        assert_eq!(r.u32(), Ok(0x0102_0304));
        assert_eq!(r.u64(), Ok(0x0102_0304_0506_0708));
        assert_eq!(r.i32(), Ok(-1));
        assert_eq!(r.i64(), Ok(-2));
        assert_eq!(r.i8(), Ok(i8::MIN));
        assert_eq!(r.i16(), Ok(i16::MIN));
        assert_eq!(r.finish(), Ok(()));
        assert_eq!(
            r.u8(),
            Err(DecodeError::Truncated {
                offset: bytes.len()
            })
        );
    }

    #[test]
    fn truncated_reads_report_their_start_and_consume_nothing() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u8(), Ok(1));
        assert_eq!(r.u64(), Err(DecodeError::Truncated { offset: 1 }));
        assert_eq!(r.offset(), 1);
        assert_eq!(r.u16(), Ok(0x0302));
        assert!(r.is_empty());
    }

    #[test]
    fn bool_is_strict() {
        let mut r = Reader::new(&[0, 1, 2]);
        assert_eq!(r.bool(), Ok(false));
        assert_eq!(r.bool(), Ok(true));
        assert_eq!(r.bool(), Err(DecodeError::InvalidBool { offset: 2 }));
    }

    #[test]
    fn finish_rejects_trailing_bytes() {
        let mut r = Reader::new(&[0; 9]);
        assert_eq!(r.u64(), Ok(0));
        assert_eq!(r.finish(), Err(DecodeError::TrailingBytes { offset: 8 }));
    }

    #[test]
    fn char_seq_borrows_from_the_buffer() {
        let bytes = [3, 0, 0, 0, 0, 0, 0, 0, b'a', 0xff, b'c'];
        let mut r = Reader::new(&bytes);
        let s = r.char_seq().unwrap();
        assert_eq!(s, b"a\xffc");
        assert!(core::ptr::eq(s.as_ptr(), bytes[8..].as_ptr()));
        assert_eq!(r.string(), Err(DecodeError::Truncated { offset: 11 }));
        let mut r = Reader::new(&bytes);
        assert_eq!(r.string(), Err(DecodeError::InvalidUtf8 { offset: 9 }));
    }

    #[test]
    fn huge_counts_are_rejected_before_any_element_is_read() {
        let mut bytes = [0u8; 24];
        bytes[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            Reader::new(&bytes).char_seq(),
            Err(DecodeError::CountTooLarge { offset: 0 })
        );
        // count * 8 overflows usize on every target.
        let overflowing = (usize::MAX / 8 + 1) as u64;
        bytes[..8].copy_from_slice(&overflowing.to_le_bytes());
        assert_eq!(
            Reader::new(&bytes).count(8),
            Err(DecodeError::CountTooLarge { offset: 0 })
        );
        assert_eq!(
            Reader::new(&bytes).addr_seq().err(),
            Some(DecodeError::CountTooLarge { offset: 0 })
        );
        // 3 addresses need 24 bytes but only 16 follow.
        bytes[..8].copy_from_slice(&3u64.to_le_bytes());
        assert_eq!(
            Reader::new(&bytes).count(8),
            Err(DecodeError::CountTooLarge { offset: 0 })
        );
        assert_eq!(Reader::new(&bytes).count(5), Ok(3));
        // A zero minimum length is treated as one byte per element.
        assert_eq!(Reader::new(&bytes).count(0), Ok(3));
    }

    #[test]
    fn usize_rejects_values_that_do_not_fit() {
        let bytes = u64::MAX.to_le_bytes();
        let fits = usize::try_from(u64::MAX).is_ok();
        assert_eq!(
            Reader::new(&bytes).usize().is_ok(),
            fits,
            "u64::MAX fits usize exactly on 64-bit targets"
        );
        if usize::BITS < 64 {
            assert_eq!(
                Reader::new(&bytes).usize(),
                Err(DecodeError::ValueTooLarge { offset: 0 })
            );
        }
    }

    #[test]
    fn optional_is_a_bool_then_the_value() {
        let bytes = [1, 7, 0, 2];
        let mut r = Reader::new(&bytes);
        assert_eq!(r.optional::<u8>(), Ok(Some(7)));
        assert_eq!(r.optional::<u8>(), Ok(None));
        assert_eq!(
            r.optional::<u8>(),
            Err(DecodeError::InvalidBool { offset: 3 })
        );
    }
}
