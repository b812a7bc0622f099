//! The event recorder lives in `machinery::events`; controllers name it through this module.

pub use machinery::events::{Broadcaster, EventType, Recorder};
