//! Catching the MPU's faults, so that a check can see a protection at work.
//!
//! The MemManage handler records what faulted and switches the MPU off, so that the faulting
//! access or instruction fetch is retried on return and completes under the default memory
//! map; [`watch`] switches the MPU back on once the watched code has run.
//!
//! # Safety
//!
//! The handler and [`watch`] reach the SCB's fault registers and the MPU's `CTRL` through the
//! cortex-m crate's fixed register addresses, besides the owners of those peripherals. They
//! change only what no owner keeps state about: the MemManage status bits (write one to clear)
//! and `CTRL.ENABLE`, which `ArenaHost` writes only when it is created, before any fault.
#![expect(
    unsafe_code,
    reason = "a fault handler reaches the SCB and MPU registers by their addresses"
)]

use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::asm::{dsb, isb};
use cortex_m::peripheral::scb::Exception;
use cortex_m::peripheral::{MPU, SCB};
use cortex_m_rt::exception;

// MemManage Fault Status Register bits, the low byte of CFSR.
const MMFSR: u32 = 0xff;
const IACCVIOL: u32 = 1 << 0;
const DACCVIOL: u32 = 1 << 1;
const MMARVALID: u32 = 1 << 7;
const MPU_CTRL_ENABLE: u32 = 1;

/// The MMFSR of the last fault since [`watch`] started, 0 for none.
static STATUS: AtomicU32 = AtomicU32::new(0);
/// The MMFAR of the last fault: the faulting data address when `MMARVALID` is set.
static ADDRESS: AtomicU32 = AtomicU32::new(0);

/// A refused access, as the MemManage handler saw it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// A data access at this address.
    Data(usize),
    /// An instruction fetch.
    Fetch,
    /// Another status (the raw MMFSR).
    Other(u32),
}

impl fmt::Debug for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Data(addr) => write!(f, "MemManage fault: data access at {addr:#x}"),
            Self::Fetch => f.write_str("MemManage fault: instruction fetch"),
            Self::Other(status) => write!(f, "MemManage fault: MMFSR {status:#04x}"),
        }
    }
}

/// What a watched access caused, for printing: a fault, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen(pub(crate) Option<Fault>);

impl fmt::Display for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(fault) => write!(f, "{fault:?}"),
            None => f.write_str("no fault"),
        }
    }
}

/// Enables the MemManage exception, so that an MPU fault reaches [`MemoryManagement`] instead
/// of escalating to HardFault.
pub(crate) fn enable(scb: &mut SCB) {
    scb.enable(Exception::MemoryManagement);
}

/// Runs `f` and returns its result with the MPU fault it caused, if any; the MPU is on again
/// afterwards.
pub(crate) fn watch<R>(f: impl FnOnce() -> R) -> (R, Option<Fault>) {
    STATUS.store(0, Ordering::SeqCst);
    let result = f();
    let status = STATUS.swap(0, Ordering::SeqCst);
    if status == 0 {
        return (result, None);
    }
    // SAFETY: sets back the one bit the handler cleared (see the module's safety note); the
    // regions are as the host last wrote them.
    unsafe { (*MPU::PTR).ctrl.modify(|ctrl| ctrl | MPU_CTRL_ENABLE) };
    dsb();
    isb();
    let fault = if status & DACCVIOL != 0 && status & MMARVALID != 0 {
        Fault::Data(ADDRESS.load(Ordering::SeqCst) as usize)
    } else if status & IACCVIOL != 0 {
        Fault::Fetch
    } else {
        Fault::Other(status)
    };
    (result, Some(fault))
}

#[exception]
fn MemoryManagement() {
    // SAFETY: the SCB's registers are always mapped; see the module's safety note.
    let scb = unsafe { &*SCB::PTR };
    let status = scb.cfsr.read() & MMFSR;
    ADDRESS.store(scb.mmfar.read(), Ordering::SeqCst);
    // SAFETY: writing ones clears exactly the MemManage status bits just read.
    unsafe { scb.cfsr.write(status) };
    STATUS.store(status, Ordering::SeqCst);
    // SAFETY: clears `CTRL.ENABLE` only (see the module's safety note), so that the faulting
    // access is retried under the default memory map and completes.
    unsafe { (*MPU::PTR).ctrl.modify(|ctrl| ctrl & !MPU_CTRL_ENABLE) };
    dsb();
    isb();
}
