//! Where segments begin, and so where keyframes go: a short opening that doubles up to the
//! normal length, then every `segment_seconds`.
//!
//! A player can start once the first segment of every rung is out. A 1 s first segment is out
//! a quarter of the time after ffmpeg starts that a 4 s one is, so the opening is what makes a
//! stream playable in seconds whatever its length. The opening (1, 1, 2 s before 4 s segments)
//! stays within what HLS allows: EXTINF may vary up to the target duration.
//!
//! Keyframes are forced on segment boundaries only, the same instants in every rung, and
//! nowhere else (x264's own scene-cut keyframes are off): so every keyframe is a cut, and
//! ffmpeg's HLS muxer, told to cut at the first keyframe after a short time ([`CUT_EVERY`]),
//! cuts exactly on the schedule.

/// `-hls_time` for a muxer that should cut at every keyframe: any value not above half the
/// shortest segment. The muxer cuts at the first keyframe at least `hls_time × n` seconds after
/// its first packet, where `n` counts the segments so far; a boundary `k` lies at `k` seconds
/// or later (each segment lasts at least 1 s), less up to one frame in a range that starts
/// between frames, which is more than `k / 2`.
pub const CUT_EVERY: &str = "0.5";

/// The segment boundaries of an encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// The normal segment length in seconds (at least 1).
    pub segment_seconds: u32,
    /// The first segment's length in seconds; each next one doubles until the normal length.
    /// 0, or anything not shorter than `segment_seconds`, means no opening.
    pub opening_seconds: u32,
}

impl Schedule {
    /// The schedule of `segment_seconds` segments after an opening of `opening_seconds`.
    pub fn new(segment_seconds: u32, opening_seconds: u32) -> Self {
        Self {
            segment_seconds: segment_seconds.max(1),
            opening_seconds,
        }
    }

    /// The schedule `settings` ask for.
    pub fn of(settings: &crate::config::EncodeSettings) -> Self {
        Self::new(settings.segment_seconds, settings.opening_seconds)
    }

    /// The opening's boundaries after 0, before the first normal one (`[1, 2]` for 1 s before
    /// 4 s segments): each doubles the one before.
    pub fn opening_boundaries(&self) -> Vec<u32> {
        let mut boundaries = Vec::new();
        let mut next = self.opening_seconds;
        while next > 0 && next < self.segment_seconds {
            boundaries.push(next);
            next = next.saturating_mul(2);
        }
        boundaries
    }

    /// The first segment's length: the opening's, or a normal segment when there is none.
    pub fn first_segment_seconds(&self) -> u32 {
        self.opening_boundaries()
            .first()
            .copied()
            .unwrap_or(self.segment_seconds)
    }

    /// The number of the segment that starts at `start_s`, a multiple of `segment_seconds`
    /// (where split ranges are cut): the opening's extra segments come first.
    pub fn segment_at(&self, start_s: u32) -> u32 {
        let normal = start_s / self.segment_seconds;
        if normal == 0 {
            0
        } else {
            normal + self.opening_boundaries().len() as u32
        }
    }

    /// The `-force_key_frames` expression for an encode whose `t` counts from 0 at the
    /// source's start: the opening's boundaries one by one (`n_forced` counts the keyframes
    /// forced so far), then every `segment_seconds`.
    pub fn keyframes_from_start(&self) -> String {
        let opening = self.opening_boundaries();
        let extra = opening.len();
        // After the opening, keyframe n lies at (n - extra) normal segments.
        let mut when = format!("{}*(n_forced-{extra})", self.segment_seconds);
        for (i, boundary) in opening.iter().enumerate().rev() {
            when = format!("if(lt(n_forced,{}),{boundary},{when})", i + 2);
        }
        format!("expr:gte(t,if(lt(n_forced,1),0,{when}))")
    }

    /// The `-force_key_frames` expression for a range after the first, whose `t` counts from
    /// its first frame, `late_s` seconds after its start on the grid: every `segment_seconds`
    /// of source time (a hair early, so that a keyframe due exactly on a frame is not lost to
    /// rounding).
    pub fn keyframes_after(&self, late_s: f64) -> String {
        format!(
            "expr:gte(t,n_forced*{}-{:.6}-0.000001)",
            self.segment_seconds,
            (late_s * 1e6).ceil() / 1e6
        )
    }

    /// x264's GOP limit in frames at `fps`: past the longest segment, so that it never fires
    /// before the next forced keyframe.
    pub fn gop_frames(&self, fps: f64) -> u32 {
        (fps * f64::from(self.segment_seconds)).ceil() as u32 * 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The boundaries the expression forces, evaluated the way ffmpeg does: a frame becomes a
    /// keyframe when `t` reaches the expression's value for the keyframes forced so far.
    fn forced_times(expression: &str, fps: f64, seconds: f64) -> Vec<f64> {
        let body = expression.strip_prefix("expr:gte(t,").unwrap();
        let body = &body[..body.len() - 1];
        let mut forced = Vec::new();
        let frames = (seconds * fps) as u32;
        for frame in 0..frames {
            let t = f64::from(frame) / fps;
            if t >= evaluate(body, forced.len() as f64) {
                forced.push(t);
            }
        }
        forced
    }

    /// Just enough of ffmpeg's expression language for `keyframes_from_start`: nested
    /// `if(lt(n_forced,K),A,B)`, then `S*(n_forced-E)`.
    fn evaluate(expression: &str, n: f64) -> f64 {
        if let Some(rest) = expression.strip_prefix("if(lt(n_forced,") {
            let (k, rest) = rest.split_once("),").unwrap();
            let (value, otherwise) = rest.split_once(',').unwrap();
            let otherwise = &otherwise[..otherwise.len() - 1];
            return if n < k.parse::<f64>().unwrap() {
                value.parse().unwrap()
            } else {
                evaluate(otherwise, n)
            };
        }
        let (step, extra) = expression.split_once("*(n_forced-").unwrap();
        let extra = extra.trim_end_matches(')');
        step.parse::<f64>().unwrap() * (n - extra.parse::<f64>().unwrap())
    }

    #[test]
    fn a_one_second_opening_doubles_up_to_four_second_segments() {
        let schedule = Schedule::new(4, 1);
        assert_eq!(schedule.opening_boundaries(), [1, 2]);
        let times = forced_times(&schedule.keyframes_from_start(), 30.0, 21.0);
        let want = [0.0, 1.0, 2.0, 4.0, 8.0, 12.0, 16.0, 20.0];
        assert_eq!(times.len(), want.len(), "{times:?}");
        for (got, want) in times.iter().zip(want) {
            assert!((got - want).abs() < 1e-9, "{times:?}");
        }
        // The normal segments after the opening are numbered two later.
        assert_eq!(schedule.segment_at(0), 0);
        assert_eq!(schedule.segment_at(4), 3);
        assert_eq!(schedule.segment_at(8), 4);
    }

    #[test]
    fn at_a_rate_that_is_not_whole_each_keyframe_is_the_first_frame_at_its_boundary() {
        let fps = 30000.0 / 1001.0;
        let times = forced_times(&Schedule::new(4, 1).keyframes_from_start(), fps, 13.0);
        let boundaries = [0.0, 1.0, 2.0, 4.0, 8.0, 12.0];
        assert_eq!(times.len(), boundaries.len(), "{times:?}");
        for (t, boundary) in times.iter().zip(boundaries) {
            assert!(*t >= boundary && *t < boundary + 1.0 / fps, "{times:?}");
        }
    }

    #[test]
    fn no_opening_means_every_segment_at_the_normal_length() {
        for opening in [0, 4, 6] {
            let schedule = Schedule::new(4, opening);
            assert!(schedule.opening_boundaries().is_empty());
            assert_eq!(schedule.segment_at(8), 2);
            let times = forced_times(&schedule.keyframes_from_start(), 25.0, 13.0);
            assert_eq!(times, [0.0, 4.0, 8.0, 12.0], "opening {opening}");
        }
        // An opening that does not divide the length still doubles, then joins the grid.
        assert_eq!(Schedule::new(6, 1).opening_boundaries(), [1, 2, 4]);
        assert_eq!(Schedule::new(6, 1).segment_at(6), 4);
    }

    #[test]
    fn the_cut_rule_holds_for_every_boundary() {
        // hls_time × n must not exceed any boundary's time, even one frame early.
        let cut: f64 = CUT_EVERY.parse().unwrap();
        let schedule = Schedule::new(4, 1);
        let mut boundaries: Vec<f64> = schedule
            .opening_boundaries()
            .iter()
            .map(|&b| f64::from(b))
            .collect();
        boundaries.extend((1..1000).map(|k| f64::from(4 * k)));
        for (n, boundary) in boundaries.iter().enumerate() {
            assert!(boundary - 1.0 / 24.0 >= cut * (n + 1) as f64, "{n}");
        }
    }
}
