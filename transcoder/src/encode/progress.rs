//! ffmpeg's `-progress pipe:1` output, turned into a percentage of the source.
//!
//! ffmpeg prints a block of `key=value` lines every `-stats_period` and closes each block with
//! `progress=continue` (or `progress=end` for the last one). A real block from ffmpeg 5.1:
//!
//! ```text
//! frame=75
//! fps=0.00
//! stream_0_0_q=-1.0
//! bitrate=N/A
//! total_size=N/A
//! out_time_us=2920000
//! out_time_ms=2920000
//! out_time=00:00:02.920000
//! dup_frames=0
//! drop_frames=0
//! speed=10.4x
//! progress=end
//! ```

pub use common::events::Progress;

/// One line of `-progress` output that we care about.
#[derive(Debug, Clone, PartialEq)]
pub enum ProgressLine {
    /// `frame=N`
    Frame(u64),
    /// `fps=F` (ffmpeg prints 0.00 before it has a measure).
    Fps(f64),
    /// `out_time_us=N` (may be negative at the very start, or `N/A`).
    OutTimeMicros(i64),
    /// `speed=1.5x` (`N/A` or `   0x` before a measure).
    Speed(f64),
    /// `progress=continue` or `progress=end`: the block is complete.
    EndOfBlock {
        /// True for `progress=end`.
        finished: bool,
    },
}

/// Parses one line; `None` for keys we do not use and for unmeasured values.
pub fn parse_progress_line(line: &str) -> Option<ProgressLine> {
    let (key, value) = line.trim().split_once('=')?;
    let value = value.trim();
    match key {
        "frame" => value.parse().ok().map(ProgressLine::Frame),
        "fps" => value.parse().ok().map(ProgressLine::Fps),
        "out_time_us" => value.parse().ok().map(ProgressLine::OutTimeMicros),
        "speed" => value
            .strip_suffix('x')
            .and_then(|v| v.trim().parse().ok())
            .map(ProgressLine::Speed),
        "progress" => Some(ProgressLine::EndOfBlock {
            finished: value == "end",
        }),
        _ => None,
    }
}

/// Folds `-progress` lines into [`Progress`] reports, one per block in which progress moved.
#[derive(Debug)]
pub struct ProgressTracker {
    duration_s: f64,
    frame: u64,
    fps: Option<f64>,
    out_time_s: f64,
    speed: Option<f64>,
    last_percent: Option<f64>,
}

impl ProgressTracker {
    /// Seconds of output written so far, as of the last `out_time_us` line: it goes on
    /// growing after the percentage stops at 99.9 (a source longer than it declared).
    pub fn out_time_s(&self) -> f64 {
        self.out_time_s
    }

    /// A tracker for a source lasting `duration_s` seconds.
    pub fn new(duration_s: f64) -> Self {
        Self {
            duration_s: duration_s.max(0.001),
            frame: 0,
            fps: None,
            out_time_s: 0.0,
            speed: None,
            last_percent: None,
        }
    }

    /// Feeds one line; returns a report when a block ends and the percentage has moved since
    /// the last report (and always for the final block), so reports strictly climb.
    pub fn feed(&mut self, line: &str) -> Option<Progress> {
        match parse_progress_line(line)? {
            ProgressLine::Frame(n) => self.frame = n,
            ProgressLine::Fps(f) => self.fps = (f > 0.0).then_some(f),
            ProgressLine::OutTimeMicros(us) => self.out_time_s = (us.max(0) as f64) / 1e6,
            ProgressLine::Speed(s) => self.speed = (s > 0.0).then_some(s),
            ProgressLine::EndOfBlock { finished } => {
                let percent = if finished {
                    100.0
                } else {
                    (self.out_time_s / self.duration_s * 100.0).clamp(0.0, 99.9)
                };
                if !finished && self.last_percent.is_some_and(|last| percent <= last) {
                    return None;
                }
                self.last_percent = Some(percent);
                let remaining = (self.duration_s - self.out_time_s).max(0.0);
                return Some(Progress {
                    percent,
                    out_time_s: self.out_time_s,
                    frame: self.frame,
                    fps: self.fps,
                    speed: self.speed,
                    eta_s: if finished {
                        Some(0.0)
                    } else {
                        self.speed.map(|s| remaining / s)
                    },
                    finished,
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_as_ffmpeg_prints_them() {
        let cases: &[(&str, Option<ProgressLine>)] = &[
            ("frame=75", Some(ProgressLine::Frame(75))),
            ("fps=29.97", Some(ProgressLine::Fps(29.97))),
            ("fps=0.00", Some(ProgressLine::Fps(0.0))),
            (
                "out_time_us=2920000",
                Some(ProgressLine::OutTimeMicros(2_920_000)),
            ),
            (
                "out_time_us=-23220",
                Some(ProgressLine::OutTimeMicros(-23_220)),
            ),
            ("out_time_us=N/A", None),
            ("speed=10.4x", Some(ProgressLine::Speed(10.4))),
            ("speed=   0x", Some(ProgressLine::Speed(0.0))),
            ("speed=N/A", None),
            (
                "progress=continue",
                Some(ProgressLine::EndOfBlock { finished: false }),
            ),
            (
                "progress=end",
                Some(ProgressLine::EndOfBlock { finished: true }),
            ),
            ("stream_0_0_q=28.0", None),
            ("bitrate=N/A", None),
            ("out_time=00:00:02.920000", None),
            ("total_size=N/A", None),
            ("garbage without equals", None),
            ("", None),
        ];
        for (line, want) in cases {
            assert_eq!(&parse_progress_line(line), want, "{line:?}");
        }
    }

    const TWO_BLOCKS: &str = "frame=1\nfps=0.00\nstream_0_0_q=0.0\nbitrate=N/A\ntotal_size=N/A\n\
        out_time_us=0\nout_time_ms=0\nout_time=00:00:00.000000\ndup_frames=0\ndrop_frames=0\n\
        speed=   0x\nprogress=continue\n\
        frame=45\nfps=30.1\nstream_0_0_q=28.0\nbitrate=N/A\ntotal_size=N/A\n\
        out_time_us=1500000\nout_time_ms=1500000\nout_time=00:00:01.500000\ndup_frames=0\n\
        drop_frames=0\nspeed=1.5x\nprogress=continue\n";

    #[test]
    fn blocks_become_percentages_with_speed_and_eta() {
        let mut tracker = ProgressTracker::new(3.0);
        let reports: Vec<Progress> = TWO_BLOCKS.lines().filter_map(|l| tracker.feed(l)).collect();
        assert_eq!(reports.len(), 2);
        assert_eq!(reports[0].percent, 0.0);
        assert_eq!(
            (reports[0].fps, reports[0].speed, reports[0].eta_s),
            (None, None, None)
        );
        let second = &reports[1];
        assert!((second.percent - 50.0).abs() < 1e-9);
        assert_eq!(
            (second.frame, second.fps, second.speed),
            (45, Some(30.1), Some(1.5))
        );
        assert!((second.eta_s.unwrap() - 1.0).abs() < 1e-9);
        assert!(!second.finished);
    }

    #[test]
    fn only_moving_progress_is_reported_and_the_end_always_is() {
        let mut tracker = ProgressTracker::new(10.0);
        let block = "frame=10\nout_time_us=1000000\nprogress=continue\n";
        assert!(block.lines().filter_map(|l| tracker.feed(l)).count() == 1);
        assert!(
            block.lines().filter_map(|l| tracker.feed(l)).count() == 0,
            "no movement"
        );
        let end: Vec<_> = "frame=10\nout_time_us=1000000\nprogress=end\n"
            .lines()
            .filter_map(|l| tracker.feed(l))
            .collect();
        assert_eq!(end.len(), 1);
        assert!(end[0].finished && end[0].percent == 100.0);
    }

    #[test]
    fn percent_stays_within_bounds_before_the_end() {
        let mut tracker = ProgressTracker::new(1.0);
        let r: Vec<_> = "out_time_us=5000000\nprogress=continue\n"
            .lines()
            .filter_map(|l| tracker.feed(l))
            .collect();
        assert!(r[0].percent < 100.0);
    }
}
