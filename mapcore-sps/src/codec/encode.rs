//! The `Encode` trait: how a Rust value is written as SPS.

use super::error::BufferTooSmall;
use super::writer::Writer;

/// A value that can be written as SPS.
///
/// Implemented for the primitives, `usize` (as u64), `str` (`String`), `[T]` (`Sequence<T>`;
/// `[u8]` is a `Sequence<char>`), `Option<T>` (`Optional<T>`), references, and tuples of up to
/// six fields. `Expected` and `Error` have their own writer methods, because a Rust `Result`
/// could mean either.
pub trait Encode {
    /// Appends the encoding of `self`.
    ///
    /// # Errors
    ///
    /// [`BufferTooSmall`]; what was appended is unspecified unless the call goes through
    /// [`Writer::write`], which rewinds.
    fn encode(&self, writer: &mut Writer<'_>) -> Result<(), BufferTooSmall>;
}

macro_rules! primitive {
    ($($ty:ty => $method:ident;)*) => {$(
        impl Encode for $ty {
            fn encode(&self, writer: &mut Writer<'_>) -> Result<(), BufferTooSmall> {
                writer.$method(*self)
            }
        }
    )*};
}

primitive! {
    u8 => u8;
    i8 => i8;
    bool => bool;
    u16 => u16;
    i16 => i16;
    u32 => u32;
    i32 => i32;
    u64 => u64;
    i64 => i64;
    usize => usize;
}

impl Encode for str {
    fn encode(&self, writer: &mut Writer<'_>) -> Result<(), BufferTooSmall> {
        writer.string(self)
    }
}

impl<T: Encode> Encode for [T] {
    fn encode(&self, writer: &mut Writer<'_>) -> Result<(), BufferTooSmall> {
        writer.count(self.len())?;
        self.iter().try_for_each(|item| item.encode(writer))
    }
}

impl<T: Encode + ?Sized> Encode for &T {
    fn encode(&self, writer: &mut Writer<'_>) -> Result<(), BufferTooSmall> {
        (**self).encode(writer)
    }
}

impl<T: Encode> Encode for Option<T> {
    fn encode(&self, writer: &mut Writer<'_>) -> Result<(), BufferTooSmall> {
        writer.bool(self.is_some())?;
        self.as_ref().map_or(Ok(()), |value| value.encode(writer))
    }
}

macro_rules! tuple {
    ($($name:ident $index:tt)+) => {
        impl<$($name: Encode),+> Encode for ($($name,)+) {
            fn encode(&self, writer: &mut Writer<'_>) -> Result<(), BufferTooSmall> {
                $(self.$index.encode(writer)?;)+
                Ok(())
            }
        }
    };
}

tuple!(A 0);
tuple!(A 0 B 1);
tuple!(A 0 B 1 C 2);
tuple!(A 0 B 1 C 2 D 3);
tuple!(A 0 B 1 C 2 D 3 E 4);
tuple!(A 0 B 1 C 2 D 3 E 4 F 5);

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::String;
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::super::decode::{from_bytes, Decode};
    use super::super::seq::Seq;
    use super::*;

    /// Encodes `value` at the start of `out` and returns the number of bytes written.
    fn to_bytes<T: Encode + ?Sized>(out: &mut [u8], value: &T) -> Result<usize, BufferTooSmall> {
        let mut writer = Writer::new(out);
        writer.write(value)?;
        Ok(writer.finish())
    }

    #[test]
    fn seq_of_u64_golden() {
        let mut buf = [0u8; 64];
        let n = to_bytes(&mut buf, &[0x1000u64, 0x2000][..]).unwrap();
        let mut want = Vec::from(2u64.to_le_bytes());
        want.extend_from_slice(&0x1000u64.to_le_bytes());
        want.extend_from_slice(&0x2000u64.to_le_bytes());
        assert_eq!(&buf[..n], want);
    }

    #[test]
    fn byte_slices_encode_as_char_sequences() {
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        let n = to_bytes(&mut a, &b"xyz"[..]).unwrap();
        let m = to_bytes(&mut b, "xyz").unwrap();
        assert_eq!((n, &a[..n]), (m, &b[..m]));
        assert_eq!(&a[..n], b"\x03\0\0\0\0\0\0\0xyz");
    }

    #[test]
    fn setup_message_payload_shape() {
        // (String triple, u64 page size, Seq<(String, Seq<char>)> map, Seq<(String, Addr)>)
        let empty: &[(&str, &[u8])] = &[];
        let symbols: &[(&str, u64)] = &[("a", 0x10)];
        let value = ("x86_64-pc-linux-gnu", 0x1000u64, empty, symbols);
        let mut buf = [0u8; 128];
        let n = to_bytes(&mut buf, &value).unwrap();
        assert_eq!(n, 8 + 19 + 8 + 8 + 8 + (8 + 1 + 8));
        let decoded =
            from_bytes::<(&str, u64, Seq<'_, (&str, &[u8])>, Seq<'_, (&str, u64)>)>(&buf[..n])
                .unwrap();
        assert_eq!(
            (decoded.0, decoded.1, decoded.2.len()),
            ("x86_64-pc-linux-gnu", 0x1000, 0)
        );
        assert_eq!(decoded.3.collect::<Vec<_>>(), [("a", 0x10)]);
    }

    #[test]
    fn writes_that_do_not_fit_keep_nothing() {
        let mut buf = [0u8; 20];
        let mut w = Writer::new(&mut buf);
        assert_eq!(w.write(&[1u64, 2, 3][..]), Err(BufferTooSmall));
        assert!(w.is_empty());
        assert_eq!(to_bytes(&mut [0u8; 8], &(1u8, 2u64)), Err(BufferTooSmall));
    }

    fn round_trip<T>(value: &T)
    where
        T: Encode + for<'a> Decode<'a> + PartialEq + core::fmt::Debug,
    {
        let mut buf = [0u8; 64];
        let n = to_bytes(&mut buf, value).unwrap();
        assert_eq!(from_bytes::<T>(&buf[..n]).as_ref(), Ok(value));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        #[cfg_attr(miri, ignore)] // proptest persists failures through getcwd
        fn primitives_round_trip(
            a in any::<u8>(), b in any::<bool>(), c in any::<u16>(), d in any::<i32>(),
            e in any::<u64>(), f in any::<i64>(), g in any::<Option<u32>>(), h in any::<i8>(),
        ) {
            round_trip(&(a, b, c, d, e, f));
            round_trip(&(g, h, any_usize(e)));
        }

        #[test]
        #[cfg_attr(miri, ignore)] // proptest persists failures through getcwd
        fn strings_and_sequences_round_trip(
            chars in proptest::collection::vec(any::<char>(), 0..40),
            items in proptest::collection::vec((any::<u8>(), any::<u64>()), 0..40),
            opt in proptest::collection::vec(any::<u8>(), 0..12),
        ) {
            let text: String = chars.into_iter().collect();
            let optional = Some(opt.as_slice()).filter(|o| !o.is_empty());
            let value = (text.as_str(), items.as_slice(), optional);
            let mut buf = std::vec![0u8; 1024];
            let n = to_bytes(&mut buf, &value).unwrap();
            let (s, seq, o) =
                from_bytes::<(&str, Seq<'_, (u8, u64)>, Option<&[u8]>)>(&buf[..n]).unwrap();
            prop_assert_eq!(s, text.as_str());
            prop_assert_eq!(seq.collect::<Vec<_>>(), items.as_slice());
            prop_assert_eq!(o, optional);
            // Every shorter buffer fails and every proper prefix is undecodable.
            for cut in 0..n {
                prop_assert_eq!(to_bytes(&mut buf[..cut].to_vec(), &value), Err(BufferTooSmall));
                prop_assert!(
                    from_bytes::<(&str, Seq<'_, (u8, u64)>, Option<&[u8]>)>(&buf[..cut]).is_err()
                );
            }
        }
    }

    fn any_usize(v: u64) -> usize {
        usize::try_from(v).unwrap_or(usize::MAX)
    }
}
