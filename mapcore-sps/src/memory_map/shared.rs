//! The wire shapes of LLVM's shared-memory mapper service
//! (`__llvm_orc_ExecutorSharedMemoryMapperService_*_wrapper`), where the controller writes
//! segment contents itself, through its own mapping of a named shared-memory object:
//!
//! | Wrapper | Arguments | Reply |
//! |---|---|---|
//! | reserve | `(Addr instance, u64 size)` | `Expected<(Addr base, String name)>` |
//! | initialize | `(Addr instance, Addr reservation, SharedMemoryFinalizeRequest)` | `Expected<Addr key>` |
//! | deinitialize, release | `(Addr instance, Seq<Addr>)` | `Error` |
//!
//! A `SharedMemoryFinalizeRequest` is `(Seq<(u8 group, Addr addr, u64 size)>, Seq<((Addr fn,
//! Seq<char> args), (Addr fn, Seq<char> args))>)`: the segments carry no content, because the
//! controller has already written all `size` bytes of each (content and zero fill) before it
//! calls initialize. reserve and the two address lists share the memory manager's shapes
//! ([`ReserveArgs`](super::ReserveArgs), [`AddrListArgs`](super::AddrListArgs)).

use heapless::Vec;
use mapcore::{ActionPair, Content, InitRequest, Segment, MAX_ACTION_PAIRS, MAX_SEGMENTS};

use super::action::MakeAction;
use super::args::read_request;
use super::error::RequestDecodeError;
use super::group::decode_group;
use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::BufferTooSmall;

/// Fewest bytes of one shared-memory wire segment: group, address, size.
const SHARED_SEGMENT_MIN_LEN: usize = 1 + 8 + 8;

/// The reply of the shared-memory reserve wrapper on success: `(Addr base, String name)`, the
/// execution address of the new slab and the name the controller passes to `shm_open`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedReservation<'a> {
    /// The slab's base in the executor.
    pub base: u64,
    /// The shared-memory object's name, `/` then no other `/`.
    pub name: &'a str,
}

impl Encode for SharedReservation<'_> {
    fn encode(&self, writer: &mut Writer<'_>) -> Result<(), BufferTooSmall> {
        (self.base, self.name).encode(writer)
    }
}

impl<'a> Decode<'a> for SharedReservation<'a> {
    const MIN_LEN: usize = 16;
    fn decode(reader: &mut Reader<'a>) -> Result<Self, DecodeError> {
        Ok(Self {
            base: reader.addr()?,
            name: reader.string()?,
        })
    }
}

/// Arguments of the shared-memory initialize wrapper: `(Addr instance, Addr reservation,
/// SharedMemoryFinalizeRequest)`, in fixed-capacity storage. Each segment's whole size is
/// [`Content::InPlace`]: the controller wrote it (the lifetime is the argument buffer's, as for
/// [`InitializeArgs`](super::InitializeArgs), though nothing is borrowed from it).
///
/// Only the encoding and mapcore's per-request capacities are checked here; the executor checks
/// that the segments lie in the named reservation, and the map validates the rest.
#[derive(Debug, Clone)]
pub struct SharedInitializeArgs<'a> {
    /// The wrapper instance token, as advertised in the Setup message.
    pub instance: u64,
    /// The base of the reservation the segments lie in, as the reserve wrapper returned it.
    pub reservation: usize,
    /// The segments, in wire order, each `Content::InPlace` over its whole size.
    pub segments: Vec<Segment<'a>, MAX_SEGMENTS>,
    /// The action pairs, in wire order.
    pub actions: Vec<ActionPair, MAX_ACTION_PAIRS>,
}

impl<'a> SharedInitializeArgs<'a> {
    /// Decodes a whole shared-memory initialize argument buffer; each non-null wire action
    /// becomes the [`Action`](mapcore::Action) `make_action` makes from `fn address (8 bytes LE)
    /// ++ wire args`.
    ///
    /// # Errors
    ///
    /// As [`InitializeArgs::decode`](super::InitializeArgs::decode), and
    /// [`DecodeError::ValueTooLarge`] for a reservation address that does not fit `usize`.
    pub fn decode(
        args: &'a [u8],
        make_action: impl MakeAction,
    ) -> Result<Self, RequestDecodeError> {
        let mut reader = Reader::new(args);
        let instance = reader.addr()?;
        let reservation = reader.usize()?;
        let (segments, actions) = read_request(
            &mut reader,
            SHARED_SEGMENT_MIN_LEN,
            read_shared_segment,
            &make_action,
        )?;
        reader.finish()?;
        Ok(Self {
            instance,
            reservation,
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

/// `(u8 group, Addr addr, u64 size)`, written in place by the controller.
fn read_shared_segment<'a>(reader: &mut Reader<'a>) -> Result<Segment<'a>, RequestDecodeError> {
    let offset = reader.offset();
    let group = decode_group(reader.u8()?).ok_or(RequestDecodeError::UnknownGroup { offset })?;
    let addr = reader.usize()?;
    let size = reader.usize()?;
    Ok(Segment {
        group,
        addr,
        size,
        content: Content::InPlace { len: size },
    })
}

#[cfg(test)]
mod tests {
    //! Golden buffers built by hand from LLVM 22's `SPSExecutorSharedMemoryMapperService*`
    //! signatures, independent of the writer.
    extern crate std;
    use std::vec::Vec as StdVec;

    use mapcore::{ActionError, Lifetime, Prot};

    use super::*;
    use crate::codec::from_bytes;

    const INSTANCE: u64 = 0x5601_0000_4343;
    const BASE: u64 = if usize::BITS >= 64 {
        0x7f1c_b529_0000
    } else {
        0x7529_0000
    };

    fn trampoline(_: &[u8]) -> Result<(), ActionError> {
        Ok(())
    }

    fn make(stored: &[u8]) -> Result<mapcore::Action, mapcore::ArgsTooLong> {
        mapcore::Action::new(trampoline, stored)
    }

    fn u64s(values: &[u64]) -> StdVec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// instance, reservation, 2 segments (RX 0x22 bytes, RW finalize-lifetime 0), 1 pair.
    fn golden() -> StdVec<u8> {
        let mut b = u64s(&[INSTANCE, BASE, 2]);
        b.push(0x05);
        b.extend(u64s(&[BASE, 0x22]));
        b.push(0x0b);
        b.extend(u64s(&[BASE + 0x1000, 0]));
        b.extend(u64s(&[1, 0x1234, 2]));
        b.extend([7, 7]);
        b.extend(u64s(&[0, 0]));
        b
    }

    #[test]
    fn initialize_golden() {
        let bytes = golden();
        let args = SharedInitializeArgs::decode(&bytes, make).unwrap();
        assert_eq!((args.instance, args.reservation), (INSTANCE, BASE as usize));
        assert_eq!(args.segments.len(), 2);
        let code = args.segments[0];
        assert_eq!((code.addr, code.size), (BASE as usize, 0x22));
        assert_eq!(code.group.prot, Prot::READ_EXEC);
        assert_eq!(code.content, Content::InPlace { len: 0x22 });
        let data = args.segments[1];
        assert_eq!(data.group.lifetime, Lifetime::Finalize);
        assert_eq!(data.content, Content::InPlace { len: 0 });
        assert_eq!(args.actions.len(), 1);
        assert!(args.actions[0].finalize.is_some() && args.actions[0].dealloc.is_none());
        assert_eq!(args.init_request().segments.len(), 2);
    }

    #[test]
    fn initialize_rejects_every_truncation_and_trailing_bytes() {
        let bytes = golden();
        for cut in 0..bytes.len() {
            assert!(
                SharedInitializeArgs::decode(&bytes[..cut], make).is_err(),
                "{cut}"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            SharedInitializeArgs::decode(&long, make).unwrap_err(),
            RequestDecodeError::Decode(DecodeError::TrailingBytes {
                offset: bytes.len()
            })
        );
        let mut bad_group = bytes;
        bad_group[24] = 0x10;
        assert_eq!(
            SharedInitializeArgs::decode(&bad_group, make).unwrap_err(),
            RequestDecodeError::UnknownGroup { offset: 24 }
        );
    }

    #[test]
    fn reservation_round_trips() {
        let reply = SharedReservation {
            base: BASE,
            name: "/mapcore_1_2",
        };
        let mut buf = [0u8; 64];
        let mut writer = Writer::new(&mut buf);
        reply.encode(&mut writer).unwrap();
        let len = writer.finish();
        let mut want = u64s(&[BASE, 12]);
        want.extend(b"/mapcore_1_2");
        assert_eq!(&buf[..len], &want[..]);
        assert_eq!(from_bytes::<SharedReservation<'_>>(&buf[..len]), Ok(reply));
    }
}
