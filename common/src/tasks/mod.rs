//! One-shot ECS Fargate tasks of the transcoder's job task definition: where they run
//! ([`placement`]: cluster, task definition, network, capacity provider, read from the same
//! `ECS_*` variables by both programs) and starting one ([`launch`]: RunTask with container
//! overrides, Spot falling back to on-demand). The consumer starts one per upload; a split
//! job's coordinator starts one per range.

pub mod launch;
pub mod placement;

pub use launch::{LaunchError, TaskLauncher, MAX_OVERRIDES_BYTES};
pub use placement::{CapacityProvider, TaskPlacement, TaskPlacementArgs};
