//! A subtitle file uploaded on its own (`film.en.vtt`, after `film.mp4`): its job is its
//! video's job again, so the video is republished, as a new version, with the subtitles in.
//!
//! The video is the one the record at the output prefix names: the sidecar's name gives the
//! prefix (`storage::default_output`), and the record says which upload is published there.
//! Whichever order the uploads and their jobs come in, the subtitles end up published:
//! - no record yet: the video's job has not started, and will list the sidecar when it does
//!   (it lists after writing its `processing` record);
//! - the video's job is running: this job waits for the prefix, then finds the sidecar
//!   missing from the record and republishes;
//! - the video's job already saw the sidecar: the record lists it, and this job is a no-op
//!   (`cloud`'s check of the same source).

use super::JobError;
use crate::config::SegmentFormat;
use crate::manifest::{Manifest, Status};
use crate::storage::{key_stem, sidecar_name, S3Object, S3Prefix};

/// The video to transcode for a job whose `source` is a sidecar, with `segments`, writing to
/// `output`, where `record` is; `None` when `source` is a video.
pub fn video_of_sidecar(
    source: &S3Object,
    output: &S3Prefix,
    segments: SegmentFormat,
    record: Option<&Manifest>,
) -> Result<Option<S3Object>, JobError> {
    let Some(sidecar) = sidecar_name(&source.key) else {
        return Ok(None);
    };
    let alone = |why: &str| {
        Err(JobError::SidecarAlone(format!(
            "{source} is a subtitle file; {why}"
        )))
    };
    if segments != SegmentFormat::Cmaf {
        return alone("subtitles are published with CMAF segments only (--segments cmaf)");
    }
    let video = record.filter(|r| {
        r.source.bucket.as_deref() == Some(source.bucket.as_str())
            && sidecar_name(&r.source.key).is_none()
            && key_stem(&r.source.key) == sidecar.video_stem
    });
    match video {
        None => alone(&format!(
            "no video of its name is recorded at {output} yet: the video's own job will read it"
        )),
        Some(record) if record.status == Status::Failed => alone(&format!(
            "its video {} failed for good, and is not tried again for it",
            record.source.key
        )),
        Some(record) => {
            tracing::info!(video = %record.source.key, "a subtitle file for a recorded video: republishing the video");
            Ok(Some(S3Object {
                bucket: source.bucket.clone(),
                key: record.source.key.clone(),
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::SourceRecord;

    fn object(key: &str) -> S3Object {
        S3Object {
            bucket: "raw".into(),
            key: key.into(),
        }
    }

    fn output() -> S3Prefix {
        S3Prefix {
            bucket: "out".into(),
            prefix: "hls/up/film/".into(),
        }
    }

    fn record(key: &str, status: Status) -> Manifest {
        let mut record = Manifest::processing(
            "j".into(),
            SourceRecord {
                bucket: Some("raw".into()),
                key: key.into(),
                etag: Some("\"e\"".into()),
                size: Some(1),
                sidecars: Vec::new(),
            },
        );
        record.status = status;
        record
    }

    fn resolve(
        key: &str,
        segments: SegmentFormat,
        record: Option<&Manifest>,
    ) -> Result<Option<S3Object>, JobError> {
        video_of_sidecar(&object(key), &output(), segments, record)
    }

    #[test]
    fn a_video_is_its_own_job() {
        let done = record("up/film.mp4", Status::Done);
        assert!(resolve("up/film.mp4", SegmentFormat::Cmaf, Some(&done))
            .unwrap()
            .is_none());
        assert!(resolve("up/film.mp4", SegmentFormat::Ts, None)
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_sidecar_becomes_the_recorded_videos_job() {
        for status in [Status::Done, Status::Processing, Status::Retrying] {
            let recorded = record("up/film.mov", status);
            let video = resolve("up/film.en.vtt", SegmentFormat::Cmaf, Some(&recorded));
            assert_eq!(video.unwrap(), Some(object("up/film.mov")), "{status:?}");
        }
    }

    #[test]
    fn a_sidecar_without_its_video_is_nothing_to_do() {
        let cases = [
            (
                None,
                "no video of its name is recorded at s3://out/hls/up/film/",
            ),
            (
                Some(record("up/other.mp4", Status::Done)),
                "no video of its name",
            ),
            (
                Some(record("up/film.de.vtt", Status::Done)),
                "no video of its name",
            ),
            (
                Some(record("up/film.mp4", Status::Failed)),
                "failed for good",
            ),
        ];
        for (record, why) in cases {
            let error =
                resolve("up/film.en.vtt", SegmentFormat::Cmaf, record.as_ref()).unwrap_err();
            assert_eq!(error.kind(), crate::manifest::ErrorKind::InvalidInput);
            assert!(error.to_string().contains(why), "{error}");
        }
        let done = record("up/film.mp4", Status::Done);
        let error = resolve("up/film.en.vtt", SegmentFormat::Ts, Some(&done)).unwrap_err();
        assert!(error.to_string().contains("CMAF"), "{error}");
    }
}
