//! The `Decode` trait: how a Rust type is read from SPS, and whole-buffer decoding.

use super::error::DecodeError;
use super::reader::Reader;
use super::seq::{AddrSeq, Seq};

/// A type that can be read from an SPS buffer, borrowing from it for `'a`.
///
/// Implemented for the primitives, `usize` (an address or size that must fit), `&[u8]`
/// (`Sequence<char>`), `&str` (`String`), [`Seq`], [`AddrSeq`], `Option<T>` (`Optional<T>`) and
/// tuples of up to six fields.
pub trait Decode<'a>: Sized {
    /// The fewest bytes any encoding of `Self` takes; it must be at least 1. A sequence count
    /// is checked against it before any element is read.
    const MIN_LEN: usize;

    /// Reads one value.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] if the bytes are not a valid encoding of `Self`.
    fn decode(reader: &mut Reader<'a>) -> Result<Self, DecodeError>;
}

/// Decodes a whole buffer as one `T`, the way an argument or reply buffer is read.
///
/// # Errors
///
/// Whatever decoding `T` reports, and [`DecodeError::TrailingBytes`] if bytes follow the value.
pub fn from_bytes<'a, T: Decode<'a>>(bytes: &'a [u8]) -> Result<T, DecodeError> {
    let mut reader = Reader::new(bytes);
    let value = T::decode(&mut reader)?;
    reader.finish()?;
    Ok(value)
}

macro_rules! primitive {
    ($($ty:ty => $method:ident, $len:expr;)*) => {$(
        impl Decode<'_> for $ty {
            const MIN_LEN: usize = $len;
            fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
                reader.$method()
            }
        }
    )*};
}

primitive! {
    u8 => u8, 1;
    i8 => i8, 1;
    bool => bool, 1;
    u16 => u16, 2;
    i16 => i16, 2;
    u32 => u32, 4;
    i32 => i32, 4;
    u64 => u64, 8;
    i64 => i64, 8;
    usize => usize, 8;
}

impl<'a> Decode<'a> for &'a [u8] {
    const MIN_LEN: usize = 8;
    fn decode(reader: &mut Reader<'a>) -> Result<Self, DecodeError> {
        reader.char_seq()
    }
}

impl<'a> Decode<'a> for &'a str {
    const MIN_LEN: usize = 8;
    fn decode(reader: &mut Reader<'a>) -> Result<Self, DecodeError> {
        reader.string()
    }
}

impl<'a, T: Decode<'a>> Decode<'a> for Seq<'a, T> {
    const MIN_LEN: usize = 8;
    fn decode(reader: &mut Reader<'a>) -> Result<Self, DecodeError> {
        reader.seq()
    }
}

impl<'a> Decode<'a> for AddrSeq<'a> {
    const MIN_LEN: usize = 8;
    fn decode(reader: &mut Reader<'a>) -> Result<Self, DecodeError> {
        reader.addr_seq()
    }
}

impl<'a, T: Decode<'a>> Decode<'a> for Option<T> {
    const MIN_LEN: usize = 1;
    fn decode(reader: &mut Reader<'a>) -> Result<Self, DecodeError> {
        reader.optional()
    }
}

macro_rules! tuple {
    ($($name:ident)+) => {
        impl<'a, $($name: Decode<'a>),+> Decode<'a> for ($($name,)+) {
            const MIN_LEN: usize = 0usize $(.saturating_add($name::MIN_LEN))+;
            fn decode(reader: &mut Reader<'a>) -> Result<Self, DecodeError> {
                Ok(($($name::decode(reader)?,)+))
            }
        }
    };
}

tuple!(A);
tuple!(A B);
tuple!(A B C);
tuple!(A B C D);
tuple!(A B C D E);
tuple!(A B C D E F);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuples_read_fields_in_order() {
        let bytes = [
            5, // u8
            0x10, 0, 0, 0, 0, 0, 0, 0, // u64
            2, 0, 0, 0, 0, 0, 0, 0, b'h', b'i', // String
            1, 0x2a, 0, 0, 0, // Optional<i32>
        ];
        let value = from_bytes::<(u8, u64, &str, Option<i32>)>(&bytes);
        assert_eq!(value, Ok((5, 0x10, "hi", Some(42))));
        assert_eq!(<(u8, u64, &str, Option<i32>)>::MIN_LEN, 1 + 8 + 8 + 1);
    }

    #[test]
    fn from_bytes_is_strict_about_trailing_bytes() {
        assert_eq!(
            from_bytes::<u8>(&[1, 2]),
            Err(DecodeError::TrailingBytes { offset: 1 })
        );
        assert_eq!(
            from_bytes::<u16>(&[1]),
            Err(DecodeError::Truncated { offset: 0 })
        );
        assert_eq!(from_bytes::<(u8,)>(&[9]), Ok((9,)));
    }
}
