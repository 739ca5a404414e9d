//! The SPS writer: appends encodings to a caller-supplied buffer.

use core::fmt;

use super::encode::Encode;
use super::error::BufferTooSmall;

/// A cursor that appends SPS encodings to a caller's buffer, never allocating.
///
/// Every write is all or nothing: when the buffer is too small, [`BufferTooSmall`] is returned
/// and the position is where it was before the call, so a caller can retry with something
/// shorter (say, a shorter error message).
#[derive(Debug)]
pub struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    /// A writer at the start of `buf`.
    #[must_use]
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// How many bytes have been written.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.pos
    }

    /// Whether nothing has been written.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.pos == 0
    }

    /// How many bytes are still free.
    #[must_use]
    pub const fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// The bytes written so far.
    #[must_use]
    pub fn written(&self) -> &[u8] {
        self.buf.get(..self.pos).unwrap_or_default()
    }

    /// Ends writing and returns how many bytes were written.
    #[must_use]
    pub const fn finish(self) -> usize {
        self.pos
    }

    /// Runs `f`, rewinding to the current position if it fails: makes composite writes atomic.
    pub(super) fn atomic(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<(), BufferTooSmall>,
    ) -> Result<(), BufferTooSmall> {
        let start = self.pos;
        f(self).inspect_err(|_| self.pos = start)
    }

    /// Writes any [`Encode`] value: a primitive, a string, a slice (as a sequence), a tuple, an
    /// option.
    ///
    /// # Errors
    ///
    /// [`BufferTooSmall`]; nothing of `value` is kept.
    pub fn write<T: Encode + ?Sized>(&mut self, value: &T) -> Result<(), BufferTooSmall> {
        self.atomic(|w| value.encode(w))
    }

    /// Appends raw bytes (no count prefix).
    ///
    /// # Errors
    ///
    /// [`BufferTooSmall`]; nothing is written.
    pub fn bytes(&mut self, bytes: &[u8]) -> Result<(), BufferTooSmall> {
        let end = self.pos.checked_add(bytes.len()).ok_or(BufferTooSmall)?;
        let dst = self.buf.get_mut(self.pos..end).ok_or(BufferTooSmall)?;
        dst.copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }

    /// Writes a `uint8_t` or `char`.
    ///
    /// # Errors
    ///
    /// [`BufferTooSmall`]; nothing is written.
    pub fn u8(&mut self, value: u8) -> Result<(), BufferTooSmall> {
        self.bytes(&[value])
    }

    /// Writes an `int8_t`.
    ///
    /// # Errors
    ///
    /// [`BufferTooSmall`]; nothing is written.
    pub fn i8(&mut self, value: i8) -> Result<(), BufferTooSmall> {
        self.bytes(&value.to_le_bytes())
    }

    /// Writes a `bool` as the byte 0 or 1.
    ///
    /// # Errors
    ///
    /// [`BufferTooSmall`]; nothing is written.
    pub fn bool(&mut self, value: bool) -> Result<(), BufferTooSmall> {
        self.u8(u8::from(value))
    }

    /// Writes a little-endian `uint16_t`.
    ///
    /// # Errors
    ///
    /// [`BufferTooSmall`]; nothing is written.
    pub fn u16(&mut self, value: u16) -> Result<(), BufferTooSmall> {
        self.bytes(&value.to_le_bytes())
    }

    /// Writes a little-endian `int16_t`.
    ///
    /// # Errors
    ///
    /// [`BufferTooSmall`]; nothing is written.
    pub fn i16(&mut self, value: i16) -> Result<(), BufferTooSmall> {
        self.bytes(&value.to_le_bytes())
    }

    /// Writes a little-endian `uint32_t`.
    ///
    /// # Errors
    ///
    /// [`BufferTooSmall`]; nothing is written.
    pub fn u32(&mut self, value: u32) -> Result<(), BufferTooSmall> {
        self.bytes(&value.to_le_bytes())
    }

    /// Writes a little-endian `int32_t`.
    ///
    /// # Errors
    ///
    /// [`BufferTooSmall`]; nothing is written.
    pub fn i32(&mut self, value: i32) -> Result<(), BufferTooSmall> {
        self.bytes(&value.to_le_bytes())
    }

    /// Writes a little-endian `uint64_t`.
    ///
    /// # Errors
    ///
    /// [`BufferTooSmall`]; nothing is written.
    pub fn u64(&mut self, value: u64) -> Result<(), BufferTooSmall> {
        self.bytes(&value.to_le_bytes())
    }

    /// Writes a little-endian `int64_t`.
    ///
    /// # Errors
    ///
    /// [`BufferTooSmall`]; nothing is written.
    pub fn i64(&mut self, value: i64) -> Result<(), BufferTooSmall> {
        self.bytes(&value.to_le_bytes())
    }

    /// Writes an `ExecutorAddr`.
    ///
    /// # Errors
    ///
    /// [`BufferTooSmall`]; nothing is written.
    pub fn addr(&mut self, addr: u64) -> Result<(), BufferTooSmall> {
        self.u64(addr)
    }

    /// Writes a `usize` (an address or size) as the u64 it is on the wire.
    ///
    /// # Errors
    ///
    /// [`BufferTooSmall`]; nothing is written.
    pub fn usize(&mut self, value: usize) -> Result<(), BufferTooSmall> {
        // usize is at most 64 bits on every target Rust supports.
        self.u64(value as u64)
    }

    /// Writes a sequence count; the caller writes the elements after it.
    ///
    /// # Errors
    ///
    /// [`BufferTooSmall`]; nothing is written.
    pub fn count(&mut self, count: usize) -> Result<(), BufferTooSmall> {
        self.usize(count)
    }

    /// Writes a `Sequence<char>` (or `Sequence<uint8_t>`): the count, then the bytes.
    ///
    /// # Errors
    ///
    /// [`BufferTooSmall`]; nothing is written.
    pub fn char_seq(&mut self, bytes: &[u8]) -> Result<(), BufferTooSmall> {
        self.atomic(|w| {
            w.count(bytes.len())?;
            w.bytes(bytes)
        })
    }

    /// Writes an SPS `String`.
    ///
    /// # Errors
    ///
    /// [`BufferTooSmall`]; nothing is written.
    pub fn string(&mut self, s: &str) -> Result<(), BufferTooSmall> {
        self.char_seq(s.as_bytes())
    }

    /// Writes an SPS `String` formatted straight into the buffer (say, an error's `Display`),
    /// with no intermediate buffer. If the `Display` implementation itself fails, the string
    /// holds what it produced until then.
    ///
    /// # Errors
    ///
    /// [`BufferTooSmall`]; nothing is written.
    pub fn string_fmt(&mut self, message: &dyn fmt::Display) -> Result<(), BufferTooSmall> {
        let start = self.pos;
        let text_start = start.checked_add(8).ok_or(BufferTooSmall)?;
        let tail = self.buf.get_mut(text_start..).ok_or(BufferTooSmall)?;
        let mut sink = Sink {
            buf: tail,
            len: 0,
            overflow: false,
        };
        // A `Display` error is the formatter's own business; only an overflow fails the write.
        let _ = fmt::write(&mut sink, format_args!("{message}"));
        if sink.overflow {
            return Err(BufferTooSmall);
        }
        let len = sink.len;
        self.count(len)?;
        self.pos = text_start.checked_add(len).ok_or(BufferTooSmall)?;
        Ok(())
    }
}

/// `fmt::Write` into a byte slice, remembering whether anything did not fit.
struct Sink<'b> {
    buf: &'b mut [u8],
    len: usize,
    overflow: bool,
}

impl fmt::Write for Sink<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len());
        match end.and_then(|end| Some((end, self.buf.get_mut(self.len..end)?))) {
            Some((end, dst)) => {
                dst.copy_from_slice(s.as_bytes());
                self.len = end;
                Ok(())
            }
            None => {
                self.overflow = true;
                Err(fmt::Error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_are_little_endian() {
        let mut buf = [0u8; 32];
        let mut w = Writer::new(&mut buf);
        w.u8(1).unwrap();
        w.bool(true).unwrap();
        w.u16(0x0302).unwrap();
        w.i32(-1).unwrap();
        w.u64(0x0b0a_0908_0706_0504).unwrap();
        w.i64(-2).unwrap();
        w.i8(-1).unwrap();
        w.i16(0x0201).unwrap();
        w.u32(0x0403_0201).unwrap();
        assert_eq!(w.len(), 31);
        assert_eq!(
            w.written(),
            [
                1, 1, 2, 3, 0xff, 0xff, 0xff, 0xff, 4, 5, 6, 7, 8, 9, 10, 11, 0xfe, 0xff, 0xff,
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 1, 2, 3, 4
            ]
        );
    }

    #[test]
    fn a_failing_write_keeps_nothing() {
        let mut buf = [0u8; 12];
        let mut w = Writer::new(&mut buf);
        w.u8(9).unwrap();
        assert_eq!(w.string("four"), Err(BufferTooSmall));
        assert_eq!(w.len(), 1);
        assert_eq!(w.u64(0), Ok(()));
        assert_eq!(w.u32(0), Err(BufferTooSmall));
        assert_eq!(w.bytes(&[1, 2, 3]), Ok(()));
        assert_eq!(w.remaining(), 0);
        assert_eq!(w.finish(), 12);
    }

    #[test]
    fn string_fmt_formats_in_place_and_backpatches_the_count() {
        let mut buf = [0u8; 24];
        let mut w = Writer::new(&mut buf);
        w.string_fmt(&format_args!("bad {}", 0x2a)).unwrap();
        assert_eq!(w.written(), b"\x06\0\0\0\0\0\0\0bad 42");
        let before = w.len();
        assert_eq!(w.string_fmt(&"this one is too long"), Err(BufferTooSmall));
        assert_eq!(w.len(), before);
        assert_eq!(w.string_fmt(&""), Ok(()));
        assert_eq!(w.len(), before + 8);
        assert_eq!(w.string_fmt(&""), Err(BufferTooSmall));
    }

    #[test]
    fn char_seq_writes_count_then_bytes() {
        let mut buf = [0u8; 11];
        let mut w = Writer::new(&mut buf);
        w.char_seq(&[0xff, 0, 1]).unwrap();
        assert_eq!(w.written(), [3, 0, 0, 0, 0, 0, 0, 0, 0xff, 0, 1]);
    }
}
