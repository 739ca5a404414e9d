//! Actions that append their tag to a per-thread log and fail when told to.
//!
//! An [`ActionFn`](mapcore::ActionFn) is a plain function pointer, so the tag and the failure
//! flag travel in the argument bytes: four little-endian tag bytes, then one flag byte.

use std::cell::RefCell;

use mapcore::{Action, ActionError};

use crate::model::ActSpec;

thread_local! {
    static LOG: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// Error code for arguments that do not decode (never expected).
pub const UNDECODABLE: i32 = -1;

fn logged(args: &[u8]) -> Result<(), ActionError> {
    let [a, b, c, d, fail] = *args else {
        return Err(ActionError::new(UNDECODABLE));
    };
    let tag = u32::from_le_bytes([a, b, c, d]);
    LOG.with(|log| log.borrow_mut().push(tag));
    if fail != 0 {
        Err(ActionError::new(tag as i32))
    } else {
        Ok(())
    }
}

/// The action for `spec`: logs `spec.tag`, fails with code `spec.tag` if `spec.fail`.
#[must_use]
pub fn action(spec: ActSpec) -> Action {
    let mut args = [0u8; 5];
    args[..4].copy_from_slice(&spec.tag.to_le_bytes());
    args[4] = u8::from(spec.fail);
    match Action::new(logged, &args) {
        Ok(action) => action,
        Err(e) => panic!("5 argument bytes must fit: {e}"),
    }
}

/// Takes this thread's log, leaving it empty.
#[must_use]
pub fn take_log() -> Vec<u32> {
    LOG.with(|log| std::mem::take(&mut *log.borrow_mut()))
}
