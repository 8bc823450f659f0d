//! ZEngine's side effects as Temporal activities: reply delivery, flow commands, orders,
//! payments and OCR, route solving, notifications, assistance, retention. The connectors and
//! provider clients they call are the `zengine-channels` crate; the database they read and
//! write is `zengine-storage`.
//!
//! Nothing here is replayed: code in this crate may do I/O, read the clock and retry.

pub mod assistance;
pub mod channels;
pub mod chatwoot;
pub mod conversation;
pub mod lifecycle;
pub mod orders;
pub mod payments;
pub mod retention;
pub mod routing;
pub mod vision;
