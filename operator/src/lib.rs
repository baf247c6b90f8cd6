//! ironlb-operator as a library: the allocation engine and the Kubernetes
//! glue around it. `main.rs` only parses flags and starts it.

#![forbid(unsafe_code)]

pub mod allocator;
pub mod engine;
pub mod leader;
pub mod service;
pub mod telemetry;
