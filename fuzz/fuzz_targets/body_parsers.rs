//! `parse_json` and `parse_form` on arbitrary bytes, into structs shaped
//! like tessera's request bodies (those types are private to the crate).
//!
//! Never panics; every `Err` renders as a well-formed problem body made of
//! fixed texts plus the client's own field names; a long run of digits in
//! the input (a stand-in for a password or token) never comes back outside
//! a field name, and a JSON body that is nothing but such a run never comes
//! back at all.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tessera::error::ApiError;
use tessera::http::body::{parse_form, parse_json};
use tessera_fuzz::{DISTINCTIVE_DIGITS, check_parser_error, rendered_text};

/// `POST /auth/login`, with the password as a plain string.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Login {
    username: String,
    password: String,
}

/// `POST /users` (registration).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Registration {
    username: String,
    email: String,
    password: SecretString,
}

/// `PATCH /users/{id}`: every field optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Update {
    username: Option<String>,
    email: Option<String>,
    role: Option<String>,
}

/// `PUT /users/{id}/password`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ChangePassword {
    #[serde(default)]
    current_password: Option<SecretString>,
    new_password: SecretString,
}

/// `POST /auth/introspect`, the one body also accepted as a form.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Introspect {
    token: SecretString,
    #[serde(default)]
    token_type_hint: Option<String>,
}

/// Typed, lenient fields (like the user list's query), so values can be
/// refused for their type and unknown keys are ignored.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Paging {
    limit: Option<i64>,
    offset: Option<i64>,
    active: Option<bool>,
}

/// A body that is only a long run of digits, after any ASCII whitespace.
fn is_digit_run(data: &[u8]) -> bool {
    let trimmed = data.trim_ascii();
    trimmed.len() >= DISTINCTIVE_DIGITS && trimmed.iter().all(u8::is_ascii_digit)
}

fn check<T>(result: Result<T, ApiError>, data: &[u8], json: bool) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(error) => {
            check_parser_error(&error, data);
            if json && is_digit_run(data) {
                let digits = String::from_utf8_lossy(data.trim_ascii()).into_owned();
                let text = rendered_text(&error);
                assert!(
                    !text.contains(&digits),
                    "the problem body echoes the whole input {digits:?}: {text}"
                );
            }
            None
        }
    }
}

fn both<T: DeserializeOwned>(data: &[u8]) -> (Option<T>, Option<T>) {
    (
        check(parse_json::<T>(data), data, true),
        check(parse_form::<T>(data), data, false),
    )
}

fuzz_target!(|data: &[u8]| {
    if let (Some(login), _) = both::<Login>(data) {
        // A JSON object: accepted bodies never start with `[`.
        assert_ne!(data.trim_ascii().first(), Some(&b'['), "{login:?}");
    }
    both::<Update>(data);
    both::<Paging>(data);
    if let (Some(body), _) = both::<Registration>(data) {
        let _ = body.password.expose_secret().len();
    }
    both::<ChangePassword>(data);
    both::<Introspect>(data);
});
