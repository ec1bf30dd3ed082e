//! Verified, resumable, multi-provider archive download.

pub mod partial;
pub mod schedule;
