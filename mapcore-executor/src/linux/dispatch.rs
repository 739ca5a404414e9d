//! The router: a CallWrapper's tag, or an alloc action's function address, to what runs it.
//!
//! Both are looked up in the [`symbols`](super::symbols) table. A call's handler gets the part of the
//! [`Session`] it works on; its reply, or the failure in the shape the wrapper's return type
//! allows ([`Shape`]), goes back as the Result. A tag that is none of ours but executable code
//! is a wrapper function in JIT'd code (the ORC runtime's), called through the C ABI.
//!
//! Calls that run JIT'd code (run-as, JIT'd wrappers) lend the session to that code's calls to
//! the controller ([`upcall::lend`]); every other call withholds it.

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::action_context::Route;
use super::cabi;
use super::log;
use super::reply::{self, Failure, FailureKind, Shape};
use super::session::Session;
use super::symbols::{lookup, Handler, Kind};
use super::upcall;

/// Answers one CallWrapper: the Result payload for `args` sent to `tag`.
pub(crate) fn call(session: &mut Session, seqno: u64, tag: u64, args: &[u8]) -> Vec<u8> {
    let Some((index, symbol)) = lookup(tag) else {
        return call_jit_wrapper(session, seqno, tag, args);
    };
    session.stats.calls[index] += 1;
    let (shape, outcome) = match symbol.kind {
        Kind::Wrapper {
            handler: Handler::RunsCode(handler),
            shape,
        } => (
            shape,
            upcall::lend(session, || guarded(symbol.name, || handler(args))),
        ),
        Kind::Wrapper { handler, shape } => (
            shape,
            upcall::withhold(session, |session| {
                guarded(symbol.name, || match handler {
                    Handler::Stateless(handler) | Handler::RunsCode(handler) => handler(args),
                    Handler::Memory(handler) => {
                        handler(&mut session.memory, &mut session.stats.memory, args)
                    }
                    Handler::SharedMemory(handler) => handler(
                        &mut session.shared_memory,
                        &mut session.stats.shared_memory,
                        args,
                    ),
                    Handler::Dylibs(handler) => handler(&mut session.dylibs, args),
                })
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
        Kind::DispatchFn | Kind::DispatchCtx | Kind::Data(_) => (
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

/// Calls the wrapper function in JIT'd code at `tag` (the ORC runtime's entry points). Its
/// result bytes are the reply as they are; a tag that is not code (a protocol error) or an
/// out-of-band error is answered with an SPS `Error` (the protocol cannot carry out-of-band
/// errors).
fn call_jit_wrapper(session: &mut Session, seqno: u64, tag: u64, args: &[u8]) -> Vec<u8> {
    const NAME: &str = "wrapper in JIT'd code";
    session.stats.jit_wrapper_calls += 1;
    let outcome = upcall::lend(session, || {
        guarded(NAME, || match cabi::call_wrapper(tag, args) {
            None => Err(Failure::protocol(format_args!(
                "no wrapper function at tag {tag:#x}"
            ))),
            Some(result) => result.map_err(|m| Failure::rejected(format_args!("{m}"))),
        })
    });
    match outcome {
        Ok(reply) => {
            session.log.trace(format_args!(
                "#{seqno} {NAME} {tag:#x}: {} bytes in, {} bytes out",
                args.len(),
                reply.len()
            ));
            reply
        }
        Err(failure) => failed(session, seqno, NAME, Shape::Error, &failure),
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
