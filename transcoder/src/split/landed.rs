//! The ranges that have landed, and when the published stream can grow.
//!
//! A player reads a media playlist from its first segment on, so only the finished ranges from
//! range 0 on, without a gap, can be published: range 2 landing before range 1 waits for it.
//! While ranges are still missing the media playlists are EVENT playlists that grow, and the
//! master goes out with the first growth, since the stream is playable from then on. Once
//! every range is in nothing grows: the VOD playlists and the measured master are written
//! once, at the end (`published`). So a job of a single range publishes nothing early.

use std::collections::BTreeMap;

use super::stitch::RangeOutput;

/// Finished ranges by index, and how many of them the published playlists hold.
#[derive(Debug, Default)]
pub struct Landed {
    done: BTreeMap<u32, RangeOutput>,
    /// Ranges from the first that are in the EVENT playlists.
    published: usize,
}

/// The published playlists should grow to these ranges.
#[derive(Debug, Clone, PartialEq)]
pub struct Growth {
    /// The finished ranges from the first, in order, without a gap.
    pub ranges: Vec<RangeOutput>,
    /// True when nothing was published yet: the master goes out with these playlists.
    pub first: bool,
}

impl Landed {
    /// Records a finished range.
    pub fn add(&mut self, output: RangeOutput) {
        self.done.insert(output.index, output);
    }

    /// How many ranges are finished.
    pub fn count(&self) -> usize {
        self.done.len()
    }

    /// The finished ranges' indexes, in order.
    pub fn indexes(&self) -> impl Iterator<Item = u32> + '_ {
        self.done.keys().copied()
    }

    /// The finished ranges from the first, in order, up to the first gap.
    pub fn leading(&self) -> Vec<RangeOutput> {
        (0..).map_while(|i| self.done.get(&i).cloned()).collect()
    }

    /// What the EVENT playlists should grow to in a job of `total` ranges: `None` when no
    /// range joined the leading ones, or when every range is in (the end writes VOD ones).
    pub fn growth(&self, total: usize) -> Option<Growth> {
        let leading = self.leading();
        if leading.len() <= self.published || leading.len() == total {
            return None;
        }
        Some(Growth {
            ranges: leading,
            first: self.published == 0,
        })
    }

    /// Records that the playlists now hold `growth`: called once it is published, so a
    /// growth that failed to publish is not taken for done.
    pub fn grown(&mut self, growth: &Growth) {
        self.published = growth.ranges.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::split::stitch::tests::range;

    /// Range `index` of 4 s segments, two per range.
    fn output(index: u32) -> RangeOutput {
        range(index, index * 2, &[4.0, 4.0])
    }

    fn indexes(growth: &Growth) -> Vec<u32> {
        growth.ranges.iter().map(|r| r.index).collect()
    }

    /// Lands `index` and publishes what it allows; the indexes published, if any.
    fn land(landed: &mut Landed, index: u32, total: usize) -> Option<(Vec<u32>, bool)> {
        landed.add(output(index));
        let growth = landed.growth(total)?;
        landed.grown(&growth);
        Some((indexes(&growth), growth.first))
    }

    #[test]
    fn the_stream_grows_from_the_first_range_and_announces_with_it() {
        let mut landed = Landed::default();
        assert_eq!(land(&mut landed, 0, 4), Some((vec![0], true)));
        assert_eq!(land(&mut landed, 1, 4), Some((vec![0, 1], false)));
        assert_eq!(land(&mut landed, 2, 4), Some((vec![0, 1, 2], false)));
    }

    #[test]
    fn a_range_landing_early_waits_for_the_ones_before_it() {
        let mut landed = Landed::default();
        assert_eq!(land(&mut landed, 2, 5), None, "0 and 1 are missing");
        assert_eq!(land(&mut landed, 1, 5), None, "0 is missing");
        assert_eq!(
            land(&mut landed, 0, 5),
            Some((vec![0, 1, 2], true)),
            "all three at once, in order"
        );
        assert_eq!(land(&mut landed, 4, 5), None, "3 is missing");
        assert_eq!(landed.count(), 4);
        assert_eq!(landed.indexes().collect::<Vec<_>>(), [0, 1, 2, 4]);
    }

    #[test]
    fn the_last_range_in_leaves_the_playlists_to_the_end() {
        let mut landed = Landed::default();
        assert_eq!(land(&mut landed, 0, 3), Some((vec![0], true)));
        assert_eq!(land(&mut landed, 2, 3), None);
        assert_eq!(land(&mut landed, 1, 3), None, "every range: VOD at the end");
        assert_eq!(
            landed.leading().iter().map(|r| r.index).collect::<Vec<_>>(),
            [0, 1, 2]
        );
    }

    #[test]
    fn a_single_range_job_publishes_nothing_early() {
        let mut landed = Landed::default();
        assert_eq!(land(&mut landed, 0, 1), None);
        assert_eq!(landed.leading(), [output(0)]);
    }

    #[test]
    fn a_growth_not_yet_published_is_offered_again() {
        let mut landed = Landed::default();
        landed.add(output(0));
        let growth = landed.growth(3).unwrap();
        assert_eq!(landed.growth(3), Some(growth.clone()), "not marked grown");
        landed.grown(&growth);
        assert_eq!(landed.growth(3), None, "nothing new");
    }
}
