//! Docket: multi-tenant ticket and task management in one binary.
//!
//! Modules follow the business capabilities of `DESIGN.md`; each owns its tables and is reached
//! through its service functions. `http` is the thin outer layer, `store` the inner one.

pub mod access;
pub mod app;
pub mod audit;
pub mod background;
pub mod billing;
pub mod chain;
pub mod config;
pub mod conversation;
pub mod demo;
pub mod doctor;
pub mod error;
pub mod events;
pub mod exports;
pub mod files;
pub mod http;
pub mod idempotency;
pub mod identity;
pub mod lifecycle;
pub mod mail;
pub mod notify;
pub mod outbound;
pub mod pagination;
pub mod plans;
pub mod request_id;
pub mod store;
pub mod tenancy;
pub mod text;
pub mod vault;
pub mod webhooks;
pub mod work;
pub mod worker;

#[cfg(test)]
mod layers;
