//! `transcoder preview`: a page on loopback that plays one output with hls.js and with
//! dash.js, switches rung, audio and subtitles, shows the seek preview, and lists the rungs
//! with their bitrates. It reads the output where it is (a local folder or an S3 prefix) and
//! serves it under `/media/`; the page itself is `page.html`, built into the binary.

mod origin;
mod server;

pub use origin::{media_type, Origin};
pub use server::{serve, PlayerScript, PlayerScripts, DASH_JS_CDN, HLS_JS_CDN};
