//! ironlb-speaker as a library: the parts of the data path (see `controller` for how they fit).

pub mod claims;
pub mod conflicts;
pub mod controller;
pub mod decide;
#[cfg(test)]
mod fixtures;
pub mod lease;
pub mod local;
pub mod net;
pub mod packet;
pub mod probes;
pub mod responder;
pub mod telemetry;
#[cfg(test)]
mod testlab;
