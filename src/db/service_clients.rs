//! The `service_clients` table: OAuth 2.0 clients of the client-credentials
//! grant. Only the SHA-256 of each secret is stored.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::service_clients;

#[derive(Clone, Queryable, Selectable)]
#[diesel(table_name = service_clients)]
pub struct ServiceClient {
    pub client_id: String,
    pub name: String,
    pub secret_hash: String,
    /// Space-separated.
    pub scopes: String,
    pub created_at: NaiveDateTime,
}

impl std::fmt::Debug for ServiceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceClient")
            .field("client_id", &self.client_id)
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

#[derive(Insertable)]
#[diesel(table_name = service_clients)]
pub struct NewServiceClient<'a> {
    pub client_id: &'a str,
    pub name: &'a str,
    pub secret_hash: &'a str,
    pub scopes: &'a str,
    pub created_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, client: &NewServiceClient<'_>) -> QueryResult<()> {
    diesel::insert_into(service_clients::table)
        .values(client)
        .execute(conn)
        .map(drop)
}

pub fn find(conn: &mut DbConnection, client_id: &str) -> QueryResult<Option<ServiceClient>> {
    service_clients::table
        .find(client_id)
        .select(ServiceClient::as_select())
        .first(conn)
        .optional()
}

/// Whether the client exists (its tokens count only while it does).
pub fn exists(conn: &mut DbConnection, client_id: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(service_clients::table.find(client_id))).get_result(conn)
}

/// Every client, oldest first.
pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<ServiceClient>> {
    service_clients::table
        .order((
            service_clients::created_at.asc(),
            service_clients::client_id.asc(),
        ))
        .select(ServiceClient::as_select())
        .load(conn)
}

/// Deletes a client; whether it existed.
pub fn delete(conn: &mut DbConnection, client_id: &str) -> QueryResult<bool> {
    diesel::delete(service_clients::table.find(client_id))
        .execute(conn)
        .map(|deleted| deleted == 1)
}
