//! ZEngine's side effects as Temporal activities: channel strategies and their provider
//! clients, flow commands, orders, payments and OCR, route solving, notifications, assistance.
//! The database they read and write is the `zengine-storage` crate.
//!
//! Nothing here is replayed: code in this crate may do I/O, read the clock and retry.

pub mod assistance;
pub mod aws;
pub mod channels;
pub mod chatwoot;
pub mod conversation;
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
