//! The SPS codec: reading and writing LLVM's Simple Packed Serialization, with no notion of
//! what the values mean.

mod decode;
mod encode;
mod error;
mod reader;
mod reply;
mod seq;
mod writer;

pub use decode::{from_bytes, Decode};
pub use encode::Encode;
pub use error::{BufferTooSmall, DecodeError};
pub use reader::Reader;
pub use seq::{AddrIter, AddrSeq, Seq};
pub use writer::Writer;
