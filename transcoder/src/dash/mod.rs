//! The DASH view of a CMAF job: one `manifest.mpd` over the very segments the HLS playlists
//! name, so a DASH player and an HLS player read the same bytes.

mod mpd;

pub use mpd::{render_mpd, AudioSet, Presentation, TextSet, VideoRepresentation, MPD};
