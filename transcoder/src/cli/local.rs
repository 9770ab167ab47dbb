//! `transcoder local IN_FILE OUT_DIR`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::progress_view::ProgressView;
use super::{report_failure, JobArgs, EXIT_DONE};
use crate::job::{run_local, LocalJob};

/// Arguments of `transcoder local`.
#[derive(Debug, Args)]
pub struct LocalArgs {
    /// The source video.
    pub input: PathBuf,
    /// The output folder: master.m3u8, one folder per rung, poster.jpg, manifest.json.
    pub out_dir: PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub job: JobArgs,
}

/// Runs the job, showing progress on stdout.
pub async fn run(args: LocalArgs) -> ExitCode {
    let job = LocalJob {
        input: args.input,
        out_dir: args.out_dir,
        settings: args.job.settings(),
        limits: args.job.limits.limits(),
    };
    let view = ProgressView::new();
    let result = run_local(&job, &|event| view.show(&event)).await;
    view.finish();
    match result {
        Ok(manifest) => {
            let names: Vec<&str> = manifest
                .renditions
                .iter()
                .map(|r| r.name.as_str())
                .collect();
            let master = job.out_dir.join("master.m3u8");
            println!(
                "done: {} ({} s, {})",
                master.display(),
                manifest
                    .duration_s
                    .map_or("?".into(), |d| format!("{d:.1}")),
                names.join(" ")
            );
            println!("play: ffplay {}", master.display());
            ExitCode::from(EXIT_DONE)
        }
        Err((_, error)) => report_failure(error.kind(), &error.to_string()),
    }
}
