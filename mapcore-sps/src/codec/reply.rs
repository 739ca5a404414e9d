//! Reply shapes: SPS `Expected<T>` and `Error`, how a wrapper that can fail answers.
//!
//! A failure is always one of these: an empty reply (C++'s "out-of-band error") does not survive
//! the wire, and the controller then fails with "could not deserialize".

use core::fmt;

use super::decode::Decode;
use super::encode::Encode;
use super::error::{BufferTooSmall, DecodeError};
use super::reader::Reader;
use super::writer::Writer;

impl Writer<'_> {
    /// Writes an SPS `Expected<T>`: `01` then the value, or `00` then the message as a string.
    ///
    /// # Errors
    ///
    /// [`BufferTooSmall`]; nothing is written.
    pub fn expected<T: Encode + ?Sized>(
        &mut self,
        result: Result<&T, &dyn fmt::Display>,
    ) -> Result<(), BufferTooSmall> {
        self.atomic(|w| match result {
            Ok(value) => {
                w.bool(true)?;
                value.encode(w)
            }
            Err(message) => {
                w.bool(false)?;
                w.string_fmt(message)
            }
        })
    }

    /// Writes an SPS `Error`: `00` for success, or `01` then the message as a string.
    ///
    /// # Errors
    ///
    /// [`BufferTooSmall`]; nothing is written.
    pub fn error(&mut self, result: Result<(), &dyn fmt::Display>) -> Result<(), BufferTooSmall> {
        self.atomic(|w| match result {
            Ok(()) => w.bool(false),
            Err(message) => {
                w.bool(true)?;
                w.string_fmt(message)
            }
        })
    }
}

impl<'a> Reader<'a> {
    /// Reads an SPS `Expected<T>`; the error message is returned as raw bytes.
    ///
    /// # Errors
    ///
    /// As [`bool`](Self::bool), and whatever decoding `T` or the message reports.
    pub fn expected<T: Decode<'a>>(&mut self) -> Result<Result<T, &'a [u8]>, DecodeError> {
        if self.bool()? {
            T::decode(self).map(Ok)
        } else {
            self.char_seq().map(Err)
        }
    }

    /// Reads an SPS `Error`; the error message is returned as raw bytes.
    ///
    /// # Errors
    ///
    /// As [`bool`](Self::bool), and whatever decoding the message reports.
    pub fn error(&mut self) -> Result<Result<(), &'a [u8]>, DecodeError> {
        if self.bool()? {
            self.char_seq().map(Err)
        } else {
            Ok(Ok(()))
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    /// `Expected<ExecutorAddr>`, the reply of reserve and initialize, at the start of `out`.
    fn encode_expected_addr(
        out: &mut [u8],
        result: Result<u64, &dyn fmt::Display>,
    ) -> Result<usize, BufferTooSmall> {
        let mut writer = Writer::new(out);
        writer.expected(result.as_ref().map_err(|message| *message))?;
        Ok(writer.finish())
    }

    /// `Error`, the reply of deinitialize and release, at the start of `out`.
    fn encode_error(
        out: &mut [u8],
        result: Result<(), &dyn fmt::Display>,
    ) -> Result<usize, BufferTooSmall> {
        let mut writer = Writer::new(out);
        writer.error(result)?;
        Ok(writer.finish())
    }

    fn golden_string(tag: u8, message: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::from([tag]);
        bytes.extend_from_slice(&(message.len() as u64).to_le_bytes());
        bytes.extend_from_slice(message);
        bytes
    }

    #[test]
    fn expected_addr_success_is_01_then_the_address() {
        let mut buf = [0u8; 9];
        let n = encode_expected_addr(&mut buf, Ok(0x7f1c_b529_1000)).unwrap();
        assert_eq!(
            buf[..n],
            [0x01, 0x00, 0x10, 0x29, 0xb5, 0x1c, 0x7f, 0x00, 0x00]
        );
        assert_eq!(
            Reader::new(&buf).expected::<u64>(),
            Ok(Ok(0x7f1c_b529_1000))
        );
        assert_eq!(
            encode_expected_addr(&mut [0u8; 8], Ok(1)),
            Err(BufferTooSmall)
        );
    }

    #[test]
    fn expected_error_is_00_then_a_string() {
        let mut buf = [0u8; 64];
        let n = encode_expected_addr(&mut buf, Err(&"reserve size is zero")).unwrap();
        assert_eq!(buf[..n], golden_string(0x00, b"reserve size is zero"));
        let mut r = Reader::new(&buf[..n]);
        assert_eq!(r.expected::<u64>(), Ok(Err(&b"reserve size is zero"[..])));
        assert_eq!(r.finish(), Ok(()));
        assert_eq!(
            encode_expected_addr(&mut buf[..20], Err(&"reserve size is zero")),
            Err(BufferTooSmall)
        );
    }

    #[test]
    fn error_success_is_a_single_00() {
        let mut buf = [0xaau8; 4];
        assert_eq!(encode_error(&mut buf, Ok(())), Ok(1));
        assert_eq!(buf[0], 0x00);
        assert_eq!(Reader::new(&buf[..1]).error(), Ok(Ok(())));
        assert_eq!(encode_error(&mut [], Ok(())), Err(BufferTooSmall));
    }

    #[test]
    fn error_failure_is_01_then_a_string() {
        let mut buf = [0u8; 64];
        let n = encode_error(
            &mut buf,
            Err(&format_args!("{:#x} is not a slab base", 0x1000)),
        )
        .unwrap();
        assert_eq!(buf[..n], golden_string(0x01, b"0x1000 is not a slab base"));
        assert_eq!(
            Reader::new(&buf[..n]).error(),
            Ok(Err(&b"0x1000 is not a slab base"[..]))
        );
    }

    #[test]
    fn lli_reads_an_expected_addr_of_zero_as_an_empty_error() {
        // lli's destructor decodes the reserve reply as `Error`: `01` + 8 zero bytes is then
        // "error with an empty message" (protocol doc, section 2.6).
        let reply = [0x01, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(Reader::new(&reply).error(), Ok(Err(&b""[..])));
    }

    #[test]
    fn expected_of_any_encodable_value() {
        let mut buf = [0u8; 64];
        let mut w = Writer::new(&mut buf);
        w.expected(Ok(&[1u64, 2][..])).unwrap();
        let n = w.finish();
        let mut r = Reader::new(&buf[..n]);
        let seq = r
            .expected::<super::super::seq::Seq<'_, u64>>()
            .unwrap()
            .unwrap();
        assert_eq!(seq.collect::<Vec<_>>(), [1, 2]);
    }
}
