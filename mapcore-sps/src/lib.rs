//! The wire of LLVM's ORC controller interface, for executors that serve a [`mapcore`] map:
//! SPS (Simple Packed Serialization), SimpleRemoteEPC framing, and the memory-map binding.
//!
//! Everything an executor needs to speak to an LLVM 22 controller (or an orc-rt one) without a
//! heap, in two layers:
//!
//! - **The codec**, which knows nothing of memory maps: a zero-copy [`Reader`] and a [`Writer`]
//!   into a caller's buffer, the [`Decode`] and [`Encode`] traits, lazily decoded sequences
//!   ([`Seq`], [`AddrSeq`]), the `Expected`/`Error` reply shapes
//!   ([`Writer::expected`], [`Reader::error`]), and the 32-byte message [`Header`].
//! - **The memory-map binding**: the arguments of the four memory-manager wrappers decoded
//!   into mapcore's request types ([`ReserveArgs`], [`InitializeArgs`], [`AddrListArgs`]), and
//!   how a wire alloc action, a foreign function address plus argument bytes, is stored as a
//!   mapcore [`Action`](mapcore::Action) ([`split_wire_action`]).
//!   LLVM 22's `__llvm_orc_SimpleExecutorMemoryManager_*` and orc-rt's
//!   `orc_rt_ci_sps_SimpleNativeMemoryMap_*` wrappers share these shapes byte for byte.
//!
//! # Encoding
//!
//! | SPS type | Rust type (decode / encode) | Bytes |
//! |---|---|---|
//! | `bool`, `char`, `int8_t`, `uint8_t` | `bool`, `u8`, `i8` | 1 |
//! | other integers | `u16`...`i64` | fixed-width little-endian |
//! | `ExecutorAddr`, `uint64_t` size | `u64`, or `usize` when it must fit | 8 |
//! | `Sequence<T>` | [`Seq<T>`] / `[T]` | u64 count, then the elements |
//! | `Sequence<ExecutorAddr>` | [`AddrSeq`] / `[u64]` | u64 count, then 8 bytes each |
//! | `Sequence<char>` | `&[u8]` | u64 count, then the bytes |
//! | `String` | `&str` (UTF-8 checked) / `str` | as `Sequence<char>` |
//! | `Tuple<T...>` | `(T...)` | the fields in order, no padding |
//! | `Optional<T>` | `Option<T>` | bool, then `T` if true |
//! | `Error` | `Result<(), msg>` | bool "has error", then a string if true |
//! | `Expected<T>` | `Result<T, msg>` | bool "has value", then `T` or a string |
//!
//! # Framing
//!
//! Every SimpleRemoteEPC message is a [`Header`] of four little-endian u64 fields, then the
//! SPS payload:
//!
//! | Offset | Field | Meaning |
//! |---|---|---|
//! | 0 | size | header plus payload, in bytes (at least [`HEADER_LEN`]) |
//! | 8 | opcode | [`Opcode`]: Setup 0, Hangup 1, Result 2, CallWrapper 3 |
//! | 16 | seqno | the controller's for calls, echoed by results; 0 for setup |
//! | 24 | tag | the wrapper's address for a call, 0 otherwise |
//!
//! # Memory-map wire shapes
//!
//! | Wrapper | Arguments | Reply |
//! |---|---|---|
//! | reserve | `(Addr instance, u64 size)` | `Expected<Addr>` |
//! | initialize | `(Addr instance, FinalizeRequest)` | `Expected<Addr>` |
//! | deinitialize, release | `(Addr instance, Seq<Addr>)` | `Error` |
//!
//! LLVM's shared-memory mapper service (`__llvm_orc_ExecutorSharedMemoryMapperService_*`)
//! differs in two shapes: reserve answers `Expected<(Addr base, String name)>`
//! ([`SharedReservation`]), the name of the shared-memory object the controller maps to write
//! the contents itself; and initialize takes `(Addr instance, Addr reservation,
//! (Seq<(u8 group, Addr addr, u64 size)>, Seq<action pair>))`, segments without content
//! ([`SharedInitializeArgs`]).
//!
//! A `FinalizeRequest` is `(Seq<(u8 group, Addr addr, u64 size, Seq<char> content)>,
//! Seq<((Addr fn, Seq<char> args), (Addr fn, Seq<char> args))>)`, finalize then dealloc
//! action in each pair, `fn == 0` meaning "no action". The group byte is LLVM's
//! `RemoteAllocGroup` and orc-rt's `AllocGroup`: read = 1, write = 2, exec = 4, finalize
//! lifetime = 8.
//!
//! # Strictness
//!
//! LLVM's deserializer ignores bytes left over after the last argument and reads any non-zero
//! byte as `true`. This crate is stricter, because every encoder we know of (LLVM 19-23, orc-rt)
//! writes exact buffers and `0`/`1` booleans:
//! - a whole argument buffer must be consumed ([`DecodeError::TrailingBytes`]);
//! - a bool byte must be 0 or 1 ([`DecodeError::InvalidBool`]);
//! - a group byte must have no bit above the finalize bit
//!   ([`RequestDecodeError::UnknownGroup`]);
//! - a null alloc action (`fn == 0`) is no action, as in LLVM, but its arguments are bounded
//!   like any action's ([`RequestDecodeError::ActionArgsTooLong`]).
//!
//! `Sequence<char>` is kept as raw bytes (segment content, action arguments and error messages
//! need not be UTF-8); only an SPS `String` read as `&str` is UTF-8 checked.
//!
//! No decoder panics or allocates; a count or size that does not fit `usize`, or a count that
//! claims more elements than the remaining bytes can hold, is an error before anything is read.
#![no_std]

mod codec;
mod frame;
mod memory_map;

pub use codec::{
    from_bytes, AddrIter, AddrSeq, BufferTooSmall, Decode, DecodeError, Encode, Reader, Seq, Writer,
};
pub use frame::{Header, Opcode, HEADER_LEN};
pub use memory_map::{
    split_wire_action, AddrListArgs, InitializeArgs, MakeAction, RequestDecodeError, ReserveArgs,
    SharedInitializeArgs, SharedReservation, MAX_WIRE_ACTION_ARGS,
};

#[cfg(test)]
mod tests {
    //! Arbitrary bytes through every decoder: errors are fine, panics are not.
    extern crate std;
    use std::vec::Vec;

    use proptest::prelude::*;

    use mapcore::{ActionError, MAX_SEGMENTS};

    use super::*;

    fn trampoline(_: &[u8]) -> Result<(), ActionError> {
        Ok(())
    }

    /// Decodes `bytes` with every decoder and walks every lazily decoded sequence to its end.
    fn feed(bytes: &[u8]) {
        if let Ok(head) = <&[u8; HEADER_LEN]>::try_from(bytes.get(..HEADER_LEN).unwrap_or(&[])) {
            let _ = Header::decode(head);
        }
        let _ = ReserveArgs::decode(bytes);
        if let Ok(args) = AddrListArgs::decode(bytes) {
            assert_eq!(args.addrs.iter().count(), args.addrs.len());
            assert_eq!(args.addrs.iter().rev().count(), args.addrs.len());
        }
        if let Ok(args) =
            SharedInitializeArgs::decode(bytes, |s| mapcore::Action::new(trampoline, s))
        {
            let request = args.init_request();
            assert!(request.segments.len() <= MAX_SEGMENTS);
        }
        let _ = from_bytes::<SharedReservation<'_>>(bytes);
        if let Ok(args) = InitializeArgs::decode(bytes, |s| mapcore::Action::new(trampoline, s)) {
            let request = args.init_request();
            assert!(request.segments.len() <= MAX_SEGMENTS);
            for pair in request.actions {
                for action in pair.finalize.iter().chain(pair.dealloc.iter()) {
                    assert!(split_wire_action(action.args()).is_some());
                }
            }
        }
        let _ = split_wire_action(bytes);
        if let Ok(seq) = from_bytes::<Seq<'_, (u8, u64, &[u8])>>(bytes) {
            let len = seq.len();
            assert_eq!(seq.count(), len);
        }
        if let Ok(seq) = from_bytes::<Seq<'_, Seq<'_, Option<&str>>>>(bytes) {
            for inner in seq {
                let _ = inner.count();
            }
        }
        let _ = from_bytes::<(u64, &str, u64, Seq<'_, (&str, &[u8])>)>(bytes);
        let _ = from_bytes::<(bool, i32, i64, u16)>(bytes);
        let _ = from_bytes::<(u32, i8, i16, usize, Option<u64>, &[u8])>(bytes);
        let mut r = Reader::new(bytes);
        let _ = r.expected::<u64>();
        let mut r = Reader::new(bytes);
        let _ = r.error();
    }

    fn token() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            (0u64..4).prop_map(|n| Vec::from(n.to_le_bytes())),
            (0u8..0x12).prop_map(|b| Vec::from([b])),
            any::<u64>().prop_map(|n| Vec::from(n.to_le_bytes())),
            any::<u8>().prop_map(|b| Vec::from([b])),
        ]
    }

    #[test]
    fn empty_and_tiny_inputs_do_not_panic() {
        for len in 0..64 {
            feed(&Vec::from_iter((0..len).map(|i| i as u8)));
            feed(&std::vec![0xff; len]);
            feed(&std::vec![0; len]);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        #[cfg_attr(miri, ignore)] // proptest persists failures through getcwd
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            feed(&bytes);
        }

        // Mostly small counts and valid group bytes, so random input reaches deep into the
        // shapes instead of failing at the first count.
        #[test]
        #[cfg_attr(miri, ignore)] // proptest persists failures through getcwd
        fn arbitrary_tokens_never_panic(tokens in proptest::collection::vec(token(), 0..64)) {
            let bytes: Vec<u8> = tokens.concat();
            for cut in 0..bytes.len().min(40) {
                feed(bytes.get(cut..).unwrap_or(&[]));
            }
        }
    }
}
