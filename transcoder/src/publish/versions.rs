//! Versioned outputs (docs/contract.md, output section). A job from S3 writes its rungs under a
//! version folder of its own (`_v20261207T093000Z-1a2b3c4d/720p/...`) and changes the stable
//! names at the prefix (`master.m3u8`, `poster.jpg`) only once that version is complete. So a
//! failing, invalid or stopped re-upload never touches the video that is already out, and a
//! cache can never mix an old segment into a new playlist: no name is ever reused.
//!
//! Playable early: when nothing is published at the prefix yet, the first master goes to the
//! stable name at once, pointing into the growing version. When a version is already out, the
//! new one's early master stays inside its folder (`_v…/master.m3u8`, announced in the
//! `playable` event and the record) until the switch.
//!
//! Replaced versions are deleted by a later job on the same prefix, once the grace period
//! recorded in `manifest.json` has passed: a player that loaded the old master keeps working.

use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::retry::with_retries;
use super::MASTER_PLAYLIST;
use crate::dash::MPD;
use crate::encode::{POSTER, THUMBNAILS};
use crate::manifest::ReplacedVersion;
use crate::storage::{is_version_name, ObjectKind, OutputSink, S3Sink};
use crate::transcode::{JobError, Transcoded};

/// Where a job publishes: its version folder, and the prefix that holds the stable names.
#[derive(Debug, Clone)]
pub struct Destination<S> {
    version: S,
    root: S,
    /// The version folder's name; empty when the version is the root itself (`local`).
    version_name: String,
    /// Nothing was published at the prefix when the job began: its early master may take the
    /// stable name at once, and a failure takes it back.
    root_is_free: bool,
}

impl<S: OutputSink + Clone> Destination<S> {
    /// One folder for everything: `local`, and tests.
    pub fn flat(sink: S) -> Self {
        Self {
            version: sink.clone(),
            root: sink,
            version_name: String::new(),
            root_is_free: true,
        }
    }

    /// `version` is the folder `version_name` under `root`.
    pub fn versioned(root: S, version: S, version_name: &str, root_is_free: bool) -> Self {
        Self {
            version,
            root,
            version_name: version_name.to_string(),
            root_is_free,
        }
    }

    /// Where rungs, segments, media playlists and the version's own master go.
    pub fn version(&self) -> &S {
        &self.version
    }

    /// Where the stable names and `manifest.json` go.
    pub fn root(&self) -> &S {
        &self.root
    }

    /// `name` (relative to the version folder) relative to the prefix.
    pub fn from_root(&self, name: &str) -> String {
        match self.version_name.is_empty() {
            true => name.to_string(),
            false => format!("{}/{name}", self.version_name),
        }
    }

    /// True when the stable master belongs to this job while it runs (nothing was out).
    fn owns_stable_master(&self) -> bool {
        self.root_is_free && !self.version_name.is_empty()
    }

    /// The early master, relative to the prefix: the stable name when nothing was out,
    /// otherwise the version's own.
    pub fn early_master(&self) -> String {
        match self.root_is_free {
            true => MASTER_PLAYLIST.to_string(),
            false => self.from_root(MASTER_PLAYLIST),
        }
    }

    /// Publishes a master (URIs relative to the version folder) in the version folder, and at
    /// the stable name too when nothing else is out there.
    pub async fn put_early_master(&self, master: &[u8]) -> Result<(), JobError> {
        put_playlist(&self.version, MASTER_PLAYLIST, master.to_vec()).await?;
        if self.owns_stable_master() {
            let rebased = rebase_playlist(&String::from_utf8_lossy(master), &self.version_name);
            put_playlist(&self.root, MASTER_PLAYLIST, rebased.into_bytes()).await?;
        }
        Ok(())
    }

    /// After a failure: takes back the stable master if this job put it there.
    pub async fn withdraw_stable_master(&self) {
        if self.owns_stable_master() {
            if let Err(error) = self.root.delete(MASTER_PLAYLIST).await {
                tracing::warn!(%error, "could not withdraw the early master playlist");
            }
        }
    }

    /// Puts `body` at the stable `name`, or, when this version has none, removes an older
    /// version's: it would name a folder that is retired later.
    async fn put_or_remove(
        &self,
        name: &str,
        body: Option<String>,
        kind: ObjectKind,
    ) -> Result<(), JobError> {
        match body {
            Some(body) => {
                let bytes = body.into_bytes();
                with_retries(name, || self.root.put_bytes(name, bytes.clone(), kind)).await?
            }
            None => with_retries(name, || self.root.delete(name)).await?,
        }
        Ok(())
    }

    /// Makes the complete version the published one: its poster, its DASH manifest (or none,
    /// for MPEG-TS: an older CMAF version's would outlive its folder), then its master, at the
    /// stable names. The master last, so a reader never sees it point at something missing.
    pub async fn switch(&self, transcoded: &Transcoded) -> Result<(), JobError> {
        if self.version_name.is_empty() {
            return Ok(());
        }
        let poster = self.version.get_bytes(POSTER).await?.ok_or_else(|| {
            JobError::output(std::path::Path::new(POSTER))(std::io::Error::other(
                "the version's poster is missing",
            ))
        })?;
        with_retries(POSTER, || {
            self.root
                .put_bytes(POSTER, poster.clone(), ObjectKind::Image)
        })
        .await?;
        let folders_at = format!("{}/", self.version_name);
        let index = transcoded.thumbnails_vtt(&folders_at);
        self.put_or_remove(THUMBNAILS, index, ObjectKind::Thumbnails)
            .await?;
        let mpd = transcoded.mpd(&folders_at);
        self.put_or_remove(MPD, mpd, ObjectKind::DashManifest)
            .await?;
        let rebased = rebase_playlist(&transcoded.master, &self.version_name);
        put_playlist(&self.root, MASTER_PLAYLIST, rebased.into_bytes()).await?;
        tracing::info!(version = %self.version_name, "published: the stable master now serves this version");
        Ok(())
    }
}

async fn put_playlist<S: OutputSink>(sink: &S, name: &str, body: Vec<u8>) -> Result<(), JobError> {
    with_retries(name, || {
        sink.put_bytes(name, body.clone(), ObjectKind::Playlist)
    })
    .await?;
    Ok(())
}

/// A playlist whose relative URIs are made relative to the folder above `folder`: every URI
/// line, and every `URI="..."` attribute. Absolute URIs are left as they are.
pub fn rebase_playlist(text: &str, folder: &str) -> String {
    let rebase = |uri: &str| match uri.contains("://") || uri.starts_with('/') {
        true => uri.to_string(),
        false => format!("{folder}/{uri}"),
    };
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.lines().filter(|l| !l.is_empty()) {
        if !line.starts_with('#') {
            out.push_str(&rebase(line));
        } else if let Some((head, rest)) = line.split_once("URI=\"") {
            let (uri, tail) = rest.split_once('"').unwrap_or((rest, ""));
            out.push_str(&format!("{head}URI=\"{}\"{tail}", rebase(uri)));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// The version a stable master serves, read from its first URI; `None` for a master from
/// before versioned outputs (rungs straight under the prefix).
pub fn version_of(master: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(master).ok()?;
    let uri = text
        .lines()
        .find(|l| !l.is_empty() && !l.starts_with('#'))?;
    let first = uri.split('/').next()?;
    is_version_name(first).then(|| first.to_string())
}

/// What to do with the version folders found beside the one just published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retirement {
    /// Still within their grace period: recorded, kept.
    pub keep: Vec<ReplacedVersion>,
    /// Past it: deleted now.
    pub delete: Vec<String>,
}

/// Decides, for every version folder `found` other than `current`, whether it stays (and
/// until when) or goes. One seen for the first time (the version just replaced, or what a
/// crashed job left) gets the whole grace period from now.
pub fn plan_retirement(
    found: &[String],
    current: &str,
    known: &[ReplacedVersion],
    now: OffsetDateTime,
    grace: Duration,
) -> Retirement {
    let mut plan = Retirement {
        keep: Vec::new(),
        delete: Vec::new(),
    };
    for version in found.iter().filter(|v| is_version_name(v) && *v != current) {
        let recorded = known.iter().find(|k| &k.version == version);
        let due = recorded.and_then(|k| OffsetDateTime::parse(&k.delete_after, &Rfc3339).ok());
        match due {
            Some(due) if due <= now => plan.delete.push(version.clone()),
            Some(_) => plan.keep.push(recorded.expect("due came from it").clone()),
            None => plan.keep.push(ReplacedVersion {
                version: version.clone(),
                delete_after: (now + grace)
                    .format(&Rfc3339)
                    .expect("a time is always formattable"),
            }),
        }
    }
    plan
}

/// After a switch: deletes the replaced versions whose grace has passed and returns those to
/// keep recording. Best effort: a version not deleted now stays recorded for the next job.
pub async fn retire_replaced(
    root: &S3Sink,
    current: &str,
    known: &[ReplacedVersion],
    grace: Duration,
) -> Vec<ReplacedVersion> {
    let found = match root.list_folders().await {
        Ok(found) => found,
        Err(error) => {
            tracing::warn!(%error, "could not list the versions; keeping what was recorded");
            return known.to_vec();
        }
    };
    let plan = plan_retirement(&found, current, known, OffsetDateTime::now_utc(), grace);
    let mut keep = plan.keep;
    for version in plan.delete {
        match root.delete_folder(&version).await {
            Ok(objects) => tracing::info!(%version, objects, "deleted a replaced version"),
            Err(error) => {
                tracing::warn!(%version, %error, "could not delete a replaced version");
                keep.push(ReplacedVersion {
                    version,
                    delete_after: OffsetDateTime::now_utc()
                        .format(&Rfc3339)
                        .expect("a time is always formattable"),
                });
            }
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const V1: &str = "_v20261201T000000Z-0000000a";
    const V2: &str = "_v20261202T000000Z-0000000b";
    const V3: &str = "_v20261203T000000Z-0000000c";

    #[test]
    fn rebasing_prefixes_every_relative_uri() {
        let master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n720p/index.m3u8\n\
                      #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",URI=\"audio/en.m3u8\",NAME=\"en\"\n\
                      https://cdn/x.m3u8\n";
        let got = rebase_playlist(master, V1);
        assert!(got.contains(&format!("\n{V1}/720p/index.m3u8\n")), "{got}");
        assert!(
            got.contains(&format!("URI=\"{V1}/audio/en.m3u8\",NAME")),
            "{got}"
        );
        assert!(got.contains("\nhttps://cdn/x.m3u8\n"));
        assert_eq!(version_of(got.as_bytes()).as_deref(), Some(V1));
        assert_eq!(
            version_of(master.as_bytes()),
            None,
            "a master from before versions"
        );
    }

    #[test]
    fn replaced_versions_wait_out_their_grace_then_go() {
        let now = datetime!(2026-12-07 12:00:00 UTC);
        let grace = Duration::from_secs(3600);
        let known = vec![
            ReplacedVersion {
                version: V1.into(),
                delete_after: "2026-12-07T11:00:00Z".into(),
            },
            ReplacedVersion {
                version: V2.into(),
                delete_after: "2026-12-07T12:30:00Z".into(),
            },
        ];
        let found = [V1, V2, V3, "720p", "nested-upload"].map(String::from);
        let plan = plan_retirement(&found, "_v20261207T120000Z-0000000d", &known, now, grace);
        assert_eq!(plan.delete, vec![V1.to_string()]);
        assert_eq!(plan.keep[0], known[1]);
        assert_eq!(
            plan.keep[1].version, V3,
            "first seen: a whole grace from now"
        );
        assert_eq!(plan.keep[1].delete_after, "2026-12-07T13:00:00Z");
        assert_eq!(
            plan.keep.len(),
            2,
            "folders that are not versions are never touched"
        );

        let current = plan_retirement(&[V3.to_string()], V3, &[], now, grace);
        assert!(current.keep.is_empty() && current.delete.is_empty());
    }
}
