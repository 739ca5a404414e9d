//! The one-byte allocation group of a wire segment.
//!
//! Bit-identical to LLVM's `RemoteAllocGroup` and orc-rt's `AllocGroup`: read = 1, write = 2,
//! exec = 4, finalize lifetime = 8; no other bit may be set.

use mapcore::{AllocGroup, Lifetime, Prot};

/// The finalize-lifetime bit; the bits below it are the protection.
const FINALIZE: u8 = 8;

/// Decodes a group byte; `None` if any bit above the finalize bit is set.
pub(super) const fn decode_group(byte: u8) -> Option<AllocGroup> {
    if byte & !(FINALIZE | 7) != 0 {
        return None;
    }
    let Some(prot) = Prot::from_bits(byte & 7) else {
        return None;
    };
    let lifetime = if byte & FINALIZE != 0 {
        Lifetime::Finalize
    } else {
        Lifetime::Standard
    };
    Some(AllocGroup::with_lifetime(prot, lifetime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bit_has_its_meaning() {
        for byte in 0u8..16 {
            let group = decode_group(byte).unwrap();
            assert_eq!(group.prot.contains(Prot::READ), byte & 1 != 0);
            assert_eq!(group.prot.contains(Prot::WRITE), byte & 2 != 0);
            assert_eq!(group.prot.contains(Prot::EXEC), byte & 4 != 0);
            assert_eq!(group.prot.bits(), byte & 7);
            assert_eq!(group.lifetime == Lifetime::Finalize, byte & 8 != 0);
        }
        assert_eq!(decode_group(0x05), Some(AllocGroup::new(Prot::READ_EXEC)));
        assert_eq!(
            decode_group(0x0b),
            Some(AllocGroup::with_lifetime(
                Prot::READ_WRITE,
                Lifetime::Finalize
            ))
        );
    }

    #[test]
    fn bits_above_the_finalize_bit_are_rejected() {
        for byte in 16u8..=255 {
            assert_eq!(decode_group(byte), None, "byte {byte:#x} must be rejected");
        }
    }

    #[test]
    fn wire_order_is_the_core_order() {
        // orc-rt orders groups by their byte; mapcore orders them the same way.
        for a in 0u8..16 {
            for b in 0u8..16 {
                assert_eq!(decode_group(a).cmp(&decode_group(b)), a.cmp(&b));
            }
        }
    }
}
