//! Software bill of materials: what an image contains, read from its own package databases
//! through the boundary (issue 15). Today: the system package readers; the SPDX document and
//! its attachment to the image come next.

pub mod packages;

pub use packages::{system_packages, Ecosystem, OsRelease, Package};
