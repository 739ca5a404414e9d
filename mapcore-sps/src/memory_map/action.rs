//! Wire alloc actions stored as mapcore actions.
//!
//! A wire action names a foreign function by address, while a mapcore
//! [`Action`](mapcore::Action) is a Rust function (with an optional context word) plus at most
//! [`MAX_ACTION_ARGS`](mapcore::MAX_ACTION_ARGS) argument bytes. Decoding therefore hands the
//! caller the stored arguments of every wire action, to make its *trampoline* action from
//! ([`MakeAction`]):
//!
//! | Bytes | Content |
//! |---|---|
//! | 0..8 | the foreign function's address, little-endian |
//! | 8.. | the wire arguments, at most [`MAX_WIRE_ACTION_ARGS`] bytes |
//!
//! and the trampoline splits them with [`split_wire_action`] and makes the call.

use heapless::Vec;
use mapcore::{Action, ArgsTooLong, MAX_ACTION_ARGS};

/// How a decoder turns a wire action into a mapcore [`Action`]: given the stored arguments
/// (the function address, then the wire arguments), the caller's trampoline action, for
/// example `|stored| Action::new(trampoline, stored)`, or [`Action::with_context`] to reach
/// the caller's own state.
pub trait MakeAction: Fn(&[u8]) -> Result<Action, ArgsTooLong> {}

impl<F: Fn(&[u8]) -> Result<Action, ArgsTooLong>> MakeAction for F {}

/// Bytes a wire action's function address takes at the front of its [`Action`] arguments.
const FN_LEN: usize = 8;

/// Most argument bytes a wire action may carry: mapcore's
/// [`MAX_ACTION_ARGS`](mapcore::MAX_ACTION_ARGS) minus the 8-byte function address stored in
/// front of them. An EH-frame action's `ExecutorAddrRange` takes 16.
pub const MAX_WIRE_ACTION_ARGS: usize = MAX_ACTION_ARGS - FN_LEN;

/// Splits the arguments of a decoded wire action into the foreign function's address and the
/// wire argument bytes; for the trampoline. `None` if `args` is shorter than 8 bytes.
#[must_use]
pub fn split_wire_action(args: &[u8]) -> Option<(u64, &[u8])> {
    let (addr, rest) = args.split_first_chunk::<FN_LEN>()?;
    Some((u64::from_le_bytes(*addr), rest))
}

/// The action `make` makes for the wire action `func(args)`; `None` if `args` is longer than
/// [`MAX_WIRE_ACTION_ARGS`].
pub(super) fn wire_action(make: &impl MakeAction, func: u64, args: &[u8]) -> Option<Action> {
    let mut stored = Vec::<u8, MAX_ACTION_ARGS>::new();
    stored.extend_from_slice(&func.to_le_bytes()).ok()?;
    stored.extend_from_slice(args).ok()?;
    make(&stored).ok()
}

#[cfg(test)]
mod tests {
    use mapcore::ActionError;

    use super::*;

    fn nothing(_: &[u8]) -> Result<(), ActionError> {
        Ok(())
    }

    fn make(stored: &[u8]) -> Result<Action, ArgsTooLong> {
        Action::new(nothing, stored)
    }

    #[test]
    fn split_wire_action_needs_eight_bytes() {
        assert_eq!(split_wire_action(&[1, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(
            split_wire_action(&[1, 0, 0, 0, 0, 0, 0, 0]),
            Some((1, &[][..]))
        );
        assert_eq!(
            split_wire_action(&[2, 0, 0, 0, 0, 0, 0, 0, 9]),
            Some((2, &[9][..]))
        );
    }

    #[test]
    fn stored_arguments_split_back_into_address_and_wire_arguments() {
        let args = [7u8; MAX_WIRE_ACTION_ARGS];
        let action = wire_action(&make, 0x5601_0000_1000, &args).unwrap();
        assert_eq!(action.args().len(), MAX_ACTION_ARGS);
        assert_eq!(
            split_wire_action(action.args()),
            Some((0x5601_0000_1000, &args[..]))
        );
        assert!(wire_action(&make, 1, &[7; MAX_WIRE_ACTION_ARGS + 1]).is_none());
        let empty = wire_action(&make, 1, &[]).unwrap();
        assert_eq!(split_wire_action(empty.args()), Some((1, &[][..])));
    }
}
