//! What benchmarks and load tools read of a process from `/proc`: its
//! memory and the CPU time it has used. Linux only; elsewhere each reads
//! as 0.

/// A memory figure of process `pid` (`"self"` for this one) from
/// `/proc/<pid>/status`, MiB: `"VmRSS:"` (resident now) or `"VmHWM:"`
/// (its peak).
pub fn memory_mib(pid: &str, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Resets this process's peak (`VmHWM`) to its resident memory now, so a
/// later peak is that of what ran since.
pub fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// CPU seconds (user + system) process `pid` has used, from
/// `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The fields after the command name (which may hold spaces) start at
    // field 3; utime and stime are fields 14 and 15, in clock ticks.
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_and_has_used_cpu() {
        assert!(memory_mib("self", "VmRSS:") > 0.0);
        assert!(memory_mib("self", "VmHWM:") >= memory_mib("self", "VmRSS:") * 0.5);
        let spin = std::time::Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < std::time::Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(cpu_seconds("self") > 0.0);
        assert_eq!(memory_mib("self", "NoSuchField:"), 0.0);
        assert_eq!(cpu_seconds("0"), 0.0, "no process 0 in /proc");
    }
}
