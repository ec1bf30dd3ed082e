//! The libp2p node. (Being written.)
pub mod transfer;
