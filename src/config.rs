//! Node configuration. (Being written.)
