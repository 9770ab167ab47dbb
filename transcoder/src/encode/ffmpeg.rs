//! Running ffmpeg: progress from stdout, a bounded stderr tail for the error, and a process
//! that dies with us (`crate::child`), so neither a cancelled job nor a killed transcoder
//! leaves an encoder running.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::child::{killing_signal, tool_command};

/// Lines of stderr kept for the error message: enough to see why, bounded whatever a hostile
/// file makes the decoder print.
const STDERR_TAIL_LINES: usize = 20;
const STDERR_LINE_MAX: usize = 300;

/// How an ffmpeg run ended, when not in success.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The binary could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program we tried to run.
        program: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// ffmpeg exited with an error, or was killed by a signal.
    #[error("ffmpeg {}: {stderr_tail}", match (code, signal) {
        (Some(c), _) => format!("exited with code {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        (None, None) => "ended without an exit code".to_string(),
    })]
    Exited {
        /// The exit code (`None` when a signal ended it).
        code: Option<i32>,
        /// The signal that ended it: an OOM kill is SIGKILL (9).
        signal: Option<i32>,
        /// The last lines ffmpeg printed on stderr.
        stderr_tail: String,
    },
    /// Reading its output failed.
    #[error("reading ffmpeg output: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs `program args` in `cwd`, handing every stdout line to `on_line`.
pub async fn run(
    program: &Path,
    args: &[OsString],
    cwd: &Path,
    mut on_line: impl FnMut(&str),
) -> Result<(), RunError> {
    let mut child = tool_command(program)
        .args(args)
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| RunError::Spawn {
            program: program.display().to_string(),
            source,
        })?;

    // stderr is drained in its own task so a chatty decoder can never fill the pipe and stall
    // ffmpeg while we wait on stdout.
    let stderr = child.stderr.take().expect("stderr is piped");
    let tail = tokio::spawn(read_tail(stderr));

    let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
    while let Some(line) = lines.next_line().await? {
        on_line(&line);
    }
    let status = child.wait().await?;
    let stderr_tail = tail.await.unwrap_or_default();
    if status.success() {
        Ok(())
    } else {
        Err(RunError::Exited {
            code: status.code(),
            signal: killing_signal(&status),
            stderr_tail,
        })
    }
}

async fn read_tail(stream: impl AsyncRead + Unpin) -> String {
    let mut tail = VecDeque::with_capacity(STDERR_TAIL_LINES);
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if tail.len() == STDERR_TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line.chars().take(STDERR_LINE_MAX).collect::<String>());
    }
    Vec::from(tail).join("\n")
}
