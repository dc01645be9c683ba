//! tessera: a stateless JWT-issuing authentication service.
//!
//! Dependency direction: `routes` -> `auth`/`domain` -> `db`. Nothing below
//! `routes` knows about HTTP.

pub mod auth;
pub mod cli;
pub mod db;
pub mod django_import;
pub mod domain;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod state;
pub mod telemetry;
