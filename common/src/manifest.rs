//! `manifest.json`: the job's record, written when the job starts (`processing`) and when it
//! ends (`done`, `failed`, or `cancelled` when it was stopped first). Its schema is part of
//! docs/contract.md.

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The record's name at the output prefix.
pub const MANIFEST: &str = "manifest.json";

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Started, not finished.
    Processing,
    /// Every rendition and the master playlist are published.
    Done,
    /// Ended without output; `error` says why. For good when `invalid_input`; an `internal`
    /// failure is recorded so only when no queue message will bring the job back.
    Failed,
    /// Failed for a reason worth retrying (`error` says which); its queue message went back,
    /// and another delivery will try again.
    Retrying,
    /// Failed for a reason worth retrying on the queue message's last delivery: the queue
    /// moves it to the dead-letter queue, where it waits for a person.
    DeadLettered,
    /// Stopped before it finished (a stop, a drain that ran out, a caller that went away): its
    /// message went back to the queue, and the next attempt writes `processing` again.
    Cancelled,
}

/// Whether a failure is the source's fault (never retried) or ours (worth retrying).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The source can never be transcoded.
    InvalidInput,
    /// Anything else.
    Internal,
}

/// The source the job read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceRecord {
    /// S3 bucket; `null` for a local file.
    pub bucket: Option<String>,
    /// S3 key, or the local path.
    pub key: String,
    /// S3 ETag; `null` for a local file.
    pub etag: Option<String>,
    /// Size in bytes, when known.
    pub size: Option<u64>,
    /// The subtitle sidecars beside it when the job started (a CMAF job from S3): part of what
    /// was transcoded, so a sidecar added later makes the same video worth transcoding again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sidecars: Vec<SidecarSource>,
}

/// A subtitle sidecar a job found beside its source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SidecarSource {
    /// S3 key.
    pub key: String,
    /// S3 ETag.
    pub etag: Option<String>,
}

/// One published subtitle rendition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtitleRecord {
    /// The name players list.
    pub name: String,
    /// Its language, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Its media playlist, relative to the output prefix.
    pub playlist: String,
}

/// One published rendition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenditionRecord {
    /// Rung name (`720p`).
    pub name: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Peak segment bitrate, bit/s.
    pub bandwidth: u64,
    /// Average bitrate, bit/s.
    pub average_bandwidth: u64,
    /// RFC 6381 codecs.
    pub codecs: String,
    /// Frames per second.
    pub frame_rate: f64,
    /// Media playlist, relative to the output prefix.
    pub playlist: String,
    /// Its I-frame playlist (CMAF), relative to the output prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iframe_playlist: Option<String>,
}

/// One published audio rendition (CMAF: each audio track of the source).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioRecord {
    /// The name players list.
    pub name: String,
    /// Its language, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// The track players start with.
    pub default: bool,
    /// Peak segment bitrate, bit/s.
    pub bandwidth: u64,
    /// Average bitrate, bit/s.
    pub average_bandwidth: u64,
    /// Media playlist, relative to the output prefix.
    pub playlist: String,
}

/// Why a job failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorRecord {
    /// Permanent or retryable.
    pub kind: ErrorKind,
    /// One line a person can act on.
    pub message: String,
}

/// A version that the stable names no longer serve, kept until players still reading it are done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplacedVersion {
    /// The version folder's name.
    pub version: String,
    /// When it may be deleted (RFC 3339, UTC).
    pub delete_after: String,
}

/// The record itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Where the job stands.
    pub status: Status,
    /// Unique per attempt.
    pub job_id: String,
    /// What was transcoded.
    pub source: SourceRecord,
    /// Published renditions, best first; empty unless `done`.
    pub renditions: Vec<RenditionRecord>,
    /// The master playlist, relative to the output prefix, once published.
    pub master_playlist: Option<String>,
    /// The poster, relative to the output prefix, once published.
    pub poster: Option<String>,
    /// Source duration in seconds, once probed.
    pub duration_s: Option<f64>,
    /// The source's HDR curve (`pq` or `hlg`) when its picture was tone-mapped to SDR BT.709
    /// for the ladder; absent for a standard-range source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tone_mapped_from: Option<String>,
    /// The seek preview's index (`thumbnails.vtt`), relative to the output prefix, once
    /// published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnails: Option<String>,
    /// The segments' format (`cmaf` or `ts`), once done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments: Option<String>,
    /// The DASH manifest (`manifest.mpd`, CMAF only), relative to the output prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dash_manifest: Option<String>,
    /// Published audio renditions (CMAF; with MPEG-TS the audio is in every rung).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audio: Vec<AudioRecord>,
    /// Published subtitle renditions (WebVTT).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subtitles: Vec<SubtitleRecord>,
    /// What the job left out and why, one line each (bitmap subtitles, a sidecar too big).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Why the job failed, when it did.
    pub error: Option<ErrorRecord>,
    /// When the stream became playable (RFC 3339, UTC): the first master playlist, listing
    /// every rung once each had its first segment published, while the encode went on.
    #[serde(default)]
    pub playable_at: Option<String>,
    /// This job's version folder under the prefix (`_v…`), which holds its rungs; absent
    /// for `local`, which writes one version straight into its folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The version that the stable `master.m3u8` serves: this job's once `done`; while a job
    /// runs, and after it fails or stops, the one published before it (`null` when none),
    /// which stays playable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_version: Option<String>,
    /// Which delivery of its queue message this job is (1 for the first), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Earlier versions, kept for a grace period after they were replaced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaced_versions: Vec<ReplacedVersion>,
    /// When the job started (RFC 3339, UTC).
    pub created_at: String,
    /// When this record was last written (RFC 3339, UTC).
    pub updated_at: String,
}

/// The current time as the record writes it.
pub fn now() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .expect("the current time is always formattable")
}

impl Manifest {
    /// A new `processing` record.
    pub fn processing(job_id: String, source: SourceRecord) -> Self {
        let now = now();
        Self {
            status: Status::Processing,
            job_id,
            source,
            renditions: Vec::new(),
            master_playlist: None,
            poster: None,
            duration_s: None,
            tone_mapped_from: None,
            thumbnails: None,
            segments: None,
            dash_manifest: None,
            audio: Vec::new(),
            subtitles: Vec::new(),
            notes: Vec::new(),
            error: None,
            playable_at: None,
            version: None,
            published_version: None,
            attempts: None,
            replaced_versions: Vec::new(),
            created_at: now.clone(),
            updated_at: now,
        }
    }

    /// Marks the record `done`.
    pub fn done(mut self, renditions: Vec<RenditionRecord>, master: &str, poster: &str) -> Self {
        self.status = Status::Done;
        // A job too short to be published early becomes playable now.
        self.playable_at.get_or_insert_with(now);
        self.renditions = renditions;
        self.master_playlist = Some(master.to_string());
        self.poster = Some(poster.to_string());
        self.error = None;
        self.updated_at = now();
        self
    }

    /// Records that the stream became playable, still `processing`.
    pub fn playable(mut self, master: &str) -> Self {
        let now = now();
        self.master_playlist = Some(master.to_string());
        self.playable_at = Some(now.clone());
        self.updated_at = now;
        self
    }

    /// Seconds from `created_at` to `playable_at`, when both are known.
    pub fn seconds_to_playable(&self) -> Option<f64> {
        let parse = |t: &str| OffsetDateTime::parse(t, &Rfc3339).ok();
        let playable = parse(self.playable_at.as_deref()?)?;
        Some((playable - parse(&self.created_at)?).as_seconds_f64())
    }

    /// Marks the record `failed`, with nothing published.
    pub fn failed(self, kind: ErrorKind, message: String) -> Self {
        self.ended_with(Status::Failed, kind, message)
    }

    /// Marks the record with a failed ending (`failed`, `retrying`, `dead_lettered`), with
    /// nothing of this job published.
    pub fn ended_with(mut self, status: Status, kind: ErrorKind, message: String) -> Self {
        self.status = status;
        self.renditions.clear();
        self.master_playlist = None;
        self.poster = None;
        self.playable_at = None;
        self.error = Some(ErrorRecord { kind, message });
        self.updated_at = now();
        self
    }

    /// Marks the record `cancelled`: stopped before it finished, nothing published.
    pub fn cancelled(mut self) -> Self {
        self.status = Status::Cancelled;
        self.renditions.clear();
        self.master_playlist = None;
        self.poster = None;
        self.playable_at = None;
        self.updated_at = now();
        self
    }

    /// Pretty JSON, as published.
    pub fn to_json(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a manifest always serialises");
        bytes.push(b'\n');
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_record_has_the_contract_fields() {
        let m = Manifest::processing(
            "j1".into(),
            SourceRecord {
                bucket: None,
                key: "in.mp4".into(),
                etag: None,
                size: Some(3),
                sidecars: Vec::new(),
            },
        )
        .failed(ErrorKind::InvalidInput, "not a video: audio only".into());
        let v: serde_json::Value = serde_json::from_slice(&m.to_json()).unwrap();
        assert_eq!(v["status"], "failed");
        assert_eq!(v["error"]["kind"], "invalid_input");
        assert_eq!(v["source"]["key"], "in.mp4");
        for field in [
            "job_id",
            "renditions",
            "duration_s",
            "created_at",
            "updated_at",
        ] {
            assert!(v.get(field).is_some(), "{field}");
        }
        assert!(OffsetDateTime::parse(v["created_at"].as_str().unwrap(), &Rfc3339).is_ok());
    }
}
