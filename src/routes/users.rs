//! `/users*`: registration, listing, reading, updating, password change,
//! deletion.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use chrono::NaiveDateTime;
use diesel::Connection;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::auth::extract::{Authenticated, CurrentUser, MaybeCurrentUser};
use crate::db::{self, users};
use crate::domain::{Email, Password, Role, Username};
use crate::error::{ApiError, ApiResult, ErrorCode, FieldErrors};
use crate::routes::auth::revoke_all_tokens;
use crate::routes::body::JsonBody;
use crate::settings::Registration;
use crate::state::AppState;

/// RFC 3339 UTC with a `Z`, e.g. `2026-11-28T06:34:40.123456Z`.
fn rfc3339(at: NaiveDateTime) -> String {
    at.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// A user as its owner or an admin sees it.
#[derive(Serialize)]
pub struct FullUser {
    id: String,
    username: String,
    email: String,
    role: String,
    created_at: String,
    updated_at: String,
}

/// A user as everyone else sees it.
#[derive(Serialize)]
pub struct PublicUser {
    id: String,
    username: String,
    created_at: String,
}

#[derive(Serialize)]
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

fn conflict(taken: &users::Taken) -> ApiError {
    let mut errors = FieldErrors::new();
    if taken.username {
        errors.insert(
            "username".into(),
            vec!["A user with that username already exists.".into()],
        );
    }
    if taken.email {
        errors.insert(
            "email".into(),
            vec!["A user with that email already exists.".into()],
        );
    }
    ApiError::conflict(errors)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    username: String,
    email: String,
    password: SecretString,
}

/// Everything a new account needs, parsed and hashed.
pub struct NewAccount {
    pub username: Username,
    pub email: Email,
    pub password_hash: String,
    pub role: Role,
}

/// Stores a new account unless its username or email is taken.
pub fn insert_account(conn: &mut db::DbConnection, account: &NewAccount) -> ApiResult<users::User> {
    let (username_lower, email_lower) = (account.username.canonical(), account.email.canonical());
    let taken = users::taken(conn, Some(&username_lower), Some(&email_lower), None)?;
    if taken.any() {
        return Err(conflict(&taken));
    }
    let now = db::now();
    let id = uuid::Uuid::new_v4().to_string();
    let inserted = users::insert(
        conn,
        &users::NewUser {
            id: &id,
            username: account.username.as_str(),
            username_lower: &username_lower,
            email: account.email.as_str(),
            email_lower: &email_lower,
            password_hash: &account.password_hash,
            role: account.role.as_str(),
            tokens_valid_after: now,
            created_at: now,
            updated_at: now,
        },
    );
    if is_unique_violation(&inserted) {
        let taken = users::taken(conn, Some(&username_lower), Some(&email_lower), None)?;
        return Err(conflict(&taken));
    }
    inserted?;
    users::find(conn, &id)?.ok_or_else(|| ApiError::internal("inserted user not found"))
}

/// Two concurrent writers can both pass the `taken` check; the unique
/// indexes then refuse the second, which is explained the same way.
fn is_unique_violation<T>(result: &diesel::QueryResult<T>) -> bool {
    matches!(
        result,
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _
        ))
    )
}

/// `POST /users`: registration (admins only when `auth.registration` says so).
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
    let password_hash = state
        .hasher
        .hash(password.into_secret())
        .await
        .map_err(ApiError::internal)?;
    let account = NewAccount {
        username,
        email,
        password_hash,
        role: Role::User,
    };
    let user = db::run(&state.pool, move |conn| insert_account(conn, &account)).await?;
    let location = format!("/users/{}", user.id);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(UserView::full(user)))
}

/// Unknown query parameters are ignored, as DRF does (cache busters etc.).
#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<i64>,
    offset: Option<i64>,
}

pub const DEFAULT_PAGE: i64 = 20;
pub const MAX_PAGE: i64 = 100;

#[derive(Serialize)]
pub struct Page {
    items: Vec<UserView>,
    limit: i64,
    offset: i64,
    total: i64,
}

/// `GET /users`: a page of users; public fields unless the caller is admin.
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
        if offset >= 0 {
            Ok(())
        } else {
            Err("Must be 0 or more.".to_owned())
        },
    );
    validator.finish()?;
    let (rows, total) = db::run(&state.pool, move |conn| {
        users::list(conn, limit, offset).map_err(ApiError::from)
    })
    .await?;
    let admin = caller.is_admin();
    let items = rows
        .into_iter()
        .map(|user| UserView::for_viewer(user, admin))
        .collect();
    Ok(HttpResponse::Ok().json(Page {
        items,
        limit,
        offset,
        total,
    }))
}

async fn load_user(state: &AppState, id: String) -> ApiResult<Option<users::User>> {
    db::run(&state.pool, move |conn| {
        users::find(conn, &id).map_err(ApiError::from)
    })
    .await
}

fn no_such_user() -> ApiError {
    ApiError::not_found("No user with that id.")
}

/// `GET /users/me`.
pub async fn me(state: web::Data<AppState>, caller: Authenticated) -> ApiResult<HttpResponse> {
    let user = load_user(&state, caller.0.sub.clone())
        .await?
        .ok_or_else(|| ApiError::invalid_token("The token's user no longer exists."))?;
    Ok(HttpResponse::Ok().json(UserView::full(user)))
}

/// `GET /users/{id}`: full fields for oneself or an admin, public otherwise.
pub async fn get(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let full = caller.is_admin() || caller.0.sub == id;
    let user = load_user(&state, id).await?.ok_or_else(no_such_user)?;
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    username: Option<String>,
    email: Option<String>,
    role: Option<String>,
}

/// `PATCH /users/{id}`: username and email by self or admin; role by admins.
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
    let nothing_to_change = username.is_none() && email.is_none() && role.is_none();
    let user = db::run(&state.pool, move |conn| {
        if nothing_to_change {
            return users::find(conn, &id)?.ok_or_else(no_such_user);
        }
        let username_lower = username.as_ref().map(Username::canonical);
        let email_lower = email.as_ref().map(Email::canonical);
        let taken = users::taken(
            conn,
            username_lower.as_deref(),
            email_lower.as_deref(),
            Some(&id),
        )?;
        if taken.any() {
            return Err(conflict(&taken));
        }
        let changes = users::UserChanges {
            username: username.as_ref().map(Username::as_str),
            username_lower: username_lower.as_deref(),
            email: email.as_ref().map(Email::as_str),
            email_lower: email_lower.as_deref(),
            role: role.map(Role::as_str),
            updated_at: Some(db::now()),
            ..Default::default()
        };
        let updated = users::update(conn, &id, &changes);
        if is_unique_violation(&updated) {
            let taken = users::taken(
                conn,
                username_lower.as_deref(),
                email_lower.as_deref(),
                Some(&id),
            )?;
            return Err(conflict(&taken));
        }
        if !updated? {
            return Err(no_such_user());
        }
        users::find(conn, &id)?.ok_or_else(no_such_user)
    })
    .await?;
    Ok(HttpResponse::Ok().json(UserView::full(user)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    #[serde(default)]
    current_password: Option<SecretString>,
    new_password: SecretString,
}

/// `PUT /users/{id}/password`: oneself with the current password, or an
/// admin for anyone else; every earlier token of the user is revoked.
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
    if is_self {
        let current = body
            .current_password
            .unwrap_or_else(|| SecretString::from(""));
        let outcome = state
            .hasher
            .verify(current, Some(caller.user.password_hash.clone()))
            .await
            .map_err(ApiError::internal)?;
        if !outcome.matches {
            return Err(ApiError::new(
                ErrorCode::InvalidCurrentPassword,
                "The current password is incorrect.",
            )
            .with_errors(FieldErrors::from([(
                "current_password".to_owned(),
                vec!["The current password is incorrect.".to_owned()],
            )])));
        }
    }
    let new_hash = state
        .hasher
        .hash(new_password.into_secret())
        .await
        .map_err(ApiError::internal)?;
    db::run(&state.pool, move |conn| {
        conn.transaction(|conn| {
            let changes = users::UserChanges {
                password_hash: Some(&new_hash),
                updated_at: Some(db::now()),
                ..Default::default()
            };
            if !users::update(conn, &id, &changes)? {
                return Err(no_such_user());
            }
            revoke_all_tokens(conn, &id)
        })
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /users/{id}`: the account, its refresh tokens, and (through the
/// missing row) every access token on logout-sensitive routes.
pub async fn delete(
    state: web::Data<AppState>,
    caller: CurrentUser,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    ensure_may_manage(&caller, &id)?;
    let deleted = db::run(&state.pool, move |conn| {
        users::delete(conn, &id).map_err(ApiError::from)
    })
    .await?;
    if !deleted {
        return Err(no_such_user());
    }
    Ok(HttpResponse::NoContent().finish())
}
