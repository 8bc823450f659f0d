//! Pure per-provider channel codecs: parsing inbound webhooks into canonical messages and
//! delivery statuses, building outbound request bodies from a [`Reply`](crate::message::Reply),
//! and classifying provider errors as retryable or permanent.
//!
//! Nothing here performs I/O: signature secrets, HTTP clients, media downloads and retries live
//! in the activities crate, which calls these functions on the bytes it received or will send.

pub mod breaker;
pub mod chat;
pub mod connect;
pub mod five9;
pub mod strategy;
pub mod webchat;
pub mod whatsapp;
