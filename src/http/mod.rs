//! The HTTP edge's plumbing, shared by every route module: body extractors
//! that answer in problem+json, the bearer and client-address extractors,
//! and the token response.
//! Handlers live in the route modules; nothing here is a handler.

pub mod body;
pub mod extract;
pub mod path;
pub mod token;
