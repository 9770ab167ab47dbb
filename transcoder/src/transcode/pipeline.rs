//! The pipeline shared by every way of running a job: probe, ladder, one encode, then the
//! facts for the master playlist measured from what was written. It works in a local folder;
//! callers publish the result (a local folder for `local`, S3 for the cloud worker).

use std::path::Path;

use super::sidecar::Sidecar;
use super::subtitles::{write_subtitles, SubtitleOutput, SUBTITLE_FILE};
use super::{JobError, JobEvent, Stage};
use crate::config::{EncodeSettings, Limits, SegmentFormat};
use crate::dash::{render_mpd, AudioSet, Presentation, TextSet, VideoRepresentation, MPD};
use crate::encode::{
    self, AudioTrack, Trickplay, INIT_SEGMENT, MEDIA_PLAYLIST, POSTER, THUMBNAILS,
};
use crate::hls::{
    self, AudioRendition, IFrameVariant, MasterLayout, RenditionStats, SubtitleRendition, Variant,
};
use crate::input::SourceInput;
use crate::ladder::{compute_ladder, select_rungs, Rung};
use crate::manifest::{AudioRecord, Manifest, RenditionRecord, SubtitleRecord};
use crate::probe::{self, Rational, SourceInfo};

/// One encoded rung, measured.
#[derive(Debug, Clone)]
pub struct Rendition {
    /// What it was encoded as.
    pub rung: Rung,
    /// What it weighs.
    pub stats: RenditionStats,
    /// RFC 6381 codecs of its streams.
    pub codecs: String,
    /// Media playlist relative to the output root (`720p/index.m3u8`).
    pub playlist: String,
    /// A CMAF rung's I-frame playlist's peak bitrate (the playlist is `iframes.m3u8` beside
    /// the media playlist); `None` for MPEG-TS.
    pub iframe_bandwidth: Option<u64>,
}

/// A finished encode in the work folder, ready to publish.
#[derive(Debug, Clone)]
pub struct Transcoded {
    /// The probed source.
    pub source: SourceInfo,
    /// The constant frame rate of every rung.
    pub fps: Rational,
    /// The renditions, best first.
    pub renditions: Vec<Rendition>,
    /// A CMAF job's audio renditions, the default first (none for MPEG-TS, whose rungs carry
    /// the audio, and for a silent source).
    pub audio: Vec<AudioOutput>,
    /// A CMAF job's subtitle renditions (WebVTT).
    pub subtitles: Vec<SubtitleOutput>,
    /// The seek preview's sprites, when ffmpeg wrote them all.
    pub trickplay: Option<Trickplay>,
    /// What was left out and why, for the record.
    pub notes: Vec<String>,
    /// The segments' container.
    pub segments: SegmentFormat,
    /// The master playlist text.
    pub master: String,
}

/// One of a CMAF job's audio renditions, measured.
#[derive(Debug, Clone)]
pub struct AudioOutput {
    /// Which track, its folder and name.
    pub track: AudioTrack,
    /// What it weighs.
    pub stats: RenditionStats,
    /// Media playlist relative to the output root (`audio/index.m3u8`).
    pub playlist: String,
    /// The source track's language, when it declares one.
    pub language: Option<String>,
}

impl Transcoded {
    /// The renditions as the manifest records them.
    pub fn records(&self) -> Vec<RenditionRecord> {
        let (audio_peak, audio_average) = audio_bps(&self.audio);
        self.renditions
            .iter()
            .map(|r| RenditionRecord {
                name: r.rung.name.clone(),
                width: r.rung.width,
                height: r.rung.height,
                bandwidth: r.stats.peak_bps + audio_peak,
                average_bandwidth: r.stats.average_bps + audio_average,
                codecs: r.codecs.clone(),
                frame_rate: self.fps.as_f64(),
                playlist: r.playlist.clone(),
                iframe_playlist: r
                    .iframe_bandwidth
                    .map(|_| format!("{}/{}", r.rung.name, hls::IFRAME_PLAYLIST)),
            })
            .collect()
    }

    /// The DASH manifest over a CMAF job's segments, with the rendition folders under
    /// `folders_at` (`""`, or a version folder `_v…/`); `None` for MPEG-TS.
    pub fn mpd(&self, folders_at: &str) -> Option<String> {
        if self.segments != SegmentFormat::Cmaf {
            return None;
        }
        let seconds =
            |stats: &RenditionStats| stats.segments.iter().map(|s| s.duration_s).collect();
        let video = self
            .renditions
            .iter()
            .map(|r| VideoRepresentation {
                folder: &r.rung.name,
                width: r.rung.width,
                height: r.rung.height,
                bandwidth: r.stats.peak_bps,
                // The video's own codec: the audio is its own adaptation set.
                codecs: r.codecs.split(',').next().unwrap_or_default(),
                segment_seconds: seconds(&r.stats),
            })
            .collect();
        let audio = self
            .audio
            .iter()
            .map(|a| AudioSet {
                folder: &a.track.folder,
                language: a.language.as_deref(),
                main: a.track.default,
                bandwidth: a.stats.peak_bps,
                segment_seconds: seconds(&a.stats),
            })
            .collect();
        let duration_s = self
            .renditions
            .iter()
            .map(|r| r.stats.duration_s)
            .fold(0.0, f64::max);
        let text = self
            .subtitles
            .iter()
            .map(|s| TextSet {
                folder: &s.folder,
                file: SUBTITLE_FILE,
                language: s.language.as_deref(),
            })
            .collect();
        Some(render_mpd(&Presentation {
            duration_s,
            frame_rate: (self.fps.num, self.fps.den),
            video,
            audio,
            text,
            folders_at,
        }))
    }

    /// The seek preview's index, its sprites under `folders_at` (`""`, or a version folder
    /// `_v…/`); `None` when the job has no sprites.
    pub fn thumbnails_vtt(&self, folders_at: &str) -> Option<String> {
        self.trickplay
            .map(|t| t.render_vtt(self.source.duration_s, folders_at))
    }

    /// The sprite files, relative to the work folder.
    pub fn sprites(&self) -> Vec<String> {
        self.trickplay
            .map(|t| t.sprites(self.source.duration_s))
            .unwrap_or_default()
    }

    /// Writes what the job learnt about its source into its `done` record: the duration, the
    /// HDR curve its picture was tone-mapped from, its subtitles (playlists relative to the
    /// rung folders' parent: `at_root` makes them relative to the prefix) and what was left out.
    pub fn describe_source(&self, record: &mut Manifest, at_root: impl Fn(&str) -> String) {
        record.segments = Some(
            match self.segments {
                SegmentFormat::Cmaf => "cmaf",
                SegmentFormat::Ts => "ts",
            }
            .to_string(),
        );
        record.dash_manifest = (self.segments == SegmentFormat::Cmaf).then(|| MPD.to_string());
        record.audio = self
            .audio
            .iter()
            .map(|a| AudioRecord {
                name: a.track.name.clone(),
                language: a.language.clone(),
                default: a.track.default,
                bandwidth: a.stats.peak_bps,
                average_bandwidth: a.stats.average_bps,
                playlist: at_root(&a.playlist),
            })
            .collect();
        record.subtitles = self
            .subtitles
            .iter()
            .map(|s| SubtitleRecord {
                name: s.name.clone(),
                language: s.language.clone(),
                playlist: at_root(&s.playlist()),
            })
            .collect();
        record.notes = self.notes.clone();
        record.thumbnails = self.trickplay.map(|_| THUMBNAILS.to_string());
        record.duration_s = Some(self.source.duration_s);
        record.tone_mapped_from = self
            .source
            .video
            .dynamic_range
            .hdr_name()
            .map(str::to_string);
    }
}

/// The source probed and its ladder chosen: everything known before ffmpeg starts.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The probed source.
    pub source: SourceInfo,
    /// The constant frame rate of every rung.
    pub fps: Rational,
    /// The rungs to encode, best first.
    pub ladder: Vec<Rung>,
    /// Subtitle files uploaded beside the source, found by the job.
    pub sidecars: Vec<Sidecar>,
}

/// Probes `input` and chooses its ladder.
pub async fn prepare(
    input: &SourceInput,
    settings: &EncodeSettings,
    limits: &Limits,
    events: &(dyn Fn(JobEvent) + Send + Sync),
) -> Result<Prepared, JobError> {
    events(JobEvent::Stage(Stage::Probe));
    let source = probe::probe(input, settings, limits).await?;
    let fps = source.output_frame_rate();
    let ladder = select_rungs(
        compute_ladder(
            source.video.display_width,
            source.video.display_height,
            fps.as_f64(),
        ),
        &settings.rungs,
    );
    tracing::info!(
        width = source.video.display_width,
        height = source.video.display_height,
        duration_s = source.duration_s,
        %fps,
        rungs = ladder.len(),
        "probed source"
    );
    Ok(Prepared {
        source,
        fps,
        ladder,
        sidecars: Vec::new(),
    })
}

/// Transcodes `input` into `work_dir`: one folder per rung and `poster.jpg`.
pub async fn transcode(
    input: &SourceInput,
    work_dir: &Path,
    settings: &EncodeSettings,
    limits: &Limits,
    events: &(dyn Fn(JobEvent) + Send + Sync),
) -> Result<Transcoded, JobError> {
    let prepared = prepare(input, settings, limits, events).await?;
    encode_prepared(input, work_dir, prepared, settings, events).await
}

/// Encodes a prepared source into `work_dir` and measures what was written.
pub async fn encode_prepared(
    input: &SourceInput,
    work_dir: &Path,
    prepared: Prepared,
    settings: &EncodeSettings,
    events: &(dyn Fn(JobEvent) + Send + Sync),
) -> Result<Transcoded, JobError> {
    let Prepared {
        source,
        fps,
        ladder,
        sidecars,
    } = prepared;
    let trickplay = Trickplay::plan(source.duration_s, &ladder[0]);
    events(JobEvent::Stage(Stage::Encode));
    encode::encode(input, &source, &ladder, fps, settings, work_dir, |p| {
        events(JobEvent::Progress(p))
    })
    .await?;

    let mut audio = Vec::new();
    if settings.segments == SegmentFormat::Cmaf {
        for track in encode::audio_tracks(&source) {
            let playlist = format!("{}/{MEDIA_PLAYLIST}", track.folder);
            hls::finalize_vod_playlist(&work_dir.join(&playlist)).await?;
            audio.push(AudioOutput {
                stats: hls::measure_rendition(&work_dir.join(&playlist)).await?,
                playlist,
                language: track.stream.language.clone(),
                track,
            });
        }
    }
    let mut renditions = Vec::with_capacity(ladder.len());
    for rung in ladder {
        let playlist = format!("{}/{MEDIA_PLAYLIST}", rung.name);
        hls::finalize_vod_playlist(&work_dir.join(&playlist)).await?;
        let stats = hls::measure_rendition(&work_dir.join(&playlist)).await?;
        let init = work_dir.join(&rung.name).join(INIT_SEGMENT);
        let mut codecs = hls::rung_codec_string(
            settings.segments,
            &settings.ffmpeg,
            &init,
            &stats.first_segment,
        )
        .await?;
        if source.audio.is_some() {
            codecs = format!("{codecs},{}", hls::AAC_LC);
        }
        let iframe_bandwidth = match settings.segments {
            SegmentFormat::Cmaf => Some(write_iframe_playlist(work_dir, &rung, &stats).await?),
            SegmentFormat::Ts => None,
        };
        renditions.push(Rendition {
            rung,
            stats,
            codecs,
            playlist,
            iframe_bandwidth,
        });
    }
    check_complete(&source, &renditions)?;
    if !tokio::fs::try_exists(work_dir.join(POSTER))
        .await
        .unwrap_or(false)
    {
        // The poster frame lies a tenth into a video that decoded in full: ffmpeg misbehaved.
        return Err(JobError::output(Path::new(POSTER))(std::io::Error::other(
            "ffmpeg wrote no poster",
        )));
    }

    let (subtitles, mut notes) = match settings.segments {
        SegmentFormat::Cmaf => write_subtitles(input, &source, &sidecars, work_dir, settings).await,
        SegmentFormat::Ts => (Vec::new(), Vec::new()),
    };
    if settings.segments == SegmentFormat::Ts
        && (!source.subtitles.is_empty() || !sidecars.is_empty())
    {
        notes.push("subtitles left out: they are published with --segments cmaf only".into());
    }
    let sprites_written = trickplay
        .sprites(source.duration_s)
        .iter()
        .all(|sprite| work_dir.join(sprite).is_file());
    let trickplay = match sprites_written {
        true => Some(trickplay),
        false => {
            notes.push("seek preview left out: ffmpeg wrote too few sprites".into());
            None
        }
    };
    let master = measured_master(&renditions, &audio, &subtitles, settings.segments, fps);
    Ok(Transcoded {
        source,
        fps,
        renditions,
        audio,
        subtitles,
        trickplay,
        notes,
        segments: settings.segments,
        master,
    })
}

/// Writes a CMAF rung's I-frame playlist beside its media playlist; returns its peak bitrate.
async fn write_iframe_playlist(
    work_dir: &Path,
    rung: &Rung,
    stats: &RenditionStats,
) -> Result<u64, JobError> {
    let dir = work_dir.join(&rung.name);
    let segments: Vec<(String, f64)> = stats
        .segment_uris
        .iter()
        .cloned()
        .zip(stats.segments.iter().map(|s| s.duration_s))
        .collect();
    let frames = hls::iframes_of(&dir, &segments).await?;
    let (playlist, bandwidth) = hls::render_iframe_playlist(&frames, INIT_SEGMENT);
    let path = dir.join(hls::IFRAME_PLAYLIST);
    tokio::fs::write(&path, playlist)
        .await
        .map_err(JobError::output(&path))?;
    Ok(bandwidth)
}

/// The master playlist over measured renditions (a single pass's, or a split job's joined
/// ones), with a CMAF job's audio and subtitle renditions and I-frame playlists.
pub fn measured_master(
    renditions: &[Rendition],
    audio: &[AudioOutput],
    subtitles: &[SubtitleOutput],
    segments: SegmentFormat,
    fps: Rational,
) -> String {
    let (audio_peak, audio_average) = audio_bps(audio);
    let variants: Vec<Variant> = renditions
        .iter()
        .map(|r| Variant {
            uri: r.playlist.clone(),
            bandwidth: r.stats.peak_bps + audio_peak,
            average_bandwidth: r.stats.average_bps + audio_average,
            width: r.rung.width,
            height: r.rung.height,
            codecs: r.codecs.clone(),
            frame_rate: fps.as_f64(),
        })
        .collect();
    hls::render_master(
        &variants,
        &master_layout(segments, renditions, audio, subtitles),
    )
}

/// What separate audio renditions add to every variant's peak and average bitrate: a
/// variant's bandwidth is what a player fetches to play it, its video and the heaviest audio
/// track it may pick.
fn audio_bps(audio: &[AudioOutput]) -> (u64, u64) {
    audio.iter().fold((0, 0), |(peak, average), a| {
        (peak.max(a.stats.peak_bps), average.max(a.stats.average_bps))
    })
}

/// How the master playlist lays out a job's variants.
fn master_layout(
    segments: SegmentFormat,
    renditions: &[Rendition],
    audio: &[AudioOutput],
    subtitles: &[SubtitleOutput],
) -> MasterLayout {
    match segments {
        SegmentFormat::Ts => MasterLayout::Muxed,
        SegmentFormat::Cmaf => MasterLayout::Cmaf {
            audio: audio
                .iter()
                .map(|a| AudioRendition {
                    uri: a.playlist.clone(),
                    name: a.track.name.clone(),
                    language: a.language.clone(),
                    default: a.track.default,
                    bandwidth: a.stats.peak_bps,
                    average_bandwidth: a.stats.average_bps,
                })
                .collect(),
            subtitles: subtitles
                .iter()
                .map(|s| SubtitleRendition {
                    uri: s.playlist(),
                    name: s.name.clone(),
                    language: s.language.clone(),
                })
                .collect(),
            iframes: renditions
                .iter()
                .filter_map(|r| {
                    Some(IFrameVariant {
                        uri: format!("{}/{}", r.rung.name, hls::IFRAME_PLAYLIST),
                        bandwidth: r.iframe_bandwidth?,
                        width: r.rung.width,
                        height: r.rung.height,
                        codecs: r.codecs.split(',').next().unwrap_or_default().to_string(),
                    })
                })
                .collect(),
        },
    }
}

/// ffmpeg stops quietly at the end of a truncated file, so a short output is how a cut-off
/// upload shows. A second or 2% of slack covers rounding at the last frame.
fn check_complete(source: &SourceInfo, renditions: &[Rendition]) -> Result<(), JobError> {
    let decoded_s = renditions
        .iter()
        .map(|r| r.stats.duration_s)
        .fold(f64::INFINITY, f64::min);
    let expected_s = source.duration_s;
    if expected_s - decoded_s > f64::max(1.0, 0.02 * expected_s) {
        return Err(JobError::Incomplete {
            decoded_s,
            expected_s,
        });
    }
    Ok(())
}
