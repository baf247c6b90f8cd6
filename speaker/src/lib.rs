//! ironlb-speaker as a library.

pub mod lease;
pub mod net;
pub mod packet;
