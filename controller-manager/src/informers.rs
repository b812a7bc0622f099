//! The shared informers live in `machinery::informers`; controllers name them through this
//! module.

pub use machinery::informers::{Change, Informers};
