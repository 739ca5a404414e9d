//! Serving one session: Setup, then CallWrapper after CallWrapper until the controller goes away.
//!
//! Calls are answered one at a time on this thread, in order; JIT'd `main` runs here too. While
//! JIT'd code waits for one of the executor's own calls to the controller
//! ([`call_controller`], see [`upcall`](super::upcall)), the controller's calls are answered
//! by the same loop, nested.
//!
//! The session ends at EOF (LLVM 22 never sends Hangup), at a Hangup, or when the stream is
//! broken, in which case the executor says why in a Hangup of its own when it still can.

use mapcore_sps::Opcode;

use super::dispatch;
use super::log;
use super::reply::{Failure, Shape};
use super::session::Session;
use super::setup;
use super::transport::Message;

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum End {
    /// The controller closed the stream between messages: the normal end.
    Eof,
    /// The controller sent Hangup.
    Hangup,
    /// The stream broke or the controller broke the protocol; the message says how.
    Broken(String),
}

impl End {
    /// The name written to the stats file.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Eof => "eof",
            Self::Hangup => "hangup",
            Self::Broken(_) => "broken",
        }
    }
}

/// Sends Setup and serves calls until the session ends.
pub(crate) fn serve(session: &mut Session) -> End {
    let setup = match setup::payload(session.memory.page_size(), session.upcalls.ctx_addr()) {
        Ok(payload) => payload,
        Err(e) => return End::Broken(format!("cannot encode the Setup message: {e}")),
    };
    if let Err(e) = session.transport.send(Opcode::Setup, 0, 0, &setup) {
        return End::Broken(format!("cannot send the Setup message: {e}"));
    }
    loop {
        let step = match session.transport.receive() {
            Ok(Some(message)) => handle(session, message, None),
            Ok(None) => Step::Ended(End::Eof),
            Err(e) => Step::Ended(hang_up(session, e.to_string())),
        };
        match step {
            Step::Ended(end) => return end,
            Step::Served | Step::Result(_) => {}
        }
    }
}

/// The executor's own call to the controller's wrapper `tag`, made while JIT'd code waits
/// for it: sends the CallWrapper and serves the controller's messages until the Result.
///
/// # Errors
///
/// The stream ended or broke first (recorded in `session.ended` for the outer loop), or the
/// call could not be sent.
pub(crate) fn call_controller(
    session: &mut Session,
    tag: u64,
    args: &[u8],
) -> Result<Vec<u8>, String> {
    if session.ended.is_some() {
        return Err("the session has ended".to_owned());
    }
    let seqno = session.upcalls.take_seqno();
    session.stats.controller_calls += 1;
    session.log.trace(format_args!(
        "call to the controller #{seqno}: tag {tag:#x}, {} bytes",
        args.len()
    ));
    if let Err(e) = session
        .transport
        .send(Opcode::CallWrapper, seqno, tag, args)
    {
        let why = format!("cannot send a call to the controller: {e}");
        session.ended = Some(End::Broken(why.clone()));
        return Err(why);
    }
    loop {
        let step = match session.transport.receive() {
            Ok(Some(message)) => handle(session, message, Some(seqno)),
            Ok(None) => Step::Ended(End::Eof),
            Err(e) => Step::Ended(hang_up(session, e.to_string())),
        };
        match step {
            Step::Result(payload) => return Ok(payload),
            Step::Served => {}
            Step::Ended(end) => {
                let why = format!(
                    "the session ended ({}) before the controller answered",
                    end.name()
                );
                session.ended = Some(end);
                return Err(why);
            }
        }
    }
}

/// What handling one message led to.
enum Step {
    /// A call was answered; serving goes on.
    Served,
    /// The Result of the executor's own call being waited for.
    Result(Vec<u8>),
    /// The session is over.
    Ended(End),
}

/// Handles one message; `waiting` is the sequence number of the executor's own call whose
/// Result is awaited, if any.
fn handle(session: &mut Session, message: Message, waiting: Option<u64>) -> Step {
    let header = message.header;
    match header.opcode() {
        Opcode::CallWrapper => {
            let reply = dispatch::call(session, header.seqno(), header.tag(), &message.payload);
            // The stream ended while JIT'd code waited for the controller: no one to answer.
            if let Some(end) = session.ended.take() {
                return Step::Ended(end);
            }
            match session
                .transport
                .send(Opcode::Result, header.seqno(), 0, &reply)
            {
                Ok(()) => Step::Served,
                Err(e) => Step::Ended(End::Broken(format!("cannot send a result: {e}"))),
            }
        }
        Opcode::Result if waiting == Some(header.seqno()) => Step::Result(message.payload),
        Opcode::Hangup => {
            let mut reader = mapcore_sps::Reader::new(&message.payload);
            if let Ok(Err(reason)) = reader.error() {
                log::diag(format_args!(
                    "controller hung up: {}",
                    String::from_utf8_lossy(reason)
                ));
            }
            Step::Ended(End::Hangup)
        }
        opcode @ (Opcode::Setup | Opcode::Result) => Step::Ended(hang_up(
            session,
            format!("unexpected {opcode:?} message (seqno {})", header.seqno()),
        )),
    }
}

/// Reports a broken stream: counted, logged, and sent to the controller as a Hangup carrying
/// an SPS `Error`, if it can still be written.
fn hang_up(session: &mut Session, reason: String) -> End {
    session.stats.protocol_errors += 1;
    log::diag(format_args!("protocol error, hanging up: {reason}"));
    let failure = Failure::protocol(format_args!("mapcore-executor: {reason}"));
    let _ = session
        .transport
        .send(Opcode::Hangup, 0, 0, &Shape::Error.failure(&failure));
    End::Broken(reason)
}
