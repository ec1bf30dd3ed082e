//! The libp2p node. (Being written.)
