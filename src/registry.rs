//! The registry façade. (Being written.)
