//! Starting ffmpeg and ffprobe so that they never outlive the job that wanted them.
//!
//! `kill_on_drop` covers a job that is cancelled or fails while we run. It cannot cover our own
//! sudden death (SIGKILL, an OOM kill, a crash): then nothing of ours runs. An orphaned ffmpeg
//! usually dies at its next write into the closed progress pipe, but ffprobe writes nothing
//! until it ends, and a decoder stuck on a hostile frame writes nothing either; they would go
//! on burning the CPU the next job needs. On Linux the kernel can deliver
//! SIGKILL to the child when its parent dies (`PR_SET_PDEATHSIG`), which closes that gap.
//! Strictly, the signal comes when the *thread* that forked the child ends; tools are started
//! from tokio's worker threads, which live as long as the runtime, that is, the process.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// A command for `program` with no stdin, killed when dropped, and (on Linux) killed by the
/// kernel when this process dies.
pub fn tool_command(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(program);
    command.stdin(Stdio::null()).kill_on_drop(true);
    die_with_parent(&mut command);
    command
}

/// Starts `program -version` the way every job starts its tools, and says why it cannot. A
/// warm transcoder checks this before it serves: a server that answers SERVING but cannot start
/// ffprobe fails every job it is given while its health check stays green.
pub async fn check_tool(program: &Path) -> Result<(), ToolUnusable> {
    let unusable = |reason: String| ToolUnusable {
        program: program.display().to_string(),
        reason,
    };
    let run = tool_command(program)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match tokio::time::timeout(Duration::from_secs(30), run).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(unusable(format!("`-version` ended with {status}"))),
        Ok(Err(e)) => Err(unusable(e.to_string())),
        Err(_) => Err(unusable("`-version` did not answer in 30 s".into())),
    }
}

/// A tool that cannot be started, and why.
#[derive(Debug, thiserror::Error)]
#[error("cannot run {program}: {reason}")]
pub struct ToolUnusable {
    program: String,
    reason: String,
}

/// Words a tool prints when the machine, not the file, stopped it: a full disk, no memory, too
/// many files. Any of them in a failed run's stderr makes the failure ours to retry, whatever
/// decode errors came before it (ffmpeg on a full disk still ends on the decoder's last line).
const RESOURCE_FAILURES: &[&str] = &[
    "No space left on device",
    "Disk quota exceeded",
    "Cannot allocate memory",
    "Out of memory",
    "out of memory",
    "Too many open files",
];

/// True when a tool's stderr shows that the machine ran out of something.
pub fn ran_out_of_resources(stderr: &str) -> bool {
    RESOURCE_FAILURES.iter().any(|words| stderr.contains(words))
}

/// The signal that ended a process, if a signal did: an OOM kill (SIGKILL), a stop (SIGTERM),
/// a crash (SIGSEGV). Never evidence about the file: the next attempt may well succeed.
pub fn killing_signal(status: &std::process::ExitStatus) -> Option<i32> {
    #[cfg(unix)]
    {
        std::os::unix::process::ExitStatusExt::signal(status)
    }
    #[cfg(not(unix))]
    {
        let _ = status;
        None
    }
}

#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    // Read before the fork: the child compares its parent with this. "My parent is PID 1" is
    // no sign of a dead parent, because in a container *we* may be PID 1 (an image with no
    // init, or `unshare --pid`), and an orphan is re-parented to the nearest subreaper, which
    // need not be PID 1 either. Only "my parent is no longer the process that forked me" is.
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and only calls prctl(2) and
    // getppid(2), both async-signal-safe; it allocates nothing and takes no lock.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then no signal will come.
            // ESRCH ("no such process"), as a raw code: nothing may allocate here.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_command: &mut Command) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tool_that_starts_passes_and_one_that_does_not_says_why() {
        check_tool(Path::new("ffprobe")).await.unwrap();
        let missing = check_tool(Path::new("/nonexistent/ffprobe"))
            .await
            .unwrap_err();
        assert!(
            missing
                .to_string()
                .starts_with("cannot run /nonexistent/ffprobe: "),
            "{missing}"
        );
        let failing = check_tool(Path::new("false")).await.unwrap_err();
        assert!(failing.to_string().contains("ended with"), "{failing}");
    }
}
