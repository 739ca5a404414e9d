//! The SPS codec and the memory-map binding of `mapcore-sps` on arbitrary bytes (the
//! `sps_codec` fuzz target, replayed by `tests/tests/replay.rs`).
//!
//! The same bytes go through every decoder: the message header, the arguments of the four
//! memory-manager wrappers, the Setup payload's shape, the `Expected`/`Error` reply shapes and
//! tuples, options and nested sequences of every primitive. No decoder may panic, and whatever
//! one accepts must re-encode to **exactly the same bytes**. Byte equality, not a canonical
//! form, is the right oracle because the decoders accept one encoding per value: every field
//! is fixed-width or count-prefixed, a bool must be 0 or 1, a group byte may have no bit above
//! the finalize bit, and a whole buffer must be consumed. The re-encoding is also written into
//! a buffer one byte short, which must fail.
//!
//! One exception, in initialize's arguments: a null action is no action whatever arguments it
//! carries (as in LLVM, whose clang-repl sends some), so those arguments are not kept. Such a
//! request re-encodes to a shorter canonical form without them, which must decode to the same
//! request and re-encode to itself.

use mapcore::{Action, ActionError, AllocGroup, Content, Lifetime};
use mapcore_sps::{
    from_bytes, split_wire_action, AddrListArgs, BufferTooSmall, Header, InitializeArgs, Reader,
    ReserveArgs, Seq, Writer, HEADER_LEN,
};

/// Runs every decoder on `bytes` and checks each accepted value's re-encoding.
///
/// # Panics
///
/// A decoder panicked, or an accepted value did not re-encode to `bytes`.
pub fn check(bytes: &[u8]) {
    header(bytes);
    memory_map(bytes);
    setup_shape(bytes);
    replies(bytes);
    primitives(bytes);
}

/// Re-encodes with `write` into a buffer of exactly `bytes.len()` (must give `bytes`) and one
/// byte shorter (must fail).
#[track_caller]
fn reencodes_to(bytes: &[u8], write: impl Fn(&mut Writer<'_>) -> Result<(), BufferTooSmall>) {
    let mut buf = vec![0u8; bytes.len()];
    let mut writer = Writer::new(&mut buf);
    write(&mut writer).expect("the value re-encodes into as many bytes as it was decoded from");
    let len = writer.finish();
    assert_eq!(
        &buf[..len],
        bytes,
        "re-encoding differs from the decoded bytes"
    );
    if let Some(short) = bytes.len().checked_sub(1) {
        let mut buf = vec![0u8; short];
        assert_eq!(
            write(&mut Writer::new(&mut buf)),
            Err(BufferTooSmall),
            "re-encoding fits a buffer shorter than its bytes"
        );
    }
}

fn header(bytes: &[u8]) {
    let Some(head) = bytes.first_chunk::<HEADER_LEN>() else {
        return;
    };
    if let Ok(header) = Header::decode(head) {
        assert_eq!(&header.to_bytes(), head, "header re-encodes differently");
        assert_eq!(
            header.size(),
            header.payload_len() as u64 + HEADER_LEN as u64
        );
    }
}

/// The wire group byte of `group`: the protection bits, and 8 for the finalize lifetime.
fn group_byte(group: AllocGroup) -> u8 {
    group.prot.bits()
        | if group.lifetime == Lifetime::Finalize {
            8
        } else {
            0
        }
}

fn no_op(_: &[u8]) -> Result<(), ActionError> {
    Ok(())
}

fn memory_map(bytes: &[u8]) {
    if let Ok(args) = ReserveArgs::decode(bytes) {
        reencodes_to(bytes, |w| {
            w.addr(args.instance)?;
            w.usize(args.size)
        });
    }
    if let Ok(args) = AddrListArgs::decode(bytes) {
        let forward: Vec<usize> = args.addrs.iter().collect();
        let mut backward: Vec<usize> = args.addrs.iter().rev().collect();
        backward.reverse();
        assert_eq!(
            forward, backward,
            "an address sequence reads differently backwards"
        );
        assert_eq!(forward.len(), args.addrs.len());
        reencodes_to(bytes, |w| {
            w.addr(args.instance)?;
            w.write(&forward[..])
        });
    }
    if let Ok(args) = InitializeArgs::decode(bytes, |stored| Action::new(no_op, stored)) {
        let canonical = encode_initialize(&args, bytes.len());
        if canonical == bytes {
            reencodes_to(bytes, |w| write_initialize(w, &args));
        } else {
            // Only the arguments of null actions are dropped.
            assert!(
                canonical.len() < bytes.len(),
                "initialize re-encodes differently"
            );
            let again = InitializeArgs::decode(&canonical, |stored| Action::new(no_op, stored))
                .expect("the canonical form decodes");
            assert_eq!(
                encode_initialize(&again, canonical.len()),
                canonical,
                "the canonical form re-encodes to itself"
            );
        }
    }
}

/// Initialize's arguments re-encoded, null actions without arguments, into at most `max` bytes.
fn encode_initialize(args: &InitializeArgs<'_>, max: usize) -> Vec<u8> {
    let mut buf = vec![0u8; max];
    let mut writer = Writer::new(&mut buf);
    write_initialize(&mut writer, args).expect("the canonical form is not longer");
    let len = writer.finish();
    buf.truncate(len);
    buf
}

fn write_initialize(w: &mut Writer<'_>, args: &InitializeArgs<'_>) -> Result<(), BufferTooSmall> {
    w.addr(args.instance)?;
    w.count(args.segments.len())?;
    for segment in &args.segments {
        let Content::Bytes(content) = segment.content else {
            panic!("a wire segment decoded as in-place content");
        };
        w.u8(group_byte(segment.group))?;
        w.usize(segment.addr)?;
        w.usize(segment.size)?;
        w.char_seq(content)?;
    }
    w.count(args.actions.len())?;
    for pair in &args.actions {
        for action in [&pair.finalize, &pair.dealloc] {
            let (func, wire_args) = match action {
                Some(action) => split_wire_action(action.args())
                    .expect("a stored wire action starts with its function address"),
                None => (0, &[][..]),
            };
            assert!(action.is_none() || func != 0, "a null action was stored");
            w.addr(func)?;
            w.char_seq(wire_args)?;
        }
    }
    Ok(())
}

/// `(String triple, u64 page size, Seq<(String, Seq<char>)>, Seq<(String, Addr)>)`.
fn setup_shape(bytes: &[u8]) {
    type Setup<'a> = (
        &'a str,
        u64,
        Seq<'a, (&'a str, &'a [u8])>,
        Seq<'a, (&'a str, u64)>,
    );
    if let Ok((triple, page_size, map, symbols)) = from_bytes::<Setup<'_>>(bytes) {
        let map: Vec<_> = map.collect();
        let symbols: Vec<_> = symbols.collect();
        reencodes_to(bytes, |w| {
            w.write(&(triple, page_size, &map[..], &symbols[..]))
        });
    }
}

/// `Expected<u64>` and `Error`; a message that is not UTF-8 cannot go through the writer's
/// `Display` form and is written as the raw character sequence it was read as.
fn replies(bytes: &[u8]) {
    let mut reader = Reader::new(bytes);
    if let Ok(expected) = reader.expected::<u64>() {
        if reader.finish().is_ok() {
            reencodes_to(bytes, |w| match (expected, message(expected.err())) {
                (Ok(value), _) => w.expected(Ok(&value)),
                (Err(_), Some(text)) => w.expected::<u64>(Err(&text)),
                (Err(raw), None) => {
                    w.bool(false)?;
                    w.char_seq(raw)
                }
            });
        }
    }
    let mut reader = Reader::new(bytes);
    if let Ok(error) = reader.error() {
        if reader.finish().is_ok() {
            reencodes_to(bytes, |w| match (error, message(error.err())) {
                (Ok(()), _) => w.error(Ok(())),
                (Err(_), Some(text)) => w.error(Err(&text)),
                (Err(raw), None) => {
                    w.bool(true)?;
                    w.char_seq(raw)
                }
            });
        }
    }
}

fn message(raw: Option<&[u8]>) -> Option<&str> {
    raw.and_then(|raw| core::str::from_utf8(raw).ok())
}

fn primitives(bytes: &[u8]) {
    if let Ok(value) = from_bytes::<(bool, i8, i16, i32, i64, u16)>(bytes) {
        reencodes_to(bytes, |w| w.write(&value));
    }
    if let Ok(value) = from_bytes::<(u32, u8, usize, Option<u64>, &[u8], Option<&str>)>(bytes) {
        reencodes_to(bytes, |w| w.write(&value));
    }
    if let Ok(seq) = from_bytes::<Seq<'_, (u8, u64, &[u8])>>(bytes) {
        let len = seq.len();
        let items: Vec<_> = seq.collect();
        assert_eq!(
            items.len(),
            len,
            "a sequence yields another count than it holds"
        );
        reencodes_to(bytes, |w| w.write(&items[..]));
    }
    if let Ok(outer) = from_bytes::<Seq<'_, Seq<'_, Option<&str>>>>(bytes) {
        let nested: Vec<Vec<Option<&str>>> = outer.map(Iterator::collect).collect();
        let slices: Vec<&[Option<&str>]> = nested.iter().map(Vec::as_slice).collect();
        reencodes_to(bytes, |w| w.write(&slices[..]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_inputs_round_trip() {
        // reserve (instance, 0x2000), also a valid empty release list and Error/Expected prefix.
        let mut reserve = Vec::from(0x5601u64.to_le_bytes());
        reserve.extend_from_slice(&0x2000u64.to_le_bytes());
        check(&reserve);
        // Expected<Addr> error with a message that is not UTF-8.
        let mut error = vec![0u8];
        error.extend_from_slice(&2u64.to_le_bytes());
        error.extend_from_slice(&[0xff, 0xfe]);
        check(&error);
        check(&[]);
        check(&[0]);
        check(&[1; 64]);
    }
}
