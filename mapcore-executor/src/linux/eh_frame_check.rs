//! The structure of an `.eh_frame` section, checked before libgcc sees it.
//!
//! libgcc trusts the section: at registration it walks every record, follows each FDE's CIE
//! pointer and decodes the FDE's address with the CIE's pointer encoding; an unwind later does
//! the same. A CIE pointer leading outside the section, an encoding libgcc cannot size (it
//! aborts) or an FDE too short for its addresses makes the process crash. So a section is
//! accepted only if it is a sequence of records, each
//!
//! | Record | Layout |
//! |---|---|
//! | CIE | `u32 length`, `u32 0`, `u8 version` (1 or 3), augmentation string (`""` or `z` then `R`, `P`, `L`, `S`, `B`), ULEB code alignment, SLEB data alignment, return register (a byte in version 1, ULEB in 3), with `z`: ULEB length of the augmentation data that follows, all inside the record |
//! | FDE | `u32 length`, `u32` distance back from this field to a CIE of the same section, earlier in it, then the start address and range, in the CIE's encoding, inside the record |
//!
//! ending with a zero length word inside the range or right after it. 64-bit records (length
//! `0xffffffff`) are refused. Call frame instructions are not checked: libgcc interprets them
//! only when unwinding through the code they describe.

use std::collections::BTreeMap;

/// A pointer encoding (`DW_EH_PE_*`) libgcc can size and apply without help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Encoding(u8);

impl Encoding {
    /// `DW_EH_PE_absptr`: the default for FDE addresses.
    const ABSPTR: Self = Self(0);

    /// The encoding byte, if libgcc can decode FDE addresses in it: a fixed-size format (not
    /// ULEB/SLEB, which abort) applied absolutely, PC-, text-, data-relative or aligned (not
    /// function-relative, which aborts), never indirect (a load from wherever it points).
    fn for_addresses(byte: u8) -> Option<Self> {
        let sized = matches!(byte & 0x0f, 0x00 | 0x02 | 0x03 | 0x04 | 0x0a | 0x0b | 0x0c);
        let applied = matches!(byte & 0x70, 0x00 | 0x10 | 0x20 | 0x30 | 0x50);
        (sized && applied && byte & 0x80 == 0).then_some(Self(byte))
    }

    /// The size of a value in this encoding.
    fn size(self) -> usize {
        match self.0 & 0x0f {
            0x02 | 0x0a => 2,
            0x03 | 0x0b => 4,
            _ => 8,
        }
    }
}

/// A cursor over one record's bytes; every read is bounds-checked.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> Option<u8> {
        let byte = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(byte)
    }

    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(len)?;
        let taken = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(taken)
    }

    /// A ULEB128 or SLEB128 value's bytes, skipped; at most 10 bytes (64 bits).
    fn leb(&mut self) -> Option<()> {
        for _ in 0..10 {
            if self.byte()? & 0x80 == 0 {
                return Some(());
            }
        }
        None
    }

    /// A ULEB128 value that fits a `usize`.
    fn uleb(&mut self) -> Option<usize> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return usize::try_from(value).ok();
            }
        }
        None
    }

    /// A NUL-terminated string, without its NUL.
    fn c_str(&mut self) -> Option<&'a [u8]> {
        let rest = self.bytes.get(self.at..)?;
        let len = rest.iter().position(|&b| b == 0)?;
        self.at += len + 1;
        rest.get(..len)
    }
}

/// A CIE's body (after the zero ID) checked; the encoding of its FDEs' addresses.
fn cie(body: &[u8]) -> Result<Encoding, &'static str> {
    let mut c = Cursor { bytes: body, at: 0 };
    let version = c.byte().ok_or("CIE too short")?;
    if version != 1 && version != 3 {
        return Err("CIE version is neither 1 nor 3");
    }
    let augmentation = c
        .c_str()
        .ok_or("CIE augmentation string is not terminated")?;
    c.leb().ok_or("CIE code alignment overruns")?;
    c.leb().ok_or("CIE data alignment overruns")?;
    if version == 1 {
        c.byte().ok_or("CIE return register overruns")?;
    } else {
        c.leb().ok_or("CIE return register overruns")?;
    }
    let Some(letters) = augmentation.strip_prefix(b"z") else {
        return if augmentation.is_empty() {
            Ok(Encoding::ABSPTR)
        } else {
            Err("CIE augmentation is neither empty nor starts with z")
        };
    };
    let len = c.uleb().ok_or("CIE augmentation length overruns")?;
    let data = c
        .take(len)
        .ok_or("CIE augmentation data overruns the record")?;
    let mut d = Cursor { bytes: data, at: 0 };
    let mut encoding = Encoding::ABSPTR;
    for &letter in letters {
        match letter {
            b'R' => {
                let byte = d.byte().ok_or("CIE augmentation data too short")?;
                encoding = Encoding::for_addresses(byte)
                    .ok_or("CIE FDE pointer encoding is not supported")?;
            }
            b'P' => {
                // The personality: libgcc reads it only when unwinding, with this encoding
                // (indirect allowed: it is how C++ names __gxx_personality_v0).
                let byte = d.byte().ok_or("CIE augmentation data too short")?;
                if byte & 0x0f == 0x01 || byte & 0x0f == 0x09 {
                    d.leb().ok_or("CIE personality overruns")?;
                } else {
                    let direct = Encoding::for_addresses(byte & 0x7f)
                        .ok_or("CIE personality encoding is not supported")?;
                    d.take(direct.size()).ok_or("CIE personality overruns")?;
                }
            }
            b'L' => {
                d.byte().ok_or("CIE augmentation data too short")?;
            }
            b'S' | b'B' => {}
            _ => return Err("CIE augmentation has an unknown letter"),
        }
    }
    Ok(encoding)
}

/// Checks that `bytes`, a section's contents, are well-formed records; `terminated_after`
/// says whether a zero word follows the range, for records that fill it exactly.
pub(crate) fn check(bytes: &[u8], terminated_after: impl FnOnce() -> bool) -> Result<(), String> {
    // The CIEs seen so far, by offset, with their FDEs' address encoding.
    let mut cies = BTreeMap::new();
    let mut at = 0usize;
    while let Some(word) = bytes.get(at..at.saturating_add(4)) {
        let length = u32::from_le_bytes(word.try_into().unwrap_or_default());
        if length == 0 && at == 0 {
            // libgcc skips an empty section on registration but not necessarily on
            // deregistration (if the memory changed meanwhile), which would abort.
            return Err("is empty".to_owned());
        }
        if length == 0 {
            return Ok(());
        }
        if length == u32::MAX {
            return Err("64-bit records are not supported".to_owned());
        }
        let next = usize::try_from(length)
            .ok()
            .and_then(|length| length.checked_add(4))
            .and_then(|record| at.checked_add(record))
            .filter(|&next| next <= bytes.len())
            .ok_or_else(|| format!("record at +{at:#x} overruns the range"))?;
        let body = &bytes[at + 4..next];
        let record = |error: &str| format!("record at +{at:#x}: {error}");
        let id = body
            .get(..4)
            .map(|id| u32::from_le_bytes(id.try_into().unwrap_or_default()))
            .ok_or_else(|| record("too short for its CIE pointer"))?;
        if id == 0 {
            cies.insert(at, cie(&body[4..]).map_err(record)?);
        } else {
            // The pointer counts back from its own field, at `at + 4`.
            let encoding = usize::try_from(id)
                .ok()
                .and_then(|back| (at + 4).checked_sub(back))
                .and_then(|cie_at| cies.get(&cie_at))
                .ok_or_else(|| record("FDE's CIE pointer does not lead to a CIE before it"))?;
            if body.len() < 4 + 2 * encoding.size() {
                return Err(record("FDE too short for its address range"));
            }
        }
        at = next;
    }
    if at != bytes.len() {
        return Err("the range ends inside a record length".to_owned());
    }
    if terminated_after() {
        Ok(())
    } else {
        Err("has no zero terminator".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CIE as LLVM emits it ("zR", pcrel|sdata4 FDE addresses), 24 bytes.
    const CIE: [u8; 24] = [
        0x14, 0, 0, 0, 0, 0, 0, 0, 1, b'z', b'R', 0, 0x01, 0x78, 0x10, 0x01, 0x1b, 0x0c, 0x07,
        0x08, 0x90, 0x01, 0x00, 0x00,
    ];

    /// An FDE at offset 24 whose CIE pointer is `back`, 24 bytes.
    fn fde(back: u32) -> Vec<u8> {
        let mut fde = 20u32.to_le_bytes().to_vec();
        fde.extend_from_slice(&back.to_le_bytes());
        fde.extend_from_slice(&[0; 16]);
        fde
    }

    fn section(records: &[&[u8]]) -> Vec<u8> {
        let mut bytes = records.concat();
        bytes.extend_from_slice(&[0; 4]);
        bytes
    }

    #[test]
    fn accepts_what_llvm_emits() {
        assert_eq!(check(&section(&[&CIE, &fde(28)]), || false), Ok(()));
        // Records filling the range exactly, the terminator after it.
        assert_eq!(check(&CIE, || true), Ok(()));
        assert!(check(&CIE, || false)
            .unwrap_err()
            .contains("no zero terminator"));
    }

    #[test]
    fn refuses_fdes_whose_cie_pointer_leads_elsewhere() {
        // Past the section's start, into the FDE itself, into the middle of the CIE.
        for back in [32, 4, 24, 0x1000_0000] {
            let err = check(&section(&[&CIE, &fde(back)]), || false).unwrap_err();
            assert!(err.contains("does not lead to a CIE"), "{back}: {err}");
        }
        // Pointing at an FDE instead of a CIE.
        let err = check(&section(&[&CIE, &fde(28), &fde(28)]), || false).unwrap_err();
        assert!(err.contains("does not lead to a CIE"), "{err}");
        // An FDE with no CIE before it.
        let err = check(&section(&[&fde(4)]), || false).unwrap_err();
        assert!(err.contains("does not lead to a CIE"), "{err}");
    }

    /// Every truncation and every single-byte change of a valid section is answered, never a
    /// panic.
    #[test]
    fn any_corruption_is_answered() {
        let valid = section(&[&CIE, &fde(28)]);
        for len in 0..=valid.len() {
            let _ = check(&valid[..len], || false);
        }
        for at in 0..valid.len() {
            for byte in 0..=u8::MAX {
                let mut bytes = valid.clone();
                bytes[at] = byte;
                let _ = check(&bytes, || false);
            }
        }
    }

    #[test]
    fn refuses_malformed_cies_and_short_fdes() {
        let cases: [(usize, u8, &str); 5] = [
            (8, 2, "version"),
            (9, b'y', "augmentation is neither"),
            (10, b'X', "unknown letter"),
            (16, 0x01, "encoding is not supported"),
            (16, 0x9b, "encoding is not supported"),
        ];
        for (offset, byte, want) in cases {
            let mut cie = CIE;
            cie[offset] = byte;
            let err = check(&section(&[&cie]), || false).unwrap_err();
            assert!(err.contains(want), "{offset}: {err} (wanted {want})");
        }
        // The augmentation data claims more than the record holds.
        let mut cie = CIE;
        cie[15] = 0x7f;
        let err = check(&section(&[&cie]), || false).unwrap_err();
        assert!(err.contains("overruns the record"), "{err}");
        // An unterminated augmentation string.
        let mut cie = CIE;
        cie[9..24].fill(b'z');
        assert!(check(&section(&[&cie]), || false).is_err());
        let mut short = fde(28);
        short[0] = 8;
        short.truncate(12);
        let err = check(&section(&[&CIE, &short]), || false).unwrap_err();
        assert!(err.contains("too short for its address range"), "{err}");
        let err = check(&section(&[&[0, 0, 0, 0]]), || false).unwrap_err();
        assert!(err.contains("is empty"), "{err}");
        let err = check(&section(&[&[2, 0, 0, 0, 0, 0]]), || false).unwrap_err();
        assert!(err.contains("too short for its CIE pointer"), "{err}");
    }
}
