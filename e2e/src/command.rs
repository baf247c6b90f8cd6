//! Running the user's tools (`kubectl`, `helm`, `ip netns exec ...`) and
//! keeping what they said, so a failing assertion can show it.

use std::{
    io::Write,
    process::{Command, Stdio},
};

use anyhow::{Context, Result};

/// What a finished command printed and how it exited.
#[derive(Debug, Clone)]
pub struct CommandOutput {
    /// The command line, for messages.
    pub command: String,
    /// Whether it exited 0.
    pub success: bool,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl CommandOutput {
    /// Fails with the whole transcript unless the command exited 0.
    pub fn ok(self) -> Result<Self> {
        anyhow::ensure!(self.success, "`{}` failed:\n{}{}", self.command, self.stdout, self.stderr);
        Ok(self)
    }

    /// Fails with the whole transcript unless the command exited non-zero.
    pub fn refused(self) -> Result<Self> {
        anyhow::ensure!(!self.success, "`{}` should have failed but printed:\n{}", self.command, self.stdout);
        Ok(self)
    }
}

/// Runs `command`, feeding it `stdin` when given, and collects its output.
pub fn run(mut command: Command, stdin: Option<&str>) -> Result<CommandOutput> {
    let line = format!("{command:?}");
    command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().with_context(|| format!("cannot start {line}"))?;
    if let Some(input) = stdin {
        // Taking the pipe closes it when dropped, so the child sees end of input.
        let mut pipe = child.stdin.take().context("stdin was requested as a pipe")?;
        pipe.write_all(input.as_bytes()).with_context(|| format!("cannot write the input of {line}"))?;
    }
    let output = child.wait_with_output().with_context(|| format!("cannot wait for {line}"))?;
    Ok(CommandOutput {
        command: line,
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}
