//! The router: a CallWrapper's tag, or an alloc action's function address, to what runs it.
//!
//! Both are looked up in the [`symbols`](super::symbols) table. A call's handler gets the part of the
//! [`Session`] it works on; its reply, or the failure in the shape the wrapper's return type
//! allows ([`Shape`]), goes back as the Result.

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::action_context::Route;
use super::log;
use super::reply::{self, Failure, FailureKind, Shape};
use super::session::Session;
use super::symbols::{lookup, Handler, Kind};

/// Answers one CallWrapper: the Result payload for `args` sent to `tag`.
pub(crate) fn call(session: &mut Session, seqno: u64, tag: u64, args: &[u8]) -> Vec<u8> {
    let Some((index, symbol)) = lookup(tag) else {
        let failure = Failure::protocol(format_args!("no wrapper function at tag {tag:#x}"));
        return failed(session, seqno, "?", Shape::Error, &failure);
    };
    session.stats.calls[index] += 1;
    let (shape, outcome) = match symbol.kind {
        Kind::Wrapper { handler, shape } => (
            shape,
            guarded(symbol.name, || match handler {
                Handler::Stateless(handler) => handler(args),
                Handler::Memory(handler) => {
                    handler(&mut session.memory, &mut session.stats.memory, args)
                }
                Handler::SharedMemory(handler) => handler(
                    &mut session.shared_memory,
                    &mut session.stats.shared_memory,
                    args,
                ),
                Handler::Dylibs(handler) => handler(&mut session.dylibs, args),
            }),
        ),
        Kind::Action { run, .. } => (
            Shape::Error,
            guarded(symbol.name, || {
                session
                    .memory
                    .actions()
                    .run_own(run, args)
                    .map(|()| reply::no_error())
                    .map_err(|m| Failure::rejected(format_args!("{m}")))
            }),
        ),
        Kind::DispatchFn | Kind::Data(_) => (
            Shape::Error,
            Err(Failure::protocol(format_args!(
                "{} cannot be called by the controller",
                symbol.name
            ))),
        ),
    };
    match outcome {
        Ok(reply) => {
            session.log.trace(format_args!(
                "#{seqno} {}: {} bytes in, {} bytes out",
                symbol.name,
                args.len(),
                reply.len()
            ));
            reply
        }
        Err(failure) => failed(session, seqno, symbol.name, shape, &failure),
    }
}

/// What the alloc action at `func` is: one of our actions, another of our symbols, or foreign.
pub(crate) fn route_action(func: u64) -> Route {
    match lookup(func) {
        Some((_, symbol)) => match symbol.kind {
            Kind::Action { run, .. } => Route::Own(run),
            _ => Route::NotAnAction(symbol.name),
        },
        None => Route::Foreign,
    }
}

/// Runs a handler; a panic (a bug, never expected) becomes a failure instead of ending the
/// session with live memory.
fn guarded(
    name: &str,
    handler: impl FnOnce() -> Result<Vec<u8>, Failure>,
) -> Result<Vec<u8>, Failure> {
    catch_unwind(AssertUnwindSafe(handler)).unwrap_or_else(|_| {
        Err(Failure::protocol(format_args!(
            "{name}: internal error (panic) while handling the call"
        )))
    })
}

/// Counts and logs a failure and encodes its reply.
fn failed(
    session: &mut Session,
    seqno: u64,
    name: &str,
    shape: Shape,
    failure: &Failure,
) -> Vec<u8> {
    session.stats.error_replies += 1;
    if failure.kind == FailureKind::Protocol {
        session.stats.protocol_errors += 1;
        log::diag(format_args!("#{seqno}: {failure}"));
    } else {
        session
            .log
            .trace(format_args!("#{seqno} {name}: {failure}"));
    }
    shape.failure(failure)
}
