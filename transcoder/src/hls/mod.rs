//! HLS facts measured from what ffmpeg wrote: real segment bitrates, the real H.264
//! profile/level, the master playlist built from them, and media playlists while they grow.

mod codecs;
mod iframes;
mod master;
mod measure;
mod media;

pub use codecs::{
    avc1_codec_string, find_sps, init_codec_string, rung_codec_string, video_codec_string, AAC_LC,
};
pub use iframes::{first_frame_end, iframes_of, render_iframe_playlist, IFrame, IFRAME_PLAYLIST};
pub use master::{
    render_master, AudioRendition, IFrameVariant, MasterLayout, SubtitleRendition, Variant,
};
pub use measure::{measure_rendition, peak_segment_bitrate, RenditionStats, SegmentSample};
pub use media::{finalize_vod_playlist, read_media_playlist, render_event_playlist};

/// Why our own output could not be read back. Always our fault, never the source's.
#[derive(Debug, thiserror::Error)]
pub enum HlsError {
    /// A file we wrote could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// ffmpeg wrote a playlist we cannot parse.
    #[error("{path} is not a media playlist: {detail}")]
    Playlist {
        /// The playlist.
        path: String,
        /// The parser's complaint.
        detail: String,
    },
    /// A rendition with no segments at all.
    #[error("{path} lists no segments")]
    Empty {
        /// The playlist.
        path: String,
    },
    /// No sequence parameter set in the first segment.
    #[error("no H.264 SPS in {path}")]
    NoSps {
        /// The segment.
        path: String,
    },
}
