//! What rbuild's tests share, as cargo's `cargo-test-support`: the unit tests of each crate
//! and the integration suite use the same helpers instead of each writing its own.
//!
//! - [`tar`]: archives made by hand, valid ([`tar::TarEntry`], [`tar::layer_tar`]) or with
//!   headers no tool would write ([`tar::RawTar`]: `..` names, absolute links, any type).

pub mod tar;
