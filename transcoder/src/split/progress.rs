//! The job's progress while it runs as ranges: the share of the source's seconds that lies in
//! finished ranges. A range counts once it is done and not before, because workers do not pass
//! their own progress on (a peer's `EncodeRange` progress and this transcoder's range encodes
//! are not listened to); so progress moves in steps, one per range, in whatever order the
//! ranges finish.

use super::plan::Range;
use crate::encode::Progress;

/// Seconds of source in `range`: to the source's end (`source_s`) for the last, open-ended
/// one.
pub fn range_seconds(range: &Range, source_s: f64) -> f64 {
    let end = range.end_s.map_or(source_s, f64::from);
    end - f64::from(range.start_s)
}

/// The whole job's progress once the ranges in `done` are finished, of a source lasting
/// `source_s` seconds.
pub fn job_progress<'a>(done: impl IntoIterator<Item = &'a Range>, source_s: f64) -> Progress {
    let seconds: f64 = done.into_iter().map(|r| range_seconds(r, source_s)).sum();
    progress(seconds / source_s.max(0.001))
}

/// The whole job's progress when `fraction` of the source is encoded.
fn progress(fraction: f64) -> Progress {
    Progress {
        percent: (fraction * 100.0).clamp(0.0, 100.0),
        out_time_s: 0.0,
        frame: 0,
        fps: None,
        speed: None,
        eta_s: None,
        finished: fraction >= 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(index: u32, start_s: u32, end_s: Option<u32>) -> Range {
        Range {
            index,
            start_s,
            end_s,
            first_frame: u64::from(start_s) * 30,
            end_frame: end_s.map(|s| u64::from(s) * 30),
            first_segment: start_s / 4,
        }
    }

    /// A 120.5 s source in three ranges: 8 s, 60 s and the last 52.5 s.
    fn ranges() -> [Range; 3] {
        [
            range(0, 0, Some(8)),
            range(1, 8, Some(68)),
            range(2, 68, None),
        ]
    }

    const SOURCE_S: f64 = 120.5;

    fn percent(done: &[Range]) -> f64 {
        job_progress(done, SOURCE_S).percent
    }

    #[test]
    fn the_last_range_runs_to_the_end_of_the_source() {
        let [first, middle, last] = ranges();
        assert_eq!(range_seconds(&first, SOURCE_S), 8.0);
        assert_eq!(range_seconds(&middle, SOURCE_S), 60.0);
        assert_eq!(range_seconds(&last, SOURCE_S), 52.5);
    }

    #[test]
    fn progress_is_the_share_of_the_source_in_finished_ranges_whatever_their_order() {
        let [first, middle, last] = ranges();
        assert!((percent(&[first]) - 800.0 / 120.5).abs() < 1e-9);
        assert!((percent(&[middle]) - 6000.0 / 120.5).abs() < 1e-9);
        assert!((percent(&[first, last]) - 6050.0 / 120.5).abs() < 1e-9);
        let partial = job_progress(&[last, middle], SOURCE_S);
        assert!(!partial.finished);
        assert_eq!(partial.out_time_s, 0.0, "no one encode's clock applies");
        assert_eq!(partial.eta_s, None);
    }

    #[test]
    fn every_range_done_is_the_whole_job_finished() {
        let all = job_progress(&ranges(), SOURCE_S);
        assert_eq!(all.percent, 100.0);
        assert!(all.finished);
        let single = job_progress(&[range(0, 0, None)], SOURCE_S);
        assert_eq!(single.percent, 100.0, "one range, open-ended");
        assert!(single.finished);
    }

    #[test]
    fn progress_stays_between_0_and_100() {
        // Ranges adding up to more than the source: still 100, never more.
        let over = job_progress(&[range(0, 0, Some(8))], 6.0);
        assert_eq!(over.percent, 100.0);
        assert!(over.finished);
        assert_eq!(job_progress(std::iter::empty(), SOURCE_S).percent, 0.0);
        // A source of no length does not divide by zero.
        let empty = job_progress(&[range(0, 0, None)], 0.0);
        assert_eq!(empty.percent, 0.0);
        assert!(!empty.finished);
    }
}
