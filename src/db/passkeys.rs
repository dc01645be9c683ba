//! The passkey tables: `passkeys` (each user's WebAuthn credentials, the
//! serialised webauthn-rs `Passkey` found by its credential id) and
//! `webauthn_ceremonies` (the state of a registration or login between its
//! start and its finish: taken once, short-lived).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::{passkeys, webauthn_ceremonies};

/// A stored passkey.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = passkeys)]
pub struct StoredPasskey {
    pub id: String,
    pub user_id: String,
    /// base64url, unpadded.
    pub credential_id: String,
    /// The webauthn-rs `Passkey`, as JSON.
    pub passkey: String,
    pub name: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
}

#[derive(Insertable)]
#[diesel(table_name = passkeys)]
pub struct NewPasskey<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub credential_id: &'a str,
    pub passkey: &'a str,
    pub name: &'a str,
    pub created_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, new: &NewPasskey<'_>) -> QueryResult<()> {
    diesel::insert_into(passkeys::table)
        .values(new)
        .execute(conn)
        .map(drop)
}

/// The user's passkeys, oldest first.
pub fn list_for_user(conn: &mut DbConnection, user_id: &str) -> QueryResult<Vec<StoredPasskey>> {
    passkeys::table
        .filter(passkeys::user_id.eq(user_id))
        .order((passkeys::created_at.asc(), passkeys::id.asc()))
        .select(StoredPasskey::as_select())
        .load(conn)
}

pub fn find_by_credential_id(
    conn: &mut DbConnection,
    credential_id: &str,
) -> QueryResult<Option<StoredPasskey>> {
    passkeys::table
        .filter(passkeys::credential_id.eq(credential_id))
        .select(StoredPasskey::as_select())
        .first(conn)
        .optional()
}

/// Records a use: the updated credential (its counter and backup state)
/// and the time. False when the passkey is gone (removed meanwhile).
pub fn record_use(
    conn: &mut DbConnection,
    id: &str,
    passkey: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(passkeys::table.find(id))
        .set((
            passkeys::passkey.eq(passkey),
            passkeys::last_used_at.eq(now),
        ))
        .execute(conn)
        .map(|updated| updated == 1)
}

/// Deletes the user's passkey `id`; false when the user has none of that id.
pub fn delete_for_user(conn: &mut DbConnection, user_id: &str, id: &str) -> QueryResult<bool> {
    diesel::delete(
        passkeys::table
            .find(id)
            .filter(passkeys::user_id.eq(user_id)),
    )
    .execute(conn)
    .map(|deleted| deleted == 1)
}

/// What a ceremony is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyKind {
    Register,
    Login,
}

impl CeremonyKind {
    fn as_str(self) -> &'static str {
        match self {
            CeremonyKind::Register => "register",
            CeremonyKind::Login => "login",
        }
    }
}

pub fn insert_ceremony(
    conn: &mut DbConnection,
    id: &str,
    kind: CeremonyKind,
    user_id: Option<&str>,
    state: &str,
    expires_at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(webauthn_ceremonies::table)
        .values((
            webauthn_ceremonies::id.eq(id),
            webauthn_ceremonies::kind.eq(kind.as_str()),
            webauthn_ceremonies::user_id.eq(user_id),
            webauthn_ceremonies::state.eq(state),
            webauthn_ceremonies::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .map(drop)
}

/// Takes the live ceremony `id` of this kind (and, for a registration, of
/// this user): deletes it and returns its state. Of concurrent takers only
/// the one whose delete removed the row gets it, so a state is used once;
/// an expired ceremony is deleted and not returned.
pub fn take_ceremony(
    conn: &mut DbConnection,
    id: &str,
    kind: CeremonyKind,
    user_id: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<Option<String>> {
    let found = webauthn_ceremonies::table
        .find(id)
        .filter(webauthn_ceremonies::kind.eq(kind.as_str()))
        .select((
            webauthn_ceremonies::user_id,
            webauthn_ceremonies::state,
            webauthn_ceremonies::expires_at,
        ))
        .first::<(Option<String>, String, NaiveDateTime)>(conn)
        .optional()?;
    let Some((owner, state, expires_at)) = found else {
        return Ok(None);
    };
    if owner.as_deref() != user_id {
        // Another user's registration: left alone for its owner.
        return Ok(None);
    }
    let deleted = diesel::delete(webauthn_ceremonies::table.find(id)).execute(conn)?;
    Ok((deleted == 1 && expires_at > now).then_some(state))
}

/// Deletes up to `batch` ceremonies that expired before `cutoff`.
pub fn prune_expired_ceremonies(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
    batch: i64,
) -> QueryResult<usize> {
    let expired = webauthn_ceremonies::table
        .filter(webauthn_ceremonies::expires_at.lt(cutoff))
        .select(webauthn_ceremonies::id)
        .limit(batch)
        .load::<String>(conn)?;
    if expired.is_empty() {
        return Ok(0);
    }
    diesel::delete(webauthn_ceremonies::table.filter(webauthn_ceremonies::id.eq_any(&expired)))
        .execute(conn)
}
