//! Integration tests of the HTTP API against real parts: the Temporal dev server (one per test
//! binary), an in-process worker, and a fresh SQLite or PostgreSQL database per test.

mod api_keys;
mod assistance;
mod auth;
mod aws;
mod channels;
mod chatwoot;
mod client;
mod codec;
mod connectors;
mod email;
mod fakes;
mod flows;
mod grpc;
mod helpers;
mod histories;
mod media;
mod notify;
mod observability;
mod ops;
mod orders;
mod payments;
mod reports;
mod retention;
mod route_matrix;
mod routes;
mod security;
mod sms;
mod tenants;
mod webchat;
mod whatsapp;
