//! tessera's own pages for the links in its mails: `/reset-password` and
//! `/verify-email`. Small, no external assets, no JavaScript: plain form
//! posts. Opening a link (GET) never uses its token, only the form post
//! does, so a mail scanner that fetches links cannot burn them.

use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpResponse, HttpResponseBuilder, web};
use secrecy::SecretString;
use serde::Deserialize;

use super::{Endpoint, on};
use crate::domain::Password;
use crate::http::body::parse_form;
use crate::recovery::RecoveryError;
use crate::state::AppState;

pub const RESET_PASSWORD_PATH: &str = "/reset-password";
pub const VERIFY_EMAIL_PATH: &str = "/verify-email";

/// No script, no framing, no outside resources, forms only to tessera, and
/// no `Referer` carrying the token anywhere.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The pages, mounted after the API's routes (they are not JSON, so the
/// OpenAPI document does not list them).
pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![
        (
            RESET_PASSWORD_PATH,
            vec![
                on(Method::GET, || web::to(reset_password_form)),
                on(Method::POST, || web::to(reset_password)),
            ],
        ),
        (
            VERIFY_EMAIL_PATH,
            vec![
                on(Method::GET, || web::to(verify_email_form)),
                on(Method::POST, || web::to(verify_email)),
            ],
        ),
    ]
}

#[derive(Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

#[derive(Deserialize)]
struct ResetForm {
    #[serde(default)]
    token: String,
    new_password: SecretString,
    confirm_password: SecretString,
}

#[derive(Deserialize)]
struct VerifyForm {
    #[serde(default)]
    token: String,
}

async fn reset_password_form(query: web::Query<TokenQuery>) -> HttpResponse {
    page(
        StatusCode::OK,
        "Choose a new password",
        &reset_form(&query.token, None),
    )
}

async fn reset_password(state: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let form: ResetForm = match parse_form(&body) {
        Ok(form) => form,
        Err(_) => {
            return page(
                StatusCode::BAD_REQUEST,
                "Choose a new password",
                &reset_form(
                    "",
                    Some("The form was incomplete; open the link from the mail again."),
                ),
            );
        }
    };
    if secrecy::ExposeSecret::expose_secret(&form.new_password)
        != secrecy::ExposeSecret::expose_secret(&form.confirm_password)
    {
        return page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Choose a new password",
            &reset_form(&form.token, Some("The two passwords differ.")),
        );
    }
    let password = match Password::parse(form.new_password) {
        Ok(password) => password,
        Err(message) => {
            return page(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Choose a new password",
                &reset_form(&form.token, Some(&message)),
            );
        }
    };
    let token = SecretString::from(form.token);
    match state.recovery.confirm_password_reset(token, password).await {
        Ok(()) => page(
            StatusCode::OK,
            "Password changed",
            "<p>Your password has been changed. Every device signed in before has been \
             signed out; sign in again with the new password.</p>",
        ),
        Err(error) => failure(error),
    }
}

async fn verify_email_form(query: web::Query<TokenQuery>) -> HttpResponse {
    let token = escape(&query.token);
    page(
        StatusCode::OK,
        "Confirm your email address",
        &format!(
            "<p>Confirm that this address is yours.</p>\
             <form method=\"post\" action=\"{VERIFY_EMAIL_PATH}\">\
             <input type=\"hidden\" name=\"token\" value=\"{token}\">\
             <button type=\"submit\">Confirm my address</button></form>"
        ),
    )
}

async fn verify_email(state: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let token = parse_form::<VerifyForm>(&body)
        .map(|form| form.token)
        .unwrap_or_default();
    match state.recovery.verify_email(SecretString::from(token)).await {
        Ok(()) => page(
            StatusCode::OK,
            "Address confirmed",
            "<p>Thank you: your email address is confirmed.</p>",
        ),
        Err(error) => failure(error),
    }
}

fn reset_form(token: &str, problem: Option<&str>) -> String {
    let token = escape(token);
    let problem = problem
        .map(|message| {
            format!(
                "<p class=\"problem\" role=\"alert\">{}</p>",
                escape(message)
            )
        })
        .unwrap_or_default();
    format!(
        "{problem}<form method=\"post\" action=\"{RESET_PASSWORD_PATH}\">\
         <input type=\"hidden\" name=\"token\" value=\"{token}\">\
         <label for=\"new_password\">New password</label>\
         <input id=\"new_password\" name=\"new_password\" type=\"password\" \
         autocomplete=\"new-password\" minlength=\"8\" maxlength=\"128\" required>\
         <label for=\"confirm_password\">The same again</label>\
         <input id=\"confirm_password\" name=\"confirm_password\" type=\"password\" \
         autocomplete=\"new-password\" minlength=\"8\" maxlength=\"128\" required>\
         <button type=\"submit\">Set the new password</button></form>\
         <p class=\"hint\">At least 8 characters; a long phrase is easier to remember \
         and harder to guess. Very common passwords are refused.</p>"
    )
}

/// The page for a token that did not work, or a failure behind it.
fn failure(error: RecoveryError) -> HttpResponse {
    let (status, message) = match &error {
        RecoveryError::InvalidToken | RecoveryError::NotFound => (
            StatusCode::UNAUTHORIZED,
            "This link is invalid, has expired, or was already used. Ask for a new one.",
        ),
        RecoveryError::Taken(_) => (
            StatusCode::CONFLICT,
            "That address now belongs to another account.",
        ),
        RecoveryError::AlreadyVerified => (StatusCode::CONFLICT, "Nothing to confirm."),
        RecoveryError::Hashing(_) | RecoveryError::Store(_) => {
            tracing::error!(%error, "a page's request failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "Something went wrong on our side; try again in a moment.",
            )
        }
    };
    page(
        status,
        "That did not work",
        &format!("<p class=\"problem\" role=\"alert\">{message}</p>"),
    )
}

/// A whole page with the security headers.
fn page(status: StatusCode, title: &str, body: &str) -> HttpResponse {
    let title = escape(title);
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{title}</title><style>{STYLE}</style></head>\
         <body><main><h1>{title}</h1>{body}</main></body></html>"
    );
    HttpResponseBuilder::new(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(html)
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f6f6f6;margin:0}\
main{max-width:26rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:8px}\
label{display:block;margin-top:1rem}input{width:100%;padding:.5rem;box-sizing:border-box}\
button{margin-top:1.5rem;padding:.6rem 1rem}.problem{color:#a00}.hint{color:#555;font-size:.9rem}";

/// Escapes text for HTML content and attribute values.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_html() {
        assert_eq!(
            escape("\"><script>x</script>&'"),
            "&quot;&gt;&lt;script&gt;x&lt;/script&gt;&amp;&#39;"
        );
    }
}
