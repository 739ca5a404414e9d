//! Serving one session: Setup, then CallWrapper after CallWrapper until the controller goes away.
//!
//! Calls are answered one at a time on this thread, in order; JIT'd `main` runs here too.
//! The session ends at EOF (LLVM 22 never sends Hangup), at a Hangup, or when the stream is
//! broken, in which case the executor says why in a Hangup of its own when it still can.

use mapcore_sps::Opcode;

use super::dispatch;
use super::log;
use super::reply::{Failure, Shape};
use super::session::Session;
use super::setup;
use super::transport::Transport;

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
pub(crate) fn serve(transport: &mut Transport, session: &mut Session) -> End {
    let setup = match setup::payload(session.memory.page_size()) {
        Ok(payload) => payload,
        Err(e) => return End::Broken(format!("cannot encode the Setup message: {e}")),
    };
    if let Err(e) = transport.send(Opcode::Setup, 0, 0, &setup) {
        return End::Broken(format!("cannot send the Setup message: {e}"));
    }
    loop {
        let message = match transport.receive() {
            Ok(Some(message)) => message,
            Ok(None) => return End::Eof,
            Err(e) => return hang_up(transport, session, e.to_string()),
        };
        let header = message.header;
        match header.opcode() {
            Opcode::CallWrapper => {
                let reply = dispatch::call(session, header.seqno(), header.tag(), &message.payload);
                if let Err(e) = transport.send(Opcode::Result, header.seqno(), 0, &reply) {
                    return End::Broken(format!("cannot send a result: {e}"));
                }
            }
            Opcode::Hangup => {
                let mut reader = mapcore_sps::Reader::new(&message.payload);
                if let Ok(Err(reason)) = reader.error() {
                    log::diag(format_args!(
                        "controller hung up: {}",
                        String::from_utf8_lossy(reason)
                    ));
                }
                return End::Hangup;
            }
            opcode @ (Opcode::Setup | Opcode::Result) => {
                return hang_up(
                    transport,
                    session,
                    format!("unexpected {opcode:?} message (seqno {})", header.seqno()),
                );
            }
        }
    }
}

/// Reports a broken stream: counted, logged, and sent to the controller as a Hangup carrying
/// an SPS `Error`, if it can still be written.
fn hang_up(transport: &mut Transport, session: &mut Session, reason: String) -> End {
    session.stats.protocol_errors += 1;
    log::diag(format_args!("protocol error, hanging up: {reason}"));
    let failure = Failure::protocol(format_args!("mapcore-executor: {reason}"));
    let _ = transport.send(Opcode::Hangup, 0, 0, &Shape::Error.failure(&failure));
    End::Broken(reason)
}
