//! Whether an address is executable code in this process, from `/proc/self/maps`.
//!
//! The controller names code to run (a JIT'd `main`, a foreign alloc action); checking that
//! the address lies in an executable mapping turns a garbage address into an error reply
//! instead of a crash. It cannot tell good code from bad: past this check, running what the
//! controller names is the protocol's purpose.
//!
//! Only user space counts: the maps list the kernel's x86-64 vsyscall page
//! (`ffffffffff600000-ffffffffff601000 --xp ... [vsyscall]`) as executable, but a call into it
//! anywhere but its entry points kills the process, and an entry point is no JIT'd function.

/// The end of user space: addresses at or above it belong to the kernel. It is the most the
/// kernel hands out to a process on the architecture, with its widest page tables (x86-64
/// five-level paging: 56 bits; aarch64 52-bit virtual addresses); kernel addresses lie far
/// above.
#[cfg(target_arch = "x86_64")]
const USER_SPACE_END: u64 = 1 << 56;
#[cfg(target_arch = "aarch64")]
const USER_SPACE_END: u64 = 1 << 52;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("mapcore-executor: say where user space ends on this architecture");

/// Whether `addr` is a user-space address in a mapping with execute permission.
pub(crate) fn is_executable(addr: u64) -> bool {
    if addr == 0 || addr >= USER_SPACE_END {
        return false;
    }
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return false;
    };
    maps.lines().any(|line| covers_executable(line, addr))
}

/// Whether one `/proc/<pid>/maps` line (`start-end perms ...`) is an executable mapping that
/// contains `addr`.
fn covers_executable(line: &str, addr: u64) -> bool {
    let mut fields = line.split_ascii_whitespace();
    let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
        return false;
    };
    let Some((start, end)) = range.split_once('-') else {
        return false;
    };
    let (Ok(start), Ok(end)) = (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
    else {
        return false;
    };
    perms.as_bytes().get(2) == Some(&b'x') && (start..end).contains(&addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_maps_lines() {
        let line = "7f00a000-7f00c000 r-xp 00000000 00:00 0   [anon]";
        assert!(covers_executable(line, 0x7f00_a000));
        assert!(covers_executable(line, 0x7f00_bfff));
        assert!(!covers_executable(line, 0x7f00_c000));
        assert!(!covers_executable(
            "7f00a000-7f00c000 rw-p 0 0 0",
            0x7f00_a000
        ));
        assert!(!covers_executable("garbage", 1));
    }

    #[test]
    fn kernel_addresses_are_never_code() {
        // The vsyscall page is listed executable where the kernel provides it.
        let vsyscall = 0xffff_ffff_ff60_0000;
        let line = "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0  [vsyscall]";
        assert!(covers_executable(line, vsyscall));
        assert!(!is_executable(vsyscall));
        assert!(!is_executable(USER_SPACE_END));
        assert!(!is_executable(u64::MAX));
    }

    #[test]
    fn own_code_is_executable_and_data_is_not() {
        let code = parses_maps_lines as fn() as usize as u64;
        assert!(is_executable(code));
        // Heap and stack data: a `static` may share the read-execute segment with the code
        // (GNU ld on aarch64 puts .rodata there; only x86 links with -z separate-code).
        let heap = Box::new(0u8);
        assert!(!is_executable(std::ptr::from_ref(&*heap).addr() as u64));
        let stack = 0u8;
        assert!(!is_executable(std::ptr::from_ref(&stack).addr() as u64));
        assert!(!is_executable(0));
        assert!(!is_executable(8));
    }
}
