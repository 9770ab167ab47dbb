//! `transcoder preview OUT_DIR|s3://BUCKET/PREFIX/`: serves, on loopback, a page that plays
//! an output with hls.js and dash.js (see `preview`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::cannot_start;
use crate::preview::{self, Origin, PlayerScript, PlayerScripts, DASH_JS_CDN, HLS_JS_CDN};
use crate::storage::S3Prefix;

/// Arguments of `transcoder preview`.
#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// The output: a folder `local` wrote, or `s3://BUCKET/PREFIX/` of a job from S3 (read with
    /// the standard AWS environment).
    pub output: String,
    /// Where to listen: a loopback address (port 0 picks a free one). The page shows whatever
    /// the output holds, so it is never offered beyond this machine.
    #[arg(
        long,
        env = "TRANSCODER_PREVIEW_LISTEN",
        default_value = "127.0.0.1:8765"
    )]
    pub listen: SocketAddr,
    /// hls.js for the page: a URL, or a local `hls.min.js` to serve (no internet needed).
    #[arg(long, env = "TRANSCODER_PREVIEW_HLS_JS", default_value = HLS_JS_CDN)]
    pub hls_js: String,
    /// dash.js for the page: a URL, or a local `dash.all.min.js` (the UMD build) to serve.
    #[arg(long, env = "TRANSCODER_PREVIEW_DASH_JS", default_value = DASH_JS_CDN)]
    pub dash_js: String,
}

/// Serves until Ctrl-C or SIGTERM: exit 0; 1 when it cannot start.
pub async fn run(args: PreviewArgs) -> ExitCode {
    if !args.listen.ip().is_loopback() {
        return cannot_start(format!(
            "--listen {} is not a loopback address: the preview serves the output to anyone who can reach it",
            args.listen
        ));
    }
    let origin = if args.output.starts_with("s3://") {
        match S3Prefix::parse(&args.output) {
            Ok(prefix) => Origin::S3(crate::aws::Aws::from_env().await.s3.sink(prefix)),
            Err(error) => return cannot_start(error),
        }
    } else {
        let folder = PathBuf::from(&args.output);
        if !folder.join("master.m3u8").is_file() {
            return cannot_start(format!(
                "{} holds no master.m3u8: give a folder `transcoder local` wrote",
                folder.display()
            ));
        }
        Origin::Folder(folder)
    };
    let scripts = PlayerScripts {
        hls: PlayerScript::parse(&args.hls_js),
        dash: PlayerScript::parse(&args.dash_js),
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(error) => return cannot_start(format!("cannot listen on {}: {error}", args.listen)),
    };
    let address = listener.local_addr().map_or(args.listen, |a| a);
    println!("preview: http://{address}/ (hls.js; add ?player=dash for dash.js)");
    match preview::serve(listener, origin, scripts, super::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => cannot_start(format!("the preview stopped: {error}")),
    }
}
