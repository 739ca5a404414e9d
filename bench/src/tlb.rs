//! TLB shootdowns the kernel has handled, from the `TLB` line of `/proc/interrupts`: the
//! flush requests (IPIs) each CPU has received from another, summed over CPUs. The count is
//! system-wide: other processes' shootdowns count too, so readers take differences over a
//! run and compare them with the background rate.

/// The total of the `TLB:` line over every CPU, or `None` if the kernel shows no such line
/// (not x86, or `/proc` not mounted).
pub(crate) fn shootdowns() -> Option<u64> {
    parse(&std::fs::read_to_string("/proc/interrupts").ok()?)
}

/// The sum of the per-CPU counts on the `TLB:` line of `/proc/interrupts` text.
fn parse(text: &str) -> Option<u64> {
    let line = text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("TLB:"))?;
    Some(
        line.split_whitespace()
            .map_while(|field| field.parse::<u64>().ok())
            .sum(),
    )
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn sums_the_tlb_line_over_cpus() {
        let text = "           CPU0       CPU1\n\
                    \x20 0:         44          0   IO-APIC   2-edge      timer\n\
                    \x20TLB:    2002071    2028748   TLB shootdowns\n\
                    \x20TRM:          0          0   Thermal event interrupts\n";
        assert_eq!(parse(text), Some(4_030_819));
        assert_eq!(parse("CPU0\n 0: 1 timer\n"), None);
    }
}
