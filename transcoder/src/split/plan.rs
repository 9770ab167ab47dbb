//! Where a long source is cut: on segment boundaries, so that keyframes and segments fall
//! where one pass would put them. (Audio is cut between AAC packets near each cut, where the
//! single pass itself moves to the next segment: see `command`.)

use crate::encode::Schedule;
use crate::probe::Rational;

/// One range of the source, encoded whole (every rung) by one worker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    /// Position in the stream, from 0.
    pub index: u32,
    /// Start in source seconds, on the grid.
    pub start_s: u32,
    /// End in source seconds, on the grid; `None` for the last range (to the end).
    pub end_s: Option<u32>,
    /// First output frame: the first at or after `start_s` at the output rate, the same frame
    /// a single pass would put a keyframe on.
    pub first_frame: u64,
    /// Output frame after the last; `None` for the last range.
    pub end_frame: Option<u64>,
    /// The number of its first segment in every rung (`seg_%05d.ts`).
    pub first_segment: u32,
}

/// How ranges are cut.
#[derive(Debug, Clone, Copy)]
pub struct SplitShape {
    /// Segment length in seconds (the job's `segment_seconds`).
    pub segment_seconds: u32,
    /// Workers that will encode at once (this transcoder included).
    pub workers: u32,
    /// The first range's length in seconds, rounded up to the grid: short, so that the stream
    /// is playable soon.
    pub first_range_s: u32,
    /// The job's opening (`opening_seconds`): its short segments come before the first cut,
    /// and shift the numbers of every later segment.
    pub opening_seconds: u32,
}

impl SplitShape {
    /// Seconds between possible cuts: segment boundaries.
    pub fn grid_s(&self) -> u32 {
        self.segment_seconds.max(1)
    }

    /// The segment schedule the ranges' encoders share.
    pub fn schedule(&self) -> Schedule {
        Schedule::new(self.segment_seconds, self.opening_seconds)
    }
}

/// Cuts a `duration_s` source into ranges. The coordinator encodes a short first range, then
/// takes the next free range, which is the last once every peer has one; so every worker gets
/// an equal share of the whole, the coordinator's split into the first range and the last.
pub fn plan_ranges(duration_s: f64, fps: Rational, shape: SplitShape) -> Vec<Range> {
    let grid = shape.grid_s();
    let first = shape.first_range_s.max(1).div_ceil(grid) * grid;
    let mut cuts = vec![0u32];
    if f64::from(first) < duration_s {
        cuts.push(first);
        let workers = shape.workers.max(1);
        let share =
            ((duration_s / f64::from(workers) / f64::from(grid)).ceil() as u32).max(1) * grid;
        let mut cut = first;
        for _ in 1..workers {
            cut += share;
            // A cut less than one grid step before the end would leave a sliver of a range.
            if f64::from(cut + grid) > duration_s {
                break;
            }
            cuts.push(cut);
        }
    }
    let frame_at = |seconds: u32| {
        // The first frame n with n / fps >= seconds, in exact integers.
        (u64::from(seconds) * u64::from(fps.num)).div_ceil(u64::from(fps.den))
    };
    (0..cuts.len())
        .map(|i| {
            let start_s = cuts[i];
            let end_s = cuts.get(i + 1).copied();
            Range {
                index: i as u32,
                start_s,
                end_s,
                first_frame: frame_at(start_s),
                end_frame: end_s.map(frame_at),
                first_segment: shape.schedule().segment_at(start_s),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FPS30: Rational = Rational { num: 30, den: 1 };
    const NTSC: Rational = Rational {
        num: 30000,
        den: 1001,
    };

    fn shape(workers: u32) -> SplitShape {
        SplitShape {
            segment_seconds: 4,
            workers,
            first_range_s: 8,
            opening_seconds: 1,
        }
    }

    fn bounds(ranges: &[Range]) -> Vec<(u32, Option<u32>)> {
        ranges.iter().map(|r| (r.start_s, r.end_s)).collect()
    }

    #[test]
    fn every_worker_gets_an_equal_share_the_coordinator_in_two_ranges() {
        let ranges = plan_ranges(120.0, FPS30, shape(2));
        assert_eq!(
            bounds(&ranges),
            [(0, Some(8)), (8, Some(68)), (68, None)],
            "60 s each: the peer 8..68, the coordinator 0..8 and 68..120"
        );
        let ranges = plan_ranges(600.0, FPS30, shape(4));
        assert_eq!(
            bounds(&ranges),
            [
                (0, Some(8)),
                (8, Some(160)),
                (160, Some(312)),
                (312, Some(464)),
                (464, None)
            ]
        );
        assert!(ranges.iter().all(|r| r.start_s % 4 == 0));
    }

    #[test]
    fn frames_and_segment_numbers_follow_the_cuts_exactly() {
        let ranges = plan_ranges(120.0, FPS30, shape(2));
        assert_eq!(
            ranges[1],
            Range {
                index: 1,
                start_s: 8,
                end_s: Some(68),
                first_frame: 240,
                end_frame: Some(2040),
                // After the opening's 1, 1 and 2 s segments and one of 4 s.
                first_segment: 4,
            }
        );
        // At 29.97 fps, frame 240 is at 8.008 s: the first frame at or after 8 s is 240
        // (239 is at 7.974 s), as the single pass's forced keyframe.
        let ntsc = plan_ranges(120.0, NTSC, shape(2));
        assert_eq!(ntsc[1].first_frame, 240);
        assert_eq!(ntsc[2].first_frame, (68 * 30000_u64).div_ceil(1001));
    }

    #[test]
    fn at_29_97_fps_a_range_is_as_long_as_at_30() {
        // Every keyframe is a cut, so a range's length cannot drift off the grid.
        assert_eq!(
            bounds(&plan_ranges(3600.0, NTSC, shape(2))),
            bounds(&plan_ranges(3600.0, FPS30, shape(2)))
        );
        assert_eq!(plan_ranges(3600.0, NTSC, shape(2)).len(), 3);
    }

    #[test]
    fn no_sliver_at_the_end_and_nothing_to_split_when_short() {
        // Shares of 64 s (121 / 2 rounded up to the grid): the coordinator's last is 49 s.
        assert_eq!(
            bounds(&plan_ranges(121.0, FPS30, shape(2))),
            [(0, Some(8)), (8, Some(72)), (72, None)]
        );
        // A cut at 118 would leave 2 s: less than a grid step, so the last range takes it.
        assert_eq!(
            bounds(&plan_ranges(
                120.0,
                FPS30,
                SplitShape {
                    first_range_s: 8,
                    ..shape(3)
                }
            )),
            [(0, Some(8)), (8, Some(48)), (48, Some(88)), (88, None)]
        );
        assert_eq!(plan_ranges(8.0, FPS30, shape(4)).len(), 1);
        assert_eq!(plan_ranges(5.0, FPS30, shape(4)).len(), 1);
        // More workers than grid steps: one step each.
        assert_eq!(
            bounds(&plan_ranges(30.0, FPS30, shape(16))),
            [
                (0, Some(8)),
                (8, Some(12)),
                (12, Some(16)),
                (16, Some(20)),
                (20, Some(24)),
                (24, None)
            ]
        );
    }

    #[test]
    fn the_grid_is_the_segment_length() {
        assert_eq!(shape(1).grid_s(), 4);
    }
}
