//! Integration tests: the real HTTP server on a fresh database per test. The backend comes from
//! `DOCKET_TEST_BACKEND` (`sqlite`, the default, or `postgres`); `scripts/test` runs both.

mod helpers;
mod mailservers;

mod attachments;
mod audit;
mod auth;
mod billing;
mod demo;
mod erasure;
mod errors;
mod events;
mod exports;
mod hardening;
mod hostile;
mod hostile_mail;
mod isolation;
mod lifecycle;
mod mail;
mod matrix;
mod notifications;
mod openapi;
mod org_deletion;
mod people;
mod plan_limits;
mod plans;
mod processes;
mod projects;
mod ratelimit;
mod reports;
mod retention;
mod rls;
mod roundtrips;
mod search;
mod signin;
mod sla;
mod sso;
mod stream;
mod structure;
mod tenant_move;
mod tickets;
mod timeline;
mod tokens;
mod web;
mod webhooks;
mod writes;
