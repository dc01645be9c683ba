//! The `legacy_accounts` table: which Django user became which tessera
//! account. A row outlives its account (`user_id` becomes NULL when the
//! account is deleted), so a re-run of the import never re-creates it.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::legacy_accounts;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = legacy_accounts)]
pub struct LegacyAccount {
    pub legacy_id: String,
    /// None once the account has been deleted in tessera.
    pub user_id: Option<String>,
    pub username_lower: String,
    pub imported_at: NaiveDateTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = legacy_accounts)]
pub struct NewLegacyAccount<'a> {
    pub legacy_id: &'a str,
    pub user_id: &'a str,
    pub username_lower: &'a str,
    pub imported_at: NaiveDateTime,
}

pub fn find(conn: &mut DbConnection, legacy_id: &str) -> QueryResult<Option<LegacyAccount>> {
    legacy_accounts::table
        .find(legacy_id)
        .select(LegacyAccount::as_select())
        .first(conn)
        .optional()
}

pub fn insert(conn: &mut DbConnection, account: &NewLegacyAccount<'_>) -> QueryResult<()> {
    diesel::insert_into(legacy_accounts::table)
        .values(account)
        .execute(conn)
        .map(drop)
}
