//! Running ffmpeg: progress from stdout, a bounded stderr tail for the error, and a process
//! that dies with us (`crate::child`), so neither a cancelled job nor a killed transcoder
//! leaves an encoder running.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::time::Instant;

use tokio_util::task::AbortOnDropHandle;

use crate::child::{killing_signal, tool_command};
use crate::input::SourceInput;

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
    /// The caller stopped it on what it printed (the output ran past what the source declares).
    #[error("ffmpeg was stopped: {reason}")]
    Stopped {
        /// Why.
        reason: String,
    },
    /// Its progress did not move for `seconds`: stopped.
    #[error("ffmpeg made no progress for {seconds} s and was stopped")]
    Stalled {
        /// The stall limit.
        seconds: u64,
    },
    /// It ran past its wall-time cap: stopped.
    #[error("ffmpeg ran longer than its {seconds} s limit and was stopped")]
    TimedOut {
        /// The cap.
        seconds: u64,
    },
    /// Reading its output failed.
    #[error("reading ffmpeg output: {0}")]
    Io(#[from] std::io::Error),
}

/// When a run is given up: no progress for `stall`, or `wall` in all.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// The longest time between two reports whose progress moved.
    pub stall: Duration,
    /// The longest run.
    pub wall: Duration,
}

/// What a line of ffmpeg's output means to the caller.
#[derive(Debug, Clone, PartialEq)]
pub enum LineVerdict {
    /// The progress moved.
    Moved,
    /// Nothing moved (a key we do not track, or the same position again).
    Same,
    /// Stop the run now, for this reason.
    Stop(String),
}

/// Runs `program args` in `cwd`, handing every stdout line to `on_line`, which answers whether
/// the progress moved or the run must stop, and feeding it `input` on stdin when that is a
/// stream. A run past its `deadlines` is killed (a stuck decoder must not hold a job, and its
/// message, for hours).
pub async fn run(
    program: &Path,
    args: &[OsString],
    cwd: &Path,
    input: Option<&SourceInput>,
    deadlines: Deadlines,
    mut on_line: impl FnMut(&str) -> LineVerdict,
) -> Result<(), RunError> {
    let mut child = tool_command(program)
        .args(args)
        .current_dir(cwd)
        .stdin(input.map_or_else(Stdio::null, SourceInput::stdin))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| RunError::Spawn {
            program: program.display().to_string(),
            source,
        })?;

    // The feeder stops with the run, whichever way it ends.
    let _feeding = input
        .and_then(|input| input.feed(&mut child))
        .map(AbortOnDropHandle::new);
    // stderr is drained in its own task so a chatty decoder can never fill the pipe and stall
    // ffmpeg while we wait on stdout.
    let stderr = child.stderr.take().expect("stderr is piped");
    let tail = tokio::spawn(read_tail(stderr));

    let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
    let started = Instant::now();
    let mut moved = started;
    loop {
        let stall_at = moved + deadlines.stall;
        let wall_at = started + deadlines.wall;
        match tokio::time::timeout_at(stall_at.min(wall_at), lines.next_line()).await {
            Ok(Ok(Some(line))) => match on_line(&line) {
                LineVerdict::Moved => moved = Instant::now(),
                LineVerdict::Same => {}
                LineVerdict::Stop(reason) => {
                    let _ = child.kill().await;
                    return Err(RunError::Stopped { reason });
                }
            },
            Ok(Ok(None)) => break,
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => {
                // kill() also waits: nothing of the run is left when we report it.
                let _ = child.kill().await;
                return Err(if Instant::now() >= wall_at {
                    RunError::TimedOut {
                        seconds: deadlines.wall.as_secs(),
                    }
                } else {
                    RunError::Stalled {
                        seconds: deadlines.stall.as_secs(),
                    }
                });
            }
        }
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A stand-in for ffmpeg: a shell script that prints `body`'s output as ffmpeg's stdout.
    fn fake_ffmpeg(dir: &Path, body: &str) -> std::path::PathBuf {
        let path = dir.join("ffmpeg");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn deadlines(stall_ms: u64, wall_ms: u64) -> Deadlines {
        Deadlines {
            stall: Duration::from_millis(stall_ms),
            wall: Duration::from_millis(wall_ms),
        }
    }

    /// Reads the pid the script wrote, and tells whether that process is gone.
    fn gone(dir: &Path) -> bool {
        let pid = std::fs::read_to_string(dir.join("pid")).unwrap();
        !Path::new(&format!("/proc/{}", pid.trim())).exists()
    }

    #[tokio::test]
    async fn a_run_whose_progress_stops_is_killed_as_stalled() {
        let dir = tempfile::tempdir().unwrap();
        // One report, then silence, as a decoder stuck on a crafted frame.
        let program = fake_ffmpeg(
            dir.path(),
            "echo $$ > pid\necho progress=continue\nexec sleep 600",
        );
        let started = std::time::Instant::now();
        let result = run(
            &program,
            &[],
            dir.path(),
            None,
            deadlines(300, 60_000),
            |_| LineVerdict::Moved,
        )
        .await;
        assert!(
            matches!(result, Err(RunError::Stalled { .. })),
            "{result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(gone(dir.path()), "the stalled ffmpeg still runs");
    }

    #[tokio::test]
    async fn output_that_moves_nothing_does_not_count_as_progress() {
        let dir = tempfile::tempdir().unwrap();
        // Lines keep coming, but the caller says none of them moved the progress.
        let program = fake_ffmpeg(
            dir.path(),
            "echo $$ > pid\nwhile true; do echo progress=continue; sleep 0.05; done",
        );
        let result = run(
            &program,
            &[],
            dir.path(),
            None,
            deadlines(300, 60_000),
            |_| LineVerdict::Same,
        )
        .await;
        assert!(
            matches!(result, Err(RunError::Stalled { .. })),
            "{result:?}"
        );
        assert!(gone(dir.path()));
    }

    #[tokio::test]
    async fn a_run_that_crawls_past_its_wall_time_is_killed_as_timed_out() {
        let dir = tempfile::tempdir().unwrap();
        let program = fake_ffmpeg(
            dir.path(),
            "echo $$ > pid\nwhile true; do echo progress=continue; sleep 0.05; done",
        );
        let result = run(&program, &[], dir.path(), None, deadlines(300, 700), |_| {
            LineVerdict::Moved
        })
        .await;
        assert!(
            matches!(result, Err(RunError::TimedOut { .. })),
            "{result:?}"
        );
        assert!(gone(dir.path()));
    }

    #[tokio::test]
    async fn the_caller_can_stop_a_run_on_what_it_prints() {
        let dir = tempfile::tempdir().unwrap();
        let program = fake_ffmpeg(
            dir.path(),
            "echo $$ > pid\nwhile true; do echo progress=continue; sleep 0.05; done",
        );
        let result = run(
            &program,
            &[],
            dir.path(),
            None,
            deadlines(60_000, 60_000),
            |_| LineVerdict::Stop("enough".into()),
        )
        .await;
        assert!(
            matches!(&result, Err(RunError::Stopped { reason }) if reason == "enough"),
            "{result:?}"
        );
        assert!(gone(dir.path()));
    }

    #[tokio::test]
    async fn a_run_that_keeps_moving_ends_as_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let program = fake_ffmpeg(
            dir.path(),
            "for i in 1 2 3 4 5 6; do echo progress=continue; sleep 0.1; done",
        );
        let mut seen = 0;
        let result = run(
            &program,
            &[],
            dir.path(),
            None,
            deadlines(300, 60_000),
            |_| {
                seen += 1;
                LineVerdict::Moved
            },
        )
        .await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(seen, 6);
    }
}
