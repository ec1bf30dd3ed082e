//! The daemon's local HTTP API. (Being written.)
