//! The argument shapes of the memory-manager wrappers, decoded into mapcore's request types
//! (the table is in the parent module).

use heapless::Vec;
use mapcore::{ActionPair, Content, InitRequest, Segment, MAX_ACTION_PAIRS, MAX_SEGMENTS};

use super::action::{wire_action, MakeAction, MAX_WIRE_ACTION_ARGS};
use super::error::RequestDecodeError;
use super::group::decode_group;
use crate::codec::{from_bytes, AddrSeq, Decode, DecodeError, Reader};

/// Fewest bytes of one wire segment: group, address, size and an empty content count.
const SEGMENT_MIN_LEN: usize = 1 + 8 + 8 + 8;

/// Fewest bytes of one wire action pair: two (fn, empty args) tuples.
const PAIR_MIN_LEN: usize = 2 * (8 + 8);

/// Arguments of reserve: `(Addr instance, u64 size)`.
///
/// LLVM 22's lli also sends its release call `(instance, empty Seq<Addr>)` to the reserve
/// wrapper (an upstream bug); those 16 bytes decode as a reserve of size 0, which the map
/// rejects, and the rejection is what keeps lli quiet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReserveArgs {
    /// The wrapper instance token, as advertised in the Setup message.
    pub instance: u64,
    /// The size to reserve.
    pub size: usize,
}

impl ReserveArgs {
    /// Decodes a whole reserve argument buffer.
    ///
    /// # Errors
    ///
    /// [`DecodeError::Truncated`], [`DecodeError::ValueTooLarge`] if the size does not fit
    /// `usize`, [`DecodeError::TrailingBytes`].
    pub fn decode(args: &[u8]) -> Result<Self, DecodeError> {
        from_bytes(args)
    }
}

impl Decode<'_> for ReserveArgs {
    const MIN_LEN: usize = 16;
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            instance: reader.addr()?,
            size: reader.usize()?,
        })
    }
}

/// Arguments of deinitialize and release: `(Addr instance, Seq<Addr>)`, region keys or slab
/// bases, borrowed from the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrListArgs<'a> {
    /// The wrapper instance token, as advertised in the Setup message.
    pub instance: u64,
    /// The keys or bases, each fitting `usize`.
    pub addrs: AddrSeq<'a>,
}

impl<'a> AddrListArgs<'a> {
    /// Decodes a whole deinitialize or release argument buffer.
    ///
    /// # Errors
    ///
    /// [`DecodeError::Truncated`], [`DecodeError::CountTooLarge`],
    /// [`DecodeError::ValueTooLarge`] for an address that does not fit `usize`,
    /// [`DecodeError::TrailingBytes`].
    pub fn decode(args: &'a [u8]) -> Result<Self, DecodeError> {
        from_bytes(args)
    }
}

impl<'a> Decode<'a> for AddrListArgs<'a> {
    const MIN_LEN: usize = 16;
    fn decode(reader: &mut Reader<'a>) -> Result<Self, DecodeError> {
        Ok(Self {
            instance: reader.addr()?,
            addrs: reader.addr_seq()?,
        })
    }
}

/// Arguments of initialize: `(Addr instance, FinalizeRequest)`, in fixed-capacity storage.
/// Segment contents are borrowed from the argument buffer; each non-null wire action is stored
/// for a trampoline (see [`split_wire_action`](super::split_wire_action)).
///
/// Only the encoding and mapcore's per-request capacities are checked here; the map validates
/// the request itself (alignment, containment, content not longer than size, W^X, at least one
/// Standard segment).
#[derive(Debug, Clone)]
pub struct InitializeArgs<'a> {
    /// The wrapper instance token, as advertised in the Setup message.
    pub instance: u64,
    /// The segments, in wire order, with `Content::Bytes` borrowed from the buffer.
    pub segments: Vec<Segment<'a>, MAX_SEGMENTS>,
    /// The action pairs, in wire order.
    pub actions: Vec<ActionPair, MAX_ACTION_PAIRS>,
}

impl<'a> InitializeArgs<'a> {
    /// Decodes a whole initialize argument buffer; each non-null wire action becomes the
    /// [`Action`](mapcore::Action) `make_action` makes from `fn address (8 bytes LE) ++ wire
    /// args`.
    ///
    /// # Errors
    ///
    /// - [`RequestDecodeError::Decode`] for input that is not the SPS shape: it ends early
    ///   ([`DecodeError::Truncated`], [`DecodeError::CountTooLarge`]), has an address or size
    ///   that does not fit `usize` ([`DecodeError::ValueTooLarge`]) or bytes after the request
    ///   ([`DecodeError::TrailingBytes`]);
    /// - [`RequestDecodeError::UnknownGroup`] for a group byte with bits above the finalize bit;
    /// - [`RequestDecodeError::TooManySegments`] (more than [`MAX_SEGMENTS`]),
    ///   [`RequestDecodeError::TooManyActionPairs`] (more than [`MAX_ACTION_PAIRS`]) or
    ///   [`RequestDecodeError::ActionArgsTooLong`] (more than
    ///   [`MAX_WIRE_ACTION_ARGS`](super::MAX_WIRE_ACTION_ARGS) argument bytes).
    pub fn decode(
        args: &'a [u8],
        make_action: impl MakeAction,
    ) -> Result<Self, RequestDecodeError> {
        let mut reader = Reader::new(args);
        let instance = reader.addr()?;
        let (segments, actions) =
            read_request(&mut reader, SEGMENT_MIN_LEN, read_segment, &make_action)?;
        reader.finish()?;
        Ok(Self {
            instance,
            segments,
            actions,
        })
    }

    /// The request to pass to [`JitMap::initialize`](mapcore::JitMap::initialize).
    #[must_use]
    pub fn init_request(&self) -> InitRequest<'_> {
        InitRequest::new(&self.segments, &self.actions)
    }
}

/// A finalize request's segments and action pairs, in wire order.
pub(super) type Request<'a> = (
    Vec<Segment<'a>, MAX_SEGMENTS>,
    Vec<ActionPair, MAX_ACTION_PAIRS>,
);

/// The segments and action pairs of a finalize request: `(Seq<segment>, Seq<(action,
/// action)>)`, each segment read by `read_segment` and taking at least `segment_min_len`
/// bytes, checked against mapcore's capacities.
pub(super) fn read_request<'a>(
    reader: &mut Reader<'a>,
    segment_min_len: usize,
    read_segment: impl Fn(&mut Reader<'a>) -> Result<Segment<'a>, RequestDecodeError>,
    make_action: &impl MakeAction,
) -> Result<Request<'a>, RequestDecodeError> {
    let (mut segments, mut actions) = (Vec::new(), Vec::new());
    let offset = reader.offset();
    let count = reader.count(segment_min_len)?;
    let too_many = RequestDecodeError::TooManySegments { offset };
    if count > MAX_SEGMENTS {
        return Err(too_many);
    }
    for _ in 0..count {
        let segment = read_segment(reader)?;
        segments.push(segment).map_err(|_| too_many)?;
    }

    let offset = reader.offset();
    let count = reader.count(PAIR_MIN_LEN)?;
    let too_many = RequestDecodeError::TooManyActionPairs { offset };
    if count > MAX_ACTION_PAIRS {
        return Err(too_many);
    }
    for _ in 0..count {
        let finalize = read_action(reader, make_action)?;
        let dealloc = read_action(reader, make_action)?;
        actions
            .push(ActionPair { finalize, dealloc })
            .map_err(|_| too_many)?;
    }
    Ok((segments, actions))
}

/// `(u8 group, Addr addr, u64 size, Seq<char> content)`.
fn read_segment<'a>(reader: &mut Reader<'a>) -> Result<Segment<'a>, RequestDecodeError> {
    let offset = reader.offset();
    let group = decode_group(reader.u8()?).ok_or(RequestDecodeError::UnknownGroup { offset })?;
    let addr = reader.usize()?;
    let size = reader.usize()?;
    let content = Content::Bytes(reader.char_seq()?);
    Ok(Segment {
        group,
        addr,
        size,
        content,
    })
}

/// `(Addr fn, Seq<char> args)`; `None` for `fn == 0`, whatever its arguments.
///
/// A null function is "no action" in LLVM (`WrapperFunctionCall`'s `operator bool` tests the
/// address alone), and LLVM's controller does send one with arguments: its ELF debug-object
/// plugin addresses the GDB registration action (`(ExecutorAddrRange, bool)` arguments)
/// through the bootstrap symbol `llvm_orc_registerJITLoaderGDBAllocAction`, which is null when
/// the executor does not advertise it. Those arguments are dropped, but bounded like any
/// action's.
fn read_action(
    reader: &mut Reader<'_>,
    make_action: &impl MakeAction,
) -> Result<Option<mapcore::Action>, RequestDecodeError> {
    let func = reader.addr()?;
    let offset = reader.offset();
    let args = reader.char_seq()?;
    let too_long = RequestDecodeError::ActionArgsTooLong { offset };
    if func == 0 {
        return if args.len() <= MAX_WIRE_ACTION_ARGS {
            Ok(None)
        } else {
            Err(too_long)
        };
    }
    wire_action(make_action, func, args)
        .map(Some)
        .ok_or(too_long)
}

#[cfg(test)]
mod tests {
    //! Golden argument buffers built by hand from the shapes and traces of the LLVM 22 protocol
    //! notes (section 2.6 and 2.8), independent of the writer.
    extern crate std;
    use std::vec::Vec as StdVec;

    use mapcore::{ActionError, AllocGroup, Lifetime, Prot, MAX_ACTION_ARGS};

    use super::super::{split_wire_action, MAX_WIRE_ACTION_ARGS};
    use super::*;

    const INSTANCE: u64 = 0x5601_0000_4242;
    // A slab base as seen in the traces, where it fits; a 32-bit executor's otherwise.
    const BASE: u64 = if usize::BITS >= 64 {
        0x7f1c_b529_0000
    } else {
        0x7529_0000
    };
    const REGISTER_EH: u64 = 0x5601_0000_1000;
    const DEREGISTER_EH: u64 = 0x5601_0000_2000;
    const WRONG_ARGS: ActionError = ActionError::new(-1);

    /// The test trampoline as an action.
    fn make(stored: &[u8]) -> Result<mapcore::Action, mapcore::ArgsTooLong> {
        mapcore::Action::new(trampoline, stored)
    }

    /// Accepts only the EH-frame actions with a 16-byte `ExecutorAddrRange`.
    fn trampoline(args: &[u8]) -> Result<(), ActionError> {
        let (func, args) = split_wire_action(args).ok_or(WRONG_ARGS)?;
        match (func, args.len()) {
            (REGISTER_EH | DEREGISTER_EH, 16) => Ok(()),
            _ => Err(WRONG_ARGS),
        }
    }

    /// Hand-built SPS, one field at a time.
    #[derive(Default)]
    struct Golden(StdVec<u8>);

    impl Golden {
        fn u8(mut self, v: u8) -> Self {
            self.0.push(v);
            self
        }
        fn u64(mut self, v: u64) -> Self {
            self.0.extend_from_slice(&v.to_le_bytes());
            self
        }
        fn chars(self, bytes: &[u8]) -> Self {
            let mut s = self.u64(bytes.len() as u64);
            s.0.extend_from_slice(bytes);
            s
        }
        fn segment(self, group: u8, addr: u64, size: u64, content: &[u8]) -> Self {
            self.u8(group).u64(addr).u64(size).chars(content)
        }
        fn action(self, func: u64, args: &[u8]) -> Self {
            self.u64(func).chars(args)
        }
    }

    fn eh_range(start: u64, end: u64) -> [u8; 16] {
        let mut range = [0u8; 16];
        range[..8].copy_from_slice(&start.to_le_bytes());
        range[8..].copy_from_slice(&end.to_le_bytes());
        range
    }

    /// lli remote-MCJIT: 3 segments RX 0x22, R 0x5c, RW of size 0 exactly at the slab end,
    /// and one EH-frame pair.
    fn lli_initialize() -> StdVec<u8> {
        let eh = eh_range(BASE + 0x1000, BASE + 0x1040);
        Golden::default()
            .u64(INSTANCE)
            .u64(3)
            .segment(0x05, BASE, 0x22, &[0xc3; 0x22])
            .segment(0x01, BASE + 0x1000, 0x5c, &[0x11; 0x5c])
            .segment(0x03, BASE + 0x2000, 0, &[])
            .u64(1)
            .action(REGISTER_EH, &eh)
            .action(DEREGISTER_EH, &eh)
            .0
    }

    #[test]
    fn release_through_reserve_tag_decodes_as_reserve_zero() {
        // lli's destructor: `instance, 0` sent to the reserve wrapper.
        let bytes = Golden::default().u64(INSTANCE).u64(0).0;
        assert_eq!(bytes.len(), 16);
        assert_eq!(
            ReserveArgs::decode(&bytes),
            Ok(ReserveArgs {
                instance: INSTANCE,
                size: 0
            })
        );
        let list = AddrListArgs::decode(&bytes).unwrap();
        assert_eq!((list.instance, list.addrs.len()), (INSTANCE, 0));
    }

    #[test]
    fn reserve_golden() {
        let bytes = Golden::default().u64(INSTANCE).u64(0x2000).0;
        assert_eq!(
            ReserveArgs::decode(&bytes),
            Ok(ReserveArgs {
                instance: INSTANCE,
                size: 0x2000
            })
        );
        assert_eq!(
            ReserveArgs::decode(&bytes[..15]),
            Err(DecodeError::Truncated { offset: 8 })
        );
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            ReserveArgs::decode(&long),
            Err(DecodeError::TrailingBytes { offset: 16 })
        );
    }

    #[test]
    fn release_golden_and_back_to_front() {
        // Trace step 7: `instance | 1 | base`; and a batch of three.
        let bytes = Golden::default().u64(INSTANCE).u64(1).u64(BASE).0;
        let args = AddrListArgs::decode(&bytes).unwrap();
        assert_eq!(args.instance, INSTANCE);
        assert_eq!(args.addrs.iter().collect::<StdVec<_>>(), [BASE as usize]);

        let bytes = Golden::default()
            .u64(INSTANCE)
            .u64(3)
            .u64(0x1000)
            .u64(0x3000)
            .u64(0x2000)
            .0;
        let args = AddrListArgs::decode(&bytes).unwrap();
        assert_eq!(
            args.addrs.iter().rev().collect::<StdVec<_>>(),
            [0x2000, 0x3000, 0x1000]
        );
        assert_eq!(args.addrs.len(), 3);
    }

    #[test]
    fn lli_initialize_golden() {
        let bytes = lli_initialize();
        let args = InitializeArgs::decode(&bytes, make).unwrap();
        assert_eq!(args.instance, INSTANCE);
        let request = args.init_request();
        let base = BASE as usize;
        assert_eq!(
            request.segments,
            [
                Segment::new(Prot::READ_EXEC, base, 0x22, &[0xc3; 0x22]),
                Segment::new(Prot::READ, base + 0x1000, 0x5c, &[0x11; 0x5c]),
                Segment::new(Prot::READ_WRITE, base + 0x2000, 0, &[]),
            ]
        );
        // Content is borrowed from the argument buffer, not copied.
        let Content::Bytes(content) = request.segments[0].content else {
            panic!("not bytes")
        };
        assert!(bytes.as_ptr_range().contains(&content.as_ptr()));

        assert_eq!(request.actions.len(), 1);
        let pair = &request.actions[0];
        let (finalize, dealloc) = (
            pair.finalize.as_ref().unwrap(),
            pair.dealloc.as_ref().unwrap(),
        );
        let eh = eh_range(BASE + 0x1000, BASE + 0x1040);
        assert_eq!(
            split_wire_action(finalize.args()),
            Some((REGISTER_EH, &eh[..]))
        );
        assert_eq!(
            split_wire_action(dealloc.args()),
            Some((DEREGISTER_EH, &eh[..]))
        );
        assert_eq!(finalize.args().len(), 24);
        assert_eq!(finalize.run(), Ok(()));
        assert_eq!(dealloc.run(), Ok(()));
    }

    #[test]
    fn hello_initialize_is_264_bytes() {
        // Trace step 5: 2 segments (R 0x60 bytes, RX 0x1e bytes, both page-sized), 1 EH pair.
        let eh = eh_range(BASE + 0x20, BASE + 0x54);
        let bytes = Golden::default()
            .u64(INSTANCE)
            .u64(2)
            .segment(0x01, BASE, 0x1000, &[0; 0x60])
            .segment(0x05, BASE + 0x1000, 0x1000, &[0; 0x1e])
            .u64(1)
            .action(REGISTER_EH, &eh)
            .action(DEREGISTER_EH, &eh)
            .0;
        assert_eq!(bytes.len(), 264);
        let args = InitializeArgs::decode(&bytes, make).unwrap();
        assert_eq!(args.segments.len(), 2);
        assert_eq!(args.segments[1].group, AllocGroup::new(Prot::READ_EXEC));
        assert_eq!(args.segments[1].content.len(), 0x1e);
    }

    #[test]
    fn every_proper_prefix_of_a_valid_request_is_rejected() {
        let bytes = lli_initialize();
        for cut in 0..bytes.len() {
            let result = InitializeArgs::decode(&bytes[..cut], make);
            assert!(
                matches!(
                    result,
                    Err(RequestDecodeError::Decode(
                        DecodeError::Truncated { .. } | DecodeError::CountTooLarge { .. }
                    ))
                ),
                "prefix of {cut} bytes: {result:?}"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            InitializeArgs::decode(&long, make).err(),
            Some(RequestDecodeError::Decode(DecodeError::TrailingBytes {
                offset: bytes.len()
            }))
        );
    }

    #[test]
    fn unknown_group_bits_are_rejected() {
        let bytes = Golden::default()
            .u64(INSTANCE)
            .u64(1)
            .segment(0x10, BASE, 0, &[])
            .u64(0)
            .0;
        assert_eq!(
            InitializeArgs::decode(&bytes, make).err(),
            Some(RequestDecodeError::UnknownGroup { offset: 16 })
        );
        // 0x08 alone is a valid group: no access, Finalize lifetime.
        let bytes = Golden::default()
            .u64(INSTANCE)
            .u64(1)
            .segment(0x08, BASE, 0, &[])
            .u64(0)
            .0;
        let args = InitializeArgs::decode(&bytes, make).unwrap();
        assert_eq!(
            args.segments[0].group,
            AllocGroup::with_lifetime(Prot::NONE, Lifetime::Finalize)
        );
    }

    #[test]
    fn null_actions_are_absent_whatever_their_args() {
        let eh = eh_range(BASE, BASE + 8);
        let bytes = Golden::default()
            .u64(INSTANCE)
            .u64(0)
            .u64(2)
            .action(0, &[])
            .action(DEREGISTER_EH, &eh)
            .action(REGISTER_EH, &eh)
            .action(0, &[])
            .0;
        let args = InitializeArgs::decode(&bytes, make).unwrap();
        let actions = &args.actions;
        assert!(actions[0].finalize.is_none() && actions[0].dealloc.is_some());
        assert!(actions[1].finalize.is_some() && actions[1].dealloc.is_none());

        // What clang-repl sends to an executor that does not advertise the GDB registration
        // action: that action's `(ExecutorAddrRange, bool)` arguments under a null function.
        let gdb = [eh_range(BASE, BASE + 0x548).as_slice(), &[1]].concat();
        let bytes = Golden::default()
            .u64(INSTANCE)
            .u64(0)
            .u64(1)
            .action(0, &gdb)
            .action(0, &[])
            .0;
        let args = InitializeArgs::decode(&bytes, make).unwrap();
        assert!(args.actions[0].finalize.is_none() && args.actions[0].dealloc.is_none());

        // Bounded like any action's arguments.
        let bytes = Golden::default()
            .u64(INSTANCE)
            .u64(0)
            .u64(1)
            .action(0, &[])
            .action(0, &[0; MAX_WIRE_ACTION_ARGS + 1])
            .0;
        assert_eq!(
            InitializeArgs::decode(&bytes, make).err(),
            Some(RequestDecodeError::ActionArgsTooLong { offset: 48 })
        );
    }

    #[test]
    fn capacities_map_to_limits() {
        // MAX_SEGMENTS + 1 well-formed segments.
        let mut g = Golden::default().u64(INSTANCE).u64(MAX_SEGMENTS as u64 + 1);
        for i in 0..=MAX_SEGMENTS as u64 {
            g = g.segment(0x03, BASE + i * 0x1000, 0x1000, &[]);
        }
        let bytes = g.u64(0).0;
        assert_eq!(
            InitializeArgs::decode(&bytes, make).err(),
            Some(RequestDecodeError::TooManySegments { offset: 8 })
        );

        let mut g = Golden::default()
            .u64(INSTANCE)
            .u64(0)
            .u64(MAX_ACTION_PAIRS as u64 + 1);
        for _ in 0..=MAX_ACTION_PAIRS {
            g = g.action(REGISTER_EH, &[]).action(0, &[]);
        }
        assert_eq!(
            InitializeArgs::decode(&g.0, make).err(),
            Some(RequestDecodeError::TooManyActionPairs { offset: 16 })
        );

        // Exactly MAX_WIRE_ACTION_ARGS bytes fit; one more does not.
        let fits = Golden::default()
            .u64(INSTANCE)
            .u64(0)
            .u64(1)
            .action(REGISTER_EH, &[7; MAX_WIRE_ACTION_ARGS])
            .action(0, &[])
            .0;
        let args = InitializeArgs::decode(&fits, make).unwrap();
        let action = args.actions[0].finalize.as_ref().unwrap();
        assert_eq!(action.args().len(), MAX_ACTION_ARGS);
        let too_long = Golden::default()
            .u64(INSTANCE)
            .u64(0)
            .u64(1)
            .action(REGISTER_EH, &[7; MAX_WIRE_ACTION_ARGS + 1])
            .action(0, &[])
            .0;
        assert_eq!(
            InitializeArgs::decode(&too_long, make).err(),
            Some(RequestDecodeError::ActionArgsTooLong { offset: 32 })
        );
    }

    #[test]
    fn huge_counts_are_rejected() {
        for count in [u64::MAX, u64::MAX / 25 + 1, 1 << 40, 2] {
            let segments = Golden::default().u64(INSTANCE).u64(count).0;
            assert_eq!(
                InitializeArgs::decode(&segments, make).err(),
                Some(RequestDecodeError::Decode(DecodeError::CountTooLarge {
                    offset: 8
                }))
            );
            let pairs = Golden::default().u64(INSTANCE).u64(0).u64(count).0;
            assert_eq!(
                InitializeArgs::decode(&pairs, make).err(),
                Some(RequestDecodeError::Decode(DecodeError::CountTooLarge {
                    offset: 16
                }))
            );
            let content = Golden::default()
                .u64(INSTANCE)
                .u64(1)
                .u8(1)
                .u64(BASE)
                .u64(0)
                .u64(count)
                .0;
            assert_eq!(
                InitializeArgs::decode(&content, make).err(),
                Some(RequestDecodeError::Decode(DecodeError::CountTooLarge {
                    offset: 33
                }))
            );
            let addrs = Golden::default().u64(INSTANCE).u64(count).u64(BASE).0;
            assert_eq!(
                AddrListArgs::decode(&addrs).err(),
                Some(DecodeError::CountTooLarge { offset: 8 })
            );
        }
    }

    #[test]
    fn empty_request_decodes() {
        // Empty is well formed; the map rejects it for having no Standard segment.
        let bytes = Golden::default().u64(INSTANCE).u64(0).u64(0).0;
        let args = InitializeArgs::decode(&bytes, make).unwrap();
        assert!(args.init_request().segments.is_empty() && args.init_request().actions.is_empty());
    }

    #[test]
    fn large_addresses_depend_on_the_target() {
        let bytes = Golden::default().u64(INSTANCE).u64(u64::MAX).0;
        let result = ReserveArgs::decode(&bytes);
        if usize::BITS < 64 {
            assert_eq!(result, Err(DecodeError::ValueTooLarge { offset: 8 }));
        } else {
            assert_eq!(result.map(|a| a.size), Ok(usize::MAX));
        }
        let big = 1u64 << 40;
        let segment = Golden::default()
            .u64(INSTANCE)
            .u64(1)
            .segment(0x01, big, 0, &[])
            .u64(0)
            .0;
        let size = Golden::default()
            .u64(INSTANCE)
            .u64(1)
            .segment(0x01, 0, big, &[])
            .u64(0)
            .0;
        let addrs = Golden::default()
            .u64(INSTANCE)
            .u64(2)
            .u64(0x1000)
            .u64(big)
            .0;
        if usize::BITS < 64 {
            let err = |offset| Some(DecodeError::ValueTooLarge { offset });
            let request_err = |offset| err(offset).map(RequestDecodeError::Decode);
            assert_eq!(
                InitializeArgs::decode(&segment, make).err(),
                request_err(17)
            );
            assert_eq!(InitializeArgs::decode(&size, make).err(), request_err(25));
            assert_eq!(AddrListArgs::decode(&addrs).err(), err(24));
        } else {
            assert!(InitializeArgs::decode(&segment, make).is_ok());
            assert!(InitializeArgs::decode(&size, make).is_ok());
            assert!(AddrListArgs::decode(&addrs).is_ok());
        }
    }
}
