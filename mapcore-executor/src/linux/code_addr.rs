//! Whether an address is executable code in this process, from `/proc/self/maps`.
//!
//! The controller names code to run (a JIT'd `main`, a foreign alloc action); checking that
//! the address lies in an executable mapping turns a garbage address into an error reply
//! instead of a crash. It cannot tell good code from bad: past this check, running what the
//! controller names is the protocol's purpose.

/// Whether `addr` lies in a mapping with execute permission.
pub(crate) fn is_executable(addr: u64) -> bool {
    if addr == 0 {
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
