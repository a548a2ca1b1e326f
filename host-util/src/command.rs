//! Running a `Command` so that a failure says exactly what ran and what it printed.

use std::process::{Command, Output, Stdio};

/// A command that could not start or exited non-zero.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("running {argv}: {source}")]
    Spawn {
        argv: String,
        #[source]
        source: std::io::Error,
    },
    #[error("running {argv}: {status}{}", stderr_suffix(.stderr))]
    Failed {
        argv: String,
        status: std::process::ExitStatus,
        /// The last KiB of stderr, trimmed.
        stderr: String,
    },
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

const STDERR_TAIL: usize = 1024;

/// Extension methods on `std::process::Command`: the one way this project runs tools.
pub trait CommandExt {
    /// Runs with stdin closed, captures output, and fails on a non-zero exit.
    fn run_checked(&mut self) -> Result<Output, CommandError>;
    /// Like `run_checked`, with `input` written to stdin (e.g. an sfdisk script).
    fn run_with_input(&mut self, input: &[u8]) -> Result<Output, CommandError>;
    /// Like `run_checked`, returning stdout as (lossy) UTF-8.
    fn run_stdout(&mut self) -> Result<String, CommandError>;
    /// The program and arguments, shell-quoted for messages.
    fn argv_string(&self) -> String;
}

impl CommandExt for Command {
    fn run_checked(&mut self) -> Result<Output, CommandError> {
        let argv = self.argv_string();
        let output = self
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .map_err(|source| CommandError::Spawn {
                argv: argv.clone(),
                source,
            })?;
        finish(argv, output)
    }

    fn run_with_input(&mut self, input: &[u8]) -> Result<Output, CommandError> {
        use std::io::Write as _;
        let argv = self.argv_string();
        let spawn_err = |source| CommandError::Spawn {
            argv: argv.clone(),
            source,
        };
        let mut child = self
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_err)?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        // A writer thread: the child may fill its output pipes before reading all of stdin.
        let input = input.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let output = child.wait_with_output().map_err(spawn_err)?;
        // A child that exits without reading everything breaks the pipe; its status says why.
        let _ = writer.join();
        finish(argv, output)
    }

    fn run_stdout(&mut self) -> Result<String, CommandError> {
        let out = self.run_checked()?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn argv_string(&self) -> String {
        argv_string(self)
    }
}

/// The output on success, else the error with the tail of stderr.
fn finish(argv: String, output: Output) -> Result<Output, CommandError> {
    if output.status.success() {
        return Ok(output);
    }
    let text = String::from_utf8_lossy(&output.stderr);
    let text = text.trim();
    let start = text.len().saturating_sub(STDERR_TAIL);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    Err(CommandError::Failed {
        argv,
        status: output.status,
        stderr: text[start..].replace('\n', " | "),
    })
}

fn argv_string(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| {
            let s = a.to_string_lossy();
            if !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
            {
                s.into_owned()
            } else {
                format!("'{}'", s.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_names_argv_and_stderr() {
        let err = Command::new("sh")
            .args(["-c", "echo boom >&2; exit 3"])
            .run_checked()
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("running sh -c 'echo boom >&2; exit 3'"), "{msg}");
        assert!(msg.ends_with(": boom"), "{msg}");
    }

    #[test]
    fn input_reaches_stdin_and_a_large_output_does_not_deadlock() {
        let input = "x".repeat(1 << 20);
        let out = Command::new("sh")
            .args(["-c", "cat; cat /proc/self/status >&2"])
            .run_with_input(input.as_bytes())
            .unwrap();
        assert_eq!(out.stdout.len(), 1 << 20);
        let err = Command::new("sh")
            .args(["-c", "read line; echo \"got $line\" >&2; exit 4"])
            .run_with_input(b"hello\n")
            .unwrap_err();
        assert!(err.to_string().ends_with(": got hello"), "{err}");
    }

    #[test]
    fn stdout_is_returned() {
        assert_eq!(Command::new("echo").arg("hi").run_stdout().unwrap(), "hi\n");
    }
}
