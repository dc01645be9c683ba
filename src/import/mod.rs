//! Importing accounts from the systems tessera replaces. Each source is a
//! module; it writes users through [`crate::accounts::insert`], like
//! registration does.

pub mod django;
