//! Everything in ZEngine that has side effects: database repositories, and (as they land)
//! channel strategies, OCR, route solving and notifications, exposed to workflows as Temporal
//! activities.
//!
//! Nothing here is replayed: code in this crate may do I/O, read the clock and retry.

pub mod assistance;
pub mod aws;
pub mod certificates;
pub mod channels;
pub mod chatwoot;
pub mod conversation;
pub mod db;
pub mod files;
pub mod lifecycle;
pub mod meter;
pub mod orders;
pub mod outbound;
pub mod payments;
pub mod retention;
pub mod routing;
pub mod secrets;
pub mod vision;

pub use db::{Backend, Database};
