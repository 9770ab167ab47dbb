//! What both early publishers share (a single pass's `live`, a split job's coordinator): the
//! moment a stream becomes playable, and taking everything back after a failure.

use super::retry::with_retries;
use super::{Destination, MANIFEST, MASTER_PLAYLIST};
use crate::config::SegmentFormat;
use crate::encode::{audio_tracks, MEDIA_PLAYLIST};
use crate::hls::{AudioRendition, MasterLayout};
use crate::ladder::Rung;
use crate::manifest::Manifest;
use crate::storage::{ObjectKind, OutputSink};
use crate::transcode::{JobError, JobEvent, Prepared};

/// MPEG-TS and PES headers over the raw bitrates.
const CONTAINER_OVERHEAD: f64 = 1.10;

/// A rung's BANDWIDTH before it is measured: its caps (video maxrate, plus audio) and the
/// container's overhead. The final master replaces it with the measured peak.
pub fn estimated_bandwidth(rung: &Rung, with_audio: bool) -> u64 {
    let kbps = rung.maxrate_kbps + if with_audio { rung.audio_kbps } else { 0 };
    (f64::from(kbps) * 1000.0 * CONTAINER_OVERHEAD).ceil() as u64
}

/// An audio rendition's bandwidth before it is measured: the bitrate asked for, with the
/// same margin.
pub fn estimated_audio_bandwidth(kbps: u32) -> u64 {
    (f64::from(kbps) * 1000.0 * CONTAINER_OVERHEAD).ceil() as u64
}

/// How the master lays out its variants before anything is measured: a CMAF job's audio
/// tracks as renditions, with bandwidths from the bitrate asked for, as the rungs' are from
/// their caps. Subtitles and I-frame playlists are written after the encode, so the final
/// master has them.
pub fn early_layout(prepared: &Prepared, segments: SegmentFormat) -> MasterLayout {
    match segments {
        SegmentFormat::Ts => MasterLayout::Muxed,
        SegmentFormat::Cmaf => {
            let estimate = estimated_audio_bandwidth(prepared.ladder[0].audio_kbps);
            let audio = audio_tracks(&prepared.source)
                .into_iter()
                .map(|t| AudioRendition {
                    uri: format!("{}/{MEDIA_PLAYLIST}", t.folder),
                    name: t.name,
                    language: t.stream.language,
                    default: t.default,
                    bandwidth: estimate,
                    average_bandwidth: estimate,
                })
                .collect();
            MasterLayout::Cmaf {
                audio,
                subtitles: Vec::new(),
                iframes: Vec::new(),
            }
        }
    }
}

/// Publishes the first master playlist (every playlist it names is up; see
/// `versions::Destination` for where it goes), records in the manifest that the stream is
/// playable, and tells the caller.
pub async fn announce_playable<S: OutputSink + Clone>(
    dest: &Destination<S>,
    master: Vec<u8>,
    record: &mut Manifest,
    events: &(dyn Fn(JobEvent) + Send + Sync),
) -> Result<(), JobError> {
    dest.put_early_master(&master).await?;
    let early = dest.early_master();
    *record = record.clone().playable(&early);
    tracing::info!(
        seconds = record.seconds_to_playable(),
        "playable: first master playlist published"
    );
    let json = record.to_json();
    let root = dest.root();
    with_retries(MANIFEST, || {
        root.put_bytes(MANIFEST, json.clone(), ObjectKind::Json)
    })
    .await?;
    events(JobEvent::Playable {
        master: root.locate(&early),
    });
    Ok(())
}

/// After a failure: removes `published` (names in the version folder), the masters first, then
/// playlists, then segments, so that no player starts a stream that will never end or has a
/// hole, and no orphan object stays. Best effort: what stays is deleted with the version
/// when a later job on the prefix retires it.
pub async fn retract<S: OutputSink + Clone>(dest: &Destination<S>, published: &[&String]) {
    dest.withdraw_stable_master().await;
    let sink = dest.version();
    let mut names = published.to_vec();
    names.sort_by_key(|n| {
        (
            n.as_str() != MASTER_PLAYLIST,
            !n.ends_with(".m3u8"),
            n.as_str(),
        )
    });
    names.dedup();
    for name in names {
        if let Err(error) = sink.delete(name).await {
            tracing::warn!(object = %name, %error, "could not remove a published object");
        }
    }
}
