//! `/users*`: registration, listing, reading, updating, password change,
//! deletion.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use chrono::NaiveDateTime;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::accounts::{NewAccount, PasswordChange, ProfileChanges};
use crate::db::users::{self, PageStart};
use crate::domain::{Email, Password, Role, UserCursor, Username};
use crate::error::{ApiError, ApiResult, FieldErrors, PROBLEM_JSON};
use crate::http::body::{JsonBody, not_null};
use crate::http::extract::{Authenticated, CurrentUser, MaybeCurrentUser};
use crate::openapi::{Problem, RoleSchema};
use crate::settings::Registration;
use crate::state::AppState;

/// This module's operations, for the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(list, create, me, get, update, delete, change_password))]
pub struct Api;

/// RFC 3339 UTC with a `Z`, e.g. `2026-11-28T06:34:40.123456Z`.
fn rfc3339(at: NaiveDateTime) -> String {
    at.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// A user as its owner or an admin sees it.
#[derive(Serialize, ToSchema)]
// Serializing ignores it; the schema gets `additionalProperties: false`, so
// that a full user is not also a public one in `UserView`'s `oneOf`.
#[serde(deny_unknown_fields)]
pub struct FullUser {
    #[schema(format = "uuid")]
    id: String,
    #[schema(example = "alice")]
    username: String,
    /// An email address, or empty for an account imported from Django
    /// without one (such a user logs in by username).
    #[schema(example = "alice@example.com")]
    email: String,
    #[schema(value_type = RoleSchema)]
    role: String,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    created_at: String,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    updated_at: String,
    /// False for a disabled account: it cannot log in, refresh or reset
    /// its password, and its earlier tokens fail on logout-sensitive routes.
    is_active: bool,
    /// Whether the email has been confirmed through a verification link
    /// (an address imported from Django counts as confirmed).
    email_verified: bool,
    /// A new address waiting for its confirmation link, or null.
    #[schema(example = json!(null))]
    pending_email: Option<String>,
}

/// A user as everyone else sees it.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublicUser {
    #[schema(format = "uuid")]
    id: String,
    #[schema(example = "alice")]
    username: String,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    created_at: String,
}

/// A user: full fields for oneself or an admin, public ones otherwise.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum UserView {
    Full(FullUser),
    Public(PublicUser),
}

impl UserView {
    fn full(user: users::User) -> Self {
        UserView::Full(FullUser {
            id: user.id,
            username: user.username,
            email: user.email,
            role: user.role,
            created_at: rfc3339(user.created_at),
            updated_at: rfc3339(user.updated_at),
            is_active: user.is_active,
            email_verified: user.email_verified,
            pending_email: user.pending_email,
        })
    }

    fn public(user: users::User) -> Self {
        UserView::Public(PublicUser {
            id: user.id,
            username: user.username,
            created_at: rfc3339(user.created_at),
        })
    }

    fn for_viewer(user: users::User, full: bool) -> Self {
        if full {
            Self::full(user)
        } else {
            Self::public(user)
        }
    }
}

/// Collects per-field messages while parsing a request.
#[derive(Default)]
struct Validator(FieldErrors);

impl Validator {
    fn check<T>(&mut self, field: &str, parsed: Result<T, String>) -> Option<T> {
        parsed
            .map_err(|message| self.0.entry(field.to_owned()).or_default().push(message))
            .ok()
    }

    fn finish(self) -> ApiResult<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(self.0))
        }
    }
}

/// A new account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// Letters, digits and `@.+-_`; unique, case-insensitively, among
    /// usernames and emails.
    #[schema(
        min_length = 1,
        max_length = 150,
        pattern = r"^[\w.@+-]+$",
        example = "alice"
    )]
    username: String,
    /// Unique, case-insensitively, among usernames and emails.
    #[schema(format = Email, min_length = 1, max_length = 254, example = "alice@example.com")]
    email: String,
    /// 8 to 128 characters, no composition rules (NIST SP 800-63B).
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 128, example = "correct horse battery")]
    password: SecretString,
}

/// Register a user.
///
/// Open to anyone, unless `auth.registration` is `admin_only`: then only an
/// admin's token may create users. A token, if sent, must be valid either way.
#[utoipa::path(
    post,
    path = "/users",
    tag = "users",
    operation_id = "create_user",
    request_body = CreateUserRequest,
    security((), ("bearer" = [])),
    responses(
        (status = 201, description = "The new user.", body = FullUser, headers(
            ("Location" = String, description = "`/users/{id}` of the new user."),
        )),
        (status = 400, description = "The body is not well-formed JSON (`parse_error`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "Registration is `admin_only` and no token was sent (`not_authenticated`), or the token sent is invalid, expired or revoked (`invalid_token`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "Registration is `admin_only` and the caller is no admin (`permission_denied`), or a service client's token (`user_token_required`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "The username or email is taken, case-insensitively (`conflict`); `errors` names which.", body = Problem, content_type = PROBLEM_JSON),
        (status = 415, description = "The body is not JSON (`unsupported_media_type`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "A field is missing, unknown, mistyped or breaks its rules (`validation_failed`); `errors` names which.", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn create(
    state: web::Data<AppState>,
    MaybeCurrentUser(caller): MaybeCurrentUser,
    JsonBody(body): JsonBody<CreateUserRequest>,
) -> ApiResult<HttpResponse> {
    if state.registration == Registration::AdminOnly {
        match &caller {
            None => return Err(ApiError::not_authenticated()),
            Some(caller) if !caller.is_admin() => {
                return Err(ApiError::permission_denied("Only admins may create users."));
            }
            Some(_) => {}
        }
    }
    let mut validator = Validator::default();
    let username = validator.check("username", Username::parse(&body.username));
    let email = validator.check("email", Email::parse(&body.email));
    let password = validator.check("password", Password::parse(body.password));
    validator.finish()?;
    let (Some(username), Some(email), Some(password)) = (username, email, password) else {
        return Err(ApiError::internal("validator passed with a missing field"));
    };
    let user = state
        .accounts
        .register(NewAccount {
            username,
            email,
            password,
            role: Role::User,
            email_verified: false,
        })
        .await?;
    let location = format!("/users/{}", user.id);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(UserView::full(user)))
}

/// Unknown query parameters are ignored, as DRF does (cache busters etc.).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Users per page.
    #[param(value_type = i64, required = false, minimum = 1, maximum = 100, default = 20)]
    limit: Option<i64>,
    /// Users to skip. Costs the database a walk past them: for deep pages
    /// follow `next` (a cursor) instead.
    #[param(value_type = i64, required = false, minimum = 0, default = 0)]
    offset: Option<i64>,
    /// Start just after the user a previous page ended with: that page's
    /// `next_cursor`. Any depth costs what the first page does. Not combined
    /// with a non-zero `offset`.
    #[param(value_type = String, required = false)]
    cursor: Option<String>,
}

pub const DEFAULT_PAGE: i64 = 20;
pub const MAX_PAGE: i64 = 100;

/// A page of users, in creation order.
#[derive(Serialize, ToSchema)]
pub struct Page {
    /// Public users, or full ones for an admin.
    items: Vec<UserView>,
    #[schema(example = 20)]
    limit: i64,
    /// The `offset` asked for (0 on a page fetched by `cursor`).
    #[schema(example = 0)]
    offset: i64,
    /// Users in all.
    total: i64,
    /// The next page's `cursor`; null on the last page.
    #[schema(
        example = "MjAyNi0xMi0wNFQxMDowMDowMC4xMjM0NTYvMDE5MGM2YTItN2IzZS03Y2MxLTliMWUtMmY2YTFkMWM5ZTAx"
    )]
    next_cursor: Option<String>,
    /// The next page as a link (the same `limit`, `next_cursor`); null on
    /// the last page.
    #[schema(
        example = "/users?limit=20&cursor=MjAyNi0xMi0wNFQxMDowMDowMC4xMjM0NTYvMDE5MGM2YTItN2IzZS03Y2MxLTliMWUtMmY2YTFkMWM5ZTAx"
    )]
    next: Option<String>,
}

/// List users, a page at a time.
///
/// Public fields unless the caller is an admin. Stateless: the token is
/// checked by signature and claims alone.
#[utoipa::path(
    get,
    path = "/users",
    tag = "users",
    operation_id = "list_users",
    params(ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of users.", body = Page),
        (status = 400, description = "The query string cannot be read, e.g. a `limit` that is no integer (`invalid_query`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "No token (`not_authenticated`), or an invalid or expired one (`invalid_token`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "A service client's token (`user_token_required`): this route is for users.", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "`limit` outside 1-100, a negative `offset`, an `offset` with a `cursor`, or a `cursor` this service did not write (`validation_failed`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn list(
    state: web::Data<AppState>,
    caller: Authenticated,
    query: web::Query<ListQuery>,
) -> ApiResult<HttpResponse> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    let offset = query.offset.unwrap_or(0);
    let mut validator = Validator::default();
    validator.check(
        "limit",
        if (1..=MAX_PAGE).contains(&limit) {
            Ok(())
        } else {
            Err(format!("Must be between 1 and {MAX_PAGE}."))
        },
    );
    validator.check(
        "offset",
        if offset < 0 {
            Err("Must be 0 or more.".to_owned())
        } else if offset > 0 && query.cursor.is_some() {
            Err("Cannot be combined with `cursor`.".to_owned())
        } else {
            Ok(())
        },
    );
    let after = query
        .cursor
        .as_deref()
        .and_then(|text| validator.check("cursor", UserCursor::parse(text)));
    validator.finish()?;
    let start = after.map_or(PageStart::Offset(offset), PageStart::After);
    let page = state.accounts.page(limit, start).await?;
    let admin = caller.is_admin();
    let items = page
        .users
        .into_iter()
        .map(|user| UserView::for_viewer(user, admin))
        .collect();
    let next_cursor = page.next.map(|next| next.encode());
    Ok(HttpResponse::Ok().json(Page {
        items,
        limit,
        offset,
        total: page.total,
        next: next_cursor
            .as_ref()
            .map(|cursor| format!("/users?limit={limit}&cursor={cursor}")),
        next_cursor,
    }))
}

fn no_such_user() -> ApiError {
    ApiError::not_found("No user with that id.")
}

/// The caller's own account.
///
/// Stateless: the token is checked by signature and claims alone.
#[utoipa::path(
    get,
    path = "/users/me",
    tag = "users",
    operation_id = "get_me",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller, with full fields.", body = FullUser),
        (status = 401, description = "No token (`not_authenticated`), or an invalid or expired one, or one whose user is gone (`invalid_token`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "A service client's token (`user_token_required`): this route is for users.", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn me(state: web::Data<AppState>, caller: Authenticated) -> ApiResult<HttpResponse> {
    let user = state
        .accounts
        .find(caller.0.sub.clone())
        .await?
        .ok_or_else(|| ApiError::invalid_token("The token's user no longer exists."))?;
    Ok(HttpResponse::Ok().json(UserView::full(user)))
}

/// A user: full fields for oneself or an admin, public ones otherwise.
///
/// Stateless: the token is checked by signature and claims alone.
#[utoipa::path(
    get,
    path = "/users/{id}",
    tag = "users",
    operation_id = "get_user",
    params(("id" = String, Path, description = "The user's id.", format = "uuid")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user.", body = UserView),
        (status = 401, description = "No token (`not_authenticated`), or an invalid or expired one (`invalid_token`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "A service client's token (`user_token_required`): this route is for users.", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No user with that id (`not_found`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn get(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let full = caller.is_admin() || caller.0.sub == id;
    let user = state.accounts.find(id).await?.ok_or_else(no_such_user)?;
    Ok(HttpResponse::Ok().json(UserView::for_viewer(user, full)))
}

fn ensure_may_manage(caller: &CurrentUser, id: &str) -> ApiResult<()> {
    if caller.may_manage(id) {
        Ok(())
    } else {
        Err(ApiError::permission_denied(
            "You may only change your own account.",
        ))
    }
}

/// The fields to change; those left out keep their value.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    /// Same rules as at registration.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = String, required = false, min_length = 1, max_length = 150, pattern = r"^[\w.@+-]+$")]
    username: Option<String>,
    /// Same rules as at registration.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = String, required = false, format = Email, min_length = 1, max_length = 254)]
    email: Option<String>,
    /// Admins only. A change stops the user's earlier access tokens on the
    /// logout-sensitive routes; the next login or refresh carries the new role.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = RoleSchema, required = false)]
    role: Option<String>,
    /// Admins only. `false` disables the account: its refresh tokens are
    /// revoked at once and its earlier access tokens fail on the
    /// logout-sensitive routes; `true` enables it again.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = bool, required = false)]
    is_active: Option<bool>,
}

/// Update a user: username and email by oneself or an admin; role and
/// `is_active` by admins.
#[utoipa::path(
    patch,
    path = "/users/{id}",
    tag = "users",
    operation_id = "update_user",
    params(("id" = String, Path, description = "The user's id.", format = "uuid")),
    request_body = UpdateUserRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user as changed.", body = FullUser),
        (status = 400, description = "The body is not well-formed JSON (`parse_error`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "No token (`not_authenticated`), or an invalid, expired or revoked one (`invalid_token`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "Another user's account without being admin, or a `role` or `is_active` change without being admin (`permission_denied`), or a service client's token (`user_token_required`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No user with that id (`not_found`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "The new username or email is taken, case-insensitively (`conflict`); `errors` names which.", body = Problem, content_type = PROBLEM_JSON),
        (status = 415, description = "The body is not JSON (`unsupported_media_type`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "A field is unknown, mistyped or breaks its rules (`validation_failed`); `errors` names which.", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn update(
    state: web::Data<AppState>,
    caller: CurrentUser,
    id: web::Path<String>,
    JsonBody(body): JsonBody<UpdateUserRequest>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    ensure_may_manage(&caller, &id)?;
    if body.role.is_some() && !caller.is_admin() {
        return Err(ApiError::permission_denied(
            "Only admins may change a role.",
        ));
    }
    if body.is_active.is_some() && !caller.is_admin() {
        return Err(ApiError::permission_denied(
            "Only admins may disable or enable an account.",
        ));
    }
    let mut validator = Validator::default();
    let username = body
        .username
        .and_then(|raw| validator.check("username", Username::parse(&raw)));
    let email = body
        .email
        .and_then(|raw| validator.check("email", Email::parse(&raw)));
    let role = body
        .role
        .and_then(|raw| validator.check("role", Role::parse(&raw)));
    validator.finish()?;
    let changes = ProfileChanges {
        username,
        email,
        role,
        is_active: body.is_active,
        // One's own new address waits for its confirmation; an admin's
        // change of another account applies at once.
        confirm_email: caller.user.id == id,
    };
    let user = state.accounts.update_profile(id, changes).await?;
    Ok(HttpResponse::Ok().json(UserView::full(user)))
}

/// A password change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    /// Required when changing one's own password; not needed by an admin
    /// changing another user's.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = String, required = false, format = Password)]
    current_password: Option<SecretString>,
    /// 8 to 128 characters.
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 128)]
    new_password: SecretString,
}

/// Change a password: one's own with the current password, or anyone's as admin.
///
/// Every earlier token of the user is revoked, and their refresh tokens.
#[utoipa::path(
    put,
    path = "/users/{id}/password",
    tag = "users",
    operation_id = "change_password",
    params(("id" = String, Path, description = "The user's id.", format = "uuid")),
    request_body = ChangePasswordRequest,
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Changed; the user's earlier tokens are revoked."),
        (status = 400, description = "The body is not well-formed JSON (`parse_error`), or `current_password` is wrong (`invalid_current_password`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "No token (`not_authenticated`), or an invalid, expired or revoked one (`invalid_token`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "Another user's password without being admin (`permission_denied`), or a service client's token (`user_token_required`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No user with that id (`not_found`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 415, description = "The body is not JSON (`unsupported_media_type`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "A field is missing, unknown, mistyped or breaks its rules (`validation_failed`); `errors` names which.", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn change_password(
    state: web::Data<AppState>,
    caller: CurrentUser,
    id: web::Path<String>,
    JsonBody(body): JsonBody<ChangePasswordRequest>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    ensure_may_manage(&caller, &id)?;
    let mut validator = Validator::default();
    let new_password = validator.check("new_password", Password::parse(body.new_password));
    let is_self = caller.user.id == id;
    if is_self && body.current_password.is_none() {
        validator.check::<()>(
            "current_password",
            Err("This field is required.".to_owned()),
        );
    }
    validator.finish()?;
    let Some(new_password) = new_password else {
        return Err(ApiError::internal("validator passed with a missing field"));
    };
    let proof = match (is_self, body.current_password) {
        (true, Some(current)) => PasswordChange::WithCurrent(current),
        (true, None) => return Err(ApiError::internal("validator passed with a missing field")),
        (false, _) => PasswordChange::ByAdmin,
    };
    state
        .accounts
        .change_password(id, proof, new_password)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Delete a user: oneself, or anyone as admin.
///
/// The account goes with its refresh tokens; its access tokens stop working
/// on the logout-sensitive routes.
#[utoipa::path(
    delete,
    path = "/users/{id}",
    tag = "users",
    operation_id = "delete_user",
    params(("id" = String, Path, description = "The user's id.", format = "uuid")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, description = "No token (`not_authenticated`), or an invalid, expired or revoked one (`invalid_token`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "Another user's account without being admin (`permission_denied`), or a service client's token (`user_token_required`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No user with that id (`not_found`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn delete(
    state: web::Data<AppState>,
    caller: CurrentUser,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    ensure_may_manage(&caller, &id)?;
    state.accounts.delete(id).await?;
    Ok(HttpResponse::NoContent().finish())
}
