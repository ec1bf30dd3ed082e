//! Verified, resumable, multi-provider archive download.

pub mod schedule;
