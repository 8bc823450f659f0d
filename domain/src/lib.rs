//! Pure domain types and rules of ZEngine.
//!
//! Nothing in this crate performs I/O or knows about Temporal, sqlx or axum, so deterministic
//! workflow code can use every item here freely. Types parse their input once ("parse, don't
//! validate"): holding a [`TenantId`] means the string was checked.

pub mod analyze;
pub mod assistance;
pub mod channel;
pub mod events;
pub mod flow;
pub mod ids;
pub mod message;
pub mod money;
pub mod order;
pub mod payment;
pub mod phone;
pub mod receipt;
pub mod workflow_ids;

pub use ids::{Channel, ConversationId, IdError, IdempotencyKey, SessionId, TenantId};
pub use message::{Choice, InboundMedia, InboundMessage, Location, Reply};
