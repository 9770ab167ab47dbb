//! The seek preview: small frames every few seconds, tiled ten by ten into JPEG sprites by the
//! same ffmpeg that encodes the rungs (one more branch of the one decode), and a WebVTT index
//! (`thumbnails.vtt`) whose cues name a sprite and the `#xywh=` of each frame in it, as
//! players' seek bars read them.

use std::ffi::OsString;
use std::fmt::Write;

use crate::ladder::Rung;

/// The sprites' folder, beside the rung folders.
pub const TRICKPLAY_FOLDER: &str = "trickplay";
/// Sprite names in it (an ffmpeg pattern, numbered from 0).
pub const SPRITE_PATTERN: &str = "sprite_%03d.jpg";
/// The index, at the output root.
pub const THUMBNAILS: &str = "thumbnails.vtt";
/// Frames across and down one sprite.
const TILE: u32 = 10;
/// A thumbnail's width; its height follows the picture.
const WIDTH: u32 = 160;

/// How a job's seek preview is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trickplay {
    /// Seconds between two thumbnails.
    pub interval_s: u32,
    /// A thumbnail's width in pixels.
    pub width: u32,
    /// A thumbnail's height in pixels (even).
    pub height: u32,
}

impl Trickplay {
    /// The layout for a video of `duration_s` whose top rung is `top`: a thumbnail every 2 s up
    /// to two minutes, every 5 s up to twenty, every 10 s beyond (at most 1,440 for the
    /// longest source allowed, fifteen sprites).
    pub fn plan(duration_s: f64, top: &Rung) -> Self {
        let interval_s = match duration_s {
            d if d <= 120.0 => 2,
            d if d <= 1200.0 => 5,
            _ => 10,
        };
        let height =
            (f64::from(WIDTH) * f64::from(top.height) / f64::from(top.width.max(1))).round() as u32;
        Self {
            interval_s,
            width: WIDTH,
            height: (height / 2 * 2).max(2),
        }
    }

    /// The filter branch from one output of the graph's split (`[input]`) to `[sprites]`.
    /// `tile` gives each sprite a frame rate of one per hundred thumbnails, so ffmpeg would
    /// count a sprite as lasting 200 s or more and report progress past the video's end (which
    /// the encode's watchdog takes for a source that lies about its length): the sprites are
    /// retimed a few seconds apart, and their output keeps those times (`output_args`).
    pub fn filter_branch(&self, input: &str) -> String {
        format!(
            "[{input}]fps=1/{},scale={}:{}:flags=bicubic,setsar=1,tile={TILE}x{TILE},\
             settb=1/1000,setpts=N*{},format=yuvj420p[sprites]",
            self.interval_s,
            self.width,
            self.height,
            self.interval_s * 1000
        )
    }

    /// The sprites' output: JPEG files in [`TRICKPLAY_FOLDER`].
    pub fn output_args(&self) -> Vec<OsString> {
        let pattern = format!("{TRICKPLAY_FOLDER}/{SPRITE_PATTERN}");
        [
            "-map",
            "[sprites]",
            // Every sprite as it comes, timed as retimed, each lasting a second.
            "-fps_mode",
            "passthrough",
            "-r",
            "1",
            "-c:v",
            "mjpeg",
            "-q:v",
            "5",
            "-map_metadata",
            "-1",
            "-f",
            "image2",
            "-start_number",
            "0",
            &pattern,
        ]
        .iter()
        .map(OsString::from)
        .collect()
    }

    /// How many thumbnails a video of `duration_s` gets: one at 0 s and one every interval
    /// after it, as ffmpeg's `fps` filter picks them.
    pub fn count(&self, duration_s: f64) -> u32 {
        (duration_s / f64::from(self.interval_s)).ceil().max(1.0) as u32
    }

    /// The names of the sprites a video of `duration_s` fills.
    pub fn sprites(&self, duration_s: f64) -> Vec<String> {
        let per_sprite = TILE * TILE;
        (0..self.count(duration_s).div_ceil(per_sprite))
            .map(|i| format!("{TRICKPLAY_FOLDER}/sprite_{i:03}.jpg"))
            .collect()
    }

    /// `thumbnails.vtt`: a cue per thumbnail, its sprite under `folders_at` (`""`, or a
    /// version folder `_v…/`) and its place in the sprite.
    pub fn render_vtt(&self, duration_s: f64, folders_at: &str) -> String {
        let mut out = String::from("WEBVTT\n");
        let per_sprite = TILE * TILE;
        for i in 0..self.count(duration_s) {
            let start = f64::from(i * self.interval_s);
            let end = f64::from((i + 1) * self.interval_s).min(duration_s.max(start + 0.001));
            let cell = i % per_sprite;
            let (x, y) = ((cell % TILE) * self.width, (cell / TILE) * self.height);
            let _ = write!(
                out,
                "\n{} --> {}\n{folders_at}{TRICKPLAY_FOLDER}/sprite_{:03}.jpg#xywh={x},{y},{},{}\n",
                timestamp(start),
                timestamp(end),
                i / per_sprite,
                self.width,
                self.height
            );
        }
        out
    }
}

/// `HH:MM:SS.mmm`.
fn timestamp(seconds: f64) -> String {
    let millis = (seconds * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        millis / 3_600_000,
        millis / 60_000 % 60,
        millis / 1000 % 60,
        millis % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ladder::compute_ladder;

    #[test]
    fn thumbnails_follow_the_length_and_the_picture() {
        let landscape = &compute_ladder(1920, 1080, 30.0)[0];
        let portrait = &compute_ladder(1080, 1920, 30.0)[0];
        assert_eq!(
            Trickplay::plan(60.0, landscape),
            Trickplay {
                interval_s: 2,
                width: 160,
                height: 90
            }
        );
        assert_eq!(Trickplay::plan(600.0, portrait).height, 284);
        assert_eq!(Trickplay::plan(3600.0, landscape).interval_s, 10);
    }

    #[test]
    fn every_cue_names_its_sprite_and_cell() {
        let plan = Trickplay {
            interval_s: 2,
            width: 160,
            height: 90,
        };
        // 205 s: 103 thumbnails, so a second sprite holding three.
        assert_eq!(plan.count(205.0), 103);
        assert_eq!(
            plan.sprites(205.0),
            ["trickplay/sprite_000.jpg", "trickplay/sprite_001.jpg"]
        );
        let vtt = plan.render_vtt(205.0, "_v1/");
        assert!(vtt.starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:02.000\n_v1/trickplay/sprite_000.jpg#xywh=0,0,160,90\n"), "{vtt}");
        // The 12th thumbnail: second row, second column.
        assert!(vtt.contains(
            "00:00:22.000 --> 00:00:24.000\n_v1/trickplay/sprite_000.jpg#xywh=160,90,160,90\n"
        ));
        // The last one ends with the video, on the next sprite.
        assert!(
            vtt.ends_with(
                "00:03:24.000 --> 00:03:25.000\n_v1/trickplay/sprite_001.jpg#xywh=320,0,160,90\n"
            ),
            "{vtt}"
        );
        assert_eq!(vtt.matches(" --> ").count(), 103);
    }
}
