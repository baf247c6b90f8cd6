//! ironlb-speaker as a library.

pub mod packet;
