//! Split and stitch: a long source is cut into time ranges on the segment grid, each range's
//! whole ladder is encoded by a different worker (this transcoder, a warm peer, or a one-shot
//! ECS task), and the ranges' segments join into playlists a player cannot tell from one pass.
//!
//! [`plan`] chooses the cuts, [`command`] is the ffmpeg command for one range (continuous
//! timestamps, keyframes on the shared grid, audio cut between AAC packets where the single
//! pass starts a segment), [`worker`] runs a range, [`peers`] asks another transcoder to,
//! [`tasks`] starts an ECS task to, [`coordinator`] runs a job's ranges and publishes as they
//! land, and [`stitch`] joins the playlists.
//!
//! The coordinator's pieces, private to it: `queue` (which worker takes which range),
//! `dispatch` (each worker's loop), `retry` (what a range's failure means, how long a failing
//! peer rests), `progress` (the job's progress from its finished ranges), `landed` (when the
//! published stream can grow), `master` (the master playlist and renditions), and `published`
//! (writing them, and taking them back when the job fails).

pub mod command;
pub mod convert;
pub mod coordinator;
mod dispatch;
mod landed;
mod master;
pub mod peers;
pub mod plan;
mod progress;
mod published;
mod queue;
mod retry;
mod source;
pub mod stitch;
pub mod tasks;
pub mod worker;

pub use coordinator::{Coordinator, SplitJob};
pub use peers::Peers;
pub use plan::{plan_ranges, Range, SplitShape};
pub use worker::{run_range_job, RangeJob};

/// When and how a job splits.
#[derive(Debug, Clone, Default)]
pub struct SplitSettings {
    /// Sources longer than this many seconds are split when there are peers; `None` never.
    pub min_seconds: Option<f64>,
    /// The first range's length (rounded up to the grid): short, for a fast first playable.
    pub first_range_seconds: u32,
    /// The other transcoders.
    pub peers: Peers,
    /// One-shot ECS tasks that take ranges too, when configured.
    pub tasks: Option<tasks::TaskRunners>,
}

impl SplitSettings {
    /// Workers besides this transcoder: peers as configured, and task slots.
    pub fn helpers(&self) -> u32 {
        self.peers.endpoints.len() as u32 + self.tasks.as_ref().map_or(0, |t| t.count)
    }
}
