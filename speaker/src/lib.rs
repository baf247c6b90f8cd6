//! ironlb-speaker as a library.

pub mod net;
pub mod packet;
