//! CPU time of a process: all its threads, those that have exited too.

use std::time::Duration;

/// The CPU clock of one process (`clock_getcpuclockid`), read from outside
/// it with nanosecond resolution; or, where the kernel refuses that clock,
/// `utime + stime` of `/proc/<pid>/stat` (clock ticks, usually 10 ms).
pub struct ProcessCpu {
    pid: u32,
    clock: Option<libc::clockid_t>,
}

impl ProcessCpu {
    pub fn of(pid: u32) -> Self {
        let mut clock: libc::clockid_t = 0;
        // SAFETY: `clock` is a valid out pointer for the call.
        let rc = unsafe { libc::clock_getcpuclockid(pid as libc::pid_t, &mut clock) };
        let clock = (rc == 0).then_some(clock);
        let cpu = Self { pid, clock };
        // Checked once: the clock must be readable, else use /proc.
        match cpu.clock {
            Some(id) if read_clock(id).is_some() => cpu,
            _ => Self { pid, clock: None },
        }
    }

    /// Whether the reading has nanosecond resolution.
    pub fn precise(&self) -> bool {
        self.clock.is_some()
    }

    /// CPU time used so far, user and system.
    pub fn read(&self) -> Option<Duration> {
        match self.clock {
            Some(id) => read_clock(id),
            None => proc_stat_cpu(self.pid),
        }
    }
}

/// This process's own CPU time, all threads (`CLOCK_PROCESS_CPUTIME_ID`).
#[allow(dead_code)] // used by sdk-floor
pub fn own() -> Duration {
    read_clock(libc::CLOCK_PROCESS_CPUTIME_ID).unwrap_or_default()
}

fn read_clock(id: libc::clockid_t) -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out pointer for the call.
    let rc = unsafe { libc::clock_gettime(id, &mut ts) };
    (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// `utime + stime` (fields 14 and 15) of `/proc/<pid>/stat`.
fn proc_stat_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count after its ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_nanos(
        (utime + stime) * 1_000_000_000 / ticks,
    ))
}
