//! tessera: a stateless JWT-issuing authentication service.
//!
//! Dependency direction, one way: `startup` -> `routes` (handlers: extract,
//! authorize, call, map) -> `http` (extractors), `error` (the mapping of
//! service errors to problem responses) -> the services `accounts` and
//! `auth::sessions` -> `auth`, `domain`, `db` -> `settings`. Nothing below
//! `routes` and `http` knows about HTTP; only `routes` and `startup` import
//! `routes`; `settings` imports nothing of the crate.

pub mod accounts;
pub mod auth;
pub mod cli;
pub mod db;
pub mod domain;
pub mod email;
pub mod error;
pub mod http;
pub mod import;
pub mod metrics;
pub mod openapi;
pub mod recovery;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod threads;
