//! Framing over a byte stream: 32-byte headers plus SPS payloads, both directions.
//!
//! A message is read whole before it is handled. EOF before a header is the normal end of a
//! session; EOF inside a message, a bad header or an oversized message is a broken stream.
//!
//! # Safety
//!
//! Adopting inherited file descriptors (`filedescs=R,W`, or lli's two bare numbers) takes
//! ownership of raw descriptors; each one is checked to be open first, and a descriptor given
//! for both directions is duplicated so that each is closed once.
#![expect(unsafe_code, reason = "adopting inherited file descriptors")]

use std::fmt;
use std::fs::File;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use mapcore_sps::{Header, Opcode, HEADER_LEN};

use super::log::{self, Log};

/// Largest payload accepted: a bigger size field is treated as a broken stream. Memory grows
/// only as bytes actually arrive, so a lying size field costs nothing before this check.
pub(crate) const MAX_PAYLOAD: usize = 1 << 30;

/// One message as read from the stream.
#[derive(Debug)]
pub(crate) struct Message {
    pub(crate) header: Header,
    pub(crate) payload: Vec<u8>,
}

/// Why the stream can no longer be read.
#[derive(Debug)]
pub(crate) enum StreamError {
    /// A read failed.
    Io(io::Error),
    /// EOF inside a message, after `got` of `expected` bytes.
    Truncated { got: usize, expected: usize },
    /// The header does not decode.
    Header(mapcore_sps::DecodeError),
    /// The size field exceeds [`MAX_PAYLOAD`].
    TooLarge { size: u64 },
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "read failed: {e}"),
            Self::Truncated { got, expected } => {
                write!(
                    f,
                    "stream ended inside a message ({got} of {expected} bytes)"
                )
            }
            Self::Header(e) => write!(f, "malformed message header: {e}"),
            Self::TooLarge { size } => {
                write!(
                    f,
                    "message of {size} bytes exceeds the {MAX_PAYLOAD}-byte payload limit"
                )
            }
        }
    }
}

/// The two directions of a session.
pub(crate) struct Transport {
    input: Box<dyn Read>,
    output: Box<dyn Write>,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport").finish_non_exhaustive()
    }
}

impl Transport {
    /// A transport over any reader and writer (tests, sockets).
    pub(crate) fn new(input: impl Read + 'static, output: impl Write + 'static) -> Self {
        Self {
            input: Box::new(input),
            output: Box::new(output),
        }
    }

    /// Adopts two inherited descriptors: `read` from the controller, `write` to it.
    ///
    /// # Errors
    ///
    /// A descriptor is negative or not open, or cannot be duplicated.
    pub(crate) fn from_fds(read: RawFd, write: RawFd) -> io::Result<Self> {
        let input = adopt(read)?;
        let output = if write == read {
            input.try_clone()?
        } else {
            adopt(write)?
        };
        Ok(Self::new(File::from(input), File::from(output)))
    }

    /// Listens on `addr` (`HOST:PORT`, port 0 picks one), reports the address on stderr, and
    /// serves the first connection (traced in `log`).
    ///
    /// # Errors
    ///
    /// Binding, accepting or cloning the socket fails.
    pub(crate) fn listen(addr: &str, log: Log) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        log::diag(format_args!("listening on {}", listener.local_addr()?));
        let (stream, peer) = listener.accept()?;
        log.trace(format_args!("connection from {peer}"));
        stream.set_nodelay(true)?;
        let input = stream.try_clone()?;
        Ok(Self::new(input, SocketWriter(stream)))
    }

    /// Reads the next message; `Ok(None)` at a clean EOF (before a header).
    ///
    /// # Errors
    ///
    /// The stream is broken; see [`StreamError`].
    pub(crate) fn receive(&mut self) -> Result<Option<Message>, StreamError> {
        let mut head = [0u8; HEADER_LEN];
        let got = read_full(&mut self.input, &mut head).map_err(StreamError::Io)?;
        if got == 0 {
            return Ok(None);
        }
        if got < HEADER_LEN {
            return Err(StreamError::Truncated {
                got,
                expected: HEADER_LEN,
            });
        }
        let size = u64::from_le_bytes(head[..8].try_into().unwrap_or_default());
        let header = Header::decode(&head).map_err(StreamError::Header)?;
        let len = header.payload_len();
        if len > MAX_PAYLOAD {
            return Err(StreamError::TooLarge { size });
        }
        let mut payload = Vec::with_capacity(len.min(1 << 20));
        (&mut self.input)
            .take(len as u64)
            .read_to_end(&mut payload)
            .map_err(StreamError::Io)?;
        if payload.len() < len {
            return Err(StreamError::Truncated {
                got: HEADER_LEN + payload.len(),
                expected: HEADER_LEN + len,
            });
        }
        Ok(Some(Message { header, payload }))
    }

    /// Sends one message, header and payload in one write.
    ///
    /// # Errors
    ///
    /// The write fails (the controller is gone), or the payload is too large for a header.
    pub(crate) fn send(
        &mut self,
        opcode: Opcode,
        seqno: u64,
        tag: u64,
        payload: &[u8],
    ) -> io::Result<()> {
        let header = Header::new(opcode, seqno, tag, payload.len())
            .ok_or_else(|| io::Error::new(ErrorKind::InvalidInput, "payload too large"))?;
        let mut message = Vec::with_capacity(HEADER_LEN + payload.len());
        message.extend_from_slice(&header.to_bytes());
        message.extend_from_slice(payload);
        self.output.write_all(&message)?;
        self.output.flush()
    }
}

/// Reads until `buf` is full or EOF; returns how many bytes were read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Takes ownership of an inherited descriptor after checking that it is open.
fn adopt(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only queries the descriptor's flags; an invalid one yields EBADF.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(io::Error::new(
            ErrorKind::InvalidInput,
            format!("file descriptor {fd} is not open"),
        ));
    }
    // SAFETY: the descriptor is open (checked above), was inherited for this session and
    // nothing else in the process owns it; `from_fds` adopts each number once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The writing half of a TCP session; shuts the socket down when dropped, so that the peer
/// sees EOF even while another handle to the socket is still open.
struct SocketWriter(TcpStream);

impl Write for SocketWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Drop for SocketWriter {
    fn drop(&mut self) {
        let _ = self.0.shutdown(std::net::Shutdown::Both);
    }
}
