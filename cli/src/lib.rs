//! `ironlb`, the command line for people running ironlb. Its one subcommand today is
//! `ironlb migrate`, which converts a MetalLB configuration into ironlb resources.
//!
//! Data flow of `migrate`, one module per step:
//! - [`input`] reads files and stdin and sorts each document by what it is; [`cluster`] does
//!   the same for what `--from-cluster` fetches;
//! - [`legacy`] and [`metallb_crds`] are MetalLB's formats: the v0.12 ConfigMap and the
//!   `metallb.io` custom resources;
//! - [`convert`] builds ironlb objects from them (pure, tested from YAML fixtures) and a
//!   [`report`] of what it left out and why;
//! - [`manifest`] writes the objects as YAML; [`migrate`] holds the flags and runs the steps.

#![forbid(unsafe_code)]

pub mod cluster;
pub mod convert;
pub mod input;
pub mod legacy;
pub mod manifest;
pub mod metallb_crds;
pub mod migrate;
pub mod report;
