//! The black-box suite: every test drives a real tessera over HTTP, once on
//! SQLite and once on PostgreSQL (when `TESSERA_TEST_POSTGRES_URL` is set).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod django;
mod errors;
mod governance;
mod helpers;
mod keys;
mod mail;
mod mfa;
mod oauth;
mod openapi;
mod ops;
mod passkeys;
mod recovery;
mod sessions;
mod throttling;
mod users;
