//! Lab daemons as processes: found by the PID file the lab wrote for them, checked to be the
//! program expected (a stale file must not make a test read, or signal, another process), and
//! the CPU time they used, from `/proc`.

use std::sync::OnceLock;

use anyhow::{Context, Result, ensure};

use crate::Lab;

/// A running lab daemon (`e2e/.lab/pids/<name>.pid`).
#[derive(Clone, Debug)]
pub struct Daemon {
    /// The daemon's name, e.g. `speaker-ironlb-node-1`.
    pub name: String,
    /// Its PID.
    pub pid: u32,
}

impl Daemon {
    /// Daemon `name`, by its PID file (`<pid> <start time>`), checked to run `program`.
    pub fn of(lab: &Lab, name: &str, program: &str) -> Result<Self> {
        let file = lab.root().join(format!("e2e/.lab/pids/{name}.pid"));
        let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        let pid: u32 = text.split_whitespace().next().context("an empty PID file")?.parse()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).with_context(|| format!("{name} ({pid})"))?;
        ensure!(
            String::from_utf8_lossy(&cmdline).contains(program),
            "PID {pid} of {} is not an {program}",
            file.display()
        );
        Ok(Self { name: name.to_owned(), pid })
    }

    /// User plus system CPU time the process has used, in seconds.
    pub fn cpu_seconds(&self) -> Result<f64> {
        cpu_seconds(self.pid)
    }
}

/// User plus system CPU time process `pid` has used, in seconds (`/proc/<pid>/stat` fields 14
/// and 15, in clock ticks).
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces and parentheses; the fields after its last ')' are plain.
    let fields: Vec<&str> = stat.rsplit_once(')').context("a malformed stat")?.1.split_whitespace().collect();
    let ticks = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(ticks as f64 / clock_ticks_per_second()?)
}

/// `sysconf(_SC_CLK_TCK)`, the unit of the CPU times in `/proc/<pid>/stat`.
fn clock_ticks_per_second() -> Result<f64> {
    static TICKS: OnceLock<f64> = OnceLock::new();
    if let Some(ticks) = TICKS.get() {
        return Ok(*ticks);
    }
    let output = std::process::Command::new("getconf").arg("CLK_TCK").output().context("running getconf")?;
    let ticks: f64 = String::from_utf8_lossy(&output.stdout).trim().parse().context("getconf CLK_TCK")?;
    Ok(*TICKS.get_or_init(|| ticks))
}
