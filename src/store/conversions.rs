//! Customers and conversion events: the idempotency ledger of the track API.

use super::first;
use super::StoreResult;
use serde::{Deserialize, Serialize};
use worker::d1::D1PreparedStatement;
use worker::{query, D1Database};

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Customer {
    pub id: String,
    pub program_id: String,
    pub external_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub partner_id: Option<String>,
    pub link_id: Option<String>,
    pub click_id: Option<String>,
    pub clicked_at: Option<i64>,
    pub first_sale_at: Option<i64>,
}

const CUSTOMER_COLS: &str =
    "id, program_id, external_id, email, name, partner_id, link_id, click_id, clicked_at, first_sale_at";

pub async fn customer(db: &D1Database, program_id: &str, external_id: &str) -> StoreResult<Option<Customer>> {
    Ok(first(query!(
        db,
        &format!("SELECT {CUSTOMER_COLS} FROM customers WHERE program_id = ?1 AND external_id = ?2"),
        program_id,
        external_id
    )?)
    .await?)
}

#[derive(Deserialize)]
pub struct ProgramRef {
    pub program_id: String,
}

/// Programs in which a customer external id is known (to find the program of a sale).
pub async fn programs_of_customer(db: &D1Database, external_id: &str) -> StoreResult<Vec<ProgramRef>> {
    Ok(super::all(query!(db, "SELECT program_id FROM customers WHERE external_id = ?1 LIMIT 2", external_id)?).await?)
}

/// Programs in which an invoice id has a sale (to find the program of a refund).
pub async fn programs_of_invoice(db: &D1Database, invoice_id: &str) -> StoreResult<Vec<ProgramRef>> {
    Ok(super::all(query!(
        db,
        "SELECT program_id FROM events WHERE kind = 'sale' AND invoice_id = ?1 LIMIT 2",
        invoice_id
    )?)
    .await?)
}

pub struct CustomerUpsert<'a> {
    pub new_id: &'a str,
    pub program_id: &'a str,
    pub external_id: &'a str,
    pub email: Option<&'a str>,
    pub name: Option<&'a str>,
    /// Set the attribution (partner, link, click) to this click.
    pub attribution: Option<(&'a str, &'a str, &'a str, i64)>,
    pub now: i64,
}

/// Creates the customer or updates its details; attribution is only written when given.
pub fn upsert_customer(db: &D1Database, c: &CustomerUpsert<'_>) -> StoreResult<D1PreparedStatement> {
    let (partner, link, click, clicked_at) = match c.attribution {
        Some((p, l, k, t)) => (Some(p), Some(l), Some(k), Some(t)),
        None => (None, None, None, None),
    };
    Ok(query!(
        db,
        "INSERT INTO customers (id, program_id, external_id, email, name, partner_id, link_id, click_id, clicked_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)
         ON CONFLICT (program_id, external_id) DO UPDATE SET
           email = COALESCE(excluded.email, email),
           name = COALESCE(excluded.name, name),
           partner_id = COALESCE(excluded.partner_id, partner_id),
           link_id = CASE WHEN excluded.partner_id IS NULL THEN link_id ELSE excluded.link_id END,
           click_id = CASE WHEN excluded.partner_id IS NULL THEN click_id ELSE excluded.click_id END,
           clicked_at = CASE WHEN excluded.partner_id IS NULL THEN clicked_at ELSE excluded.clicked_at END,
           updated_at = excluded.updated_at",
        c.new_id,
        c.program_id,
        c.external_id,
        c.email,
        c.name,
        partner,
        link,
        click,
        clicked_at,
        c.now
    )?)
}

#[derive(Clone, Debug, Deserialize)]
pub struct Event {
    pub id: String,
    pub program_id: String,
    pub customer_id: String,
    pub kind: String,
    pub event_name: String,
    pub invoice_id: Option<String>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub payout_amount: Option<i64>,
    pub partner_id: Option<String>,
    pub click_id: Option<String>,
    pub attribution: String,
    pub metadata: Option<String>,
    pub created_at: i64,
    pub customer_external_id: String,
}

const EVENT_COLS: &str = "e.id, e.program_id, e.customer_id, e.kind, e.event_name, e.invoice_id, e.amount, e.currency, \
     e.payout_amount, e.partner_id, e.click_id, e.attribution, e.metadata, e.created_at, c.external_id AS customer_external_id";

pub async fn lead_event(
    db: &D1Database,
    program_id: &str,
    external_id: &str,
    event_name: &str,
) -> StoreResult<Option<Event>> {
    Ok(first(query!(
        db,
        &format!(
            "SELECT {EVENT_COLS} FROM events e JOIN customers c ON c.id = e.customer_id
             WHERE e.program_id = ?1 AND c.external_id = ?2 AND e.event_name = ?3 AND e.kind = 'lead'"
        ),
        program_id,
        external_id,
        event_name
    )?)
    .await?)
}

pub async fn sale_event(db: &D1Database, program_id: &str, invoice_id: &str) -> StoreResult<Option<Event>> {
    Ok(first(query!(
        db,
        &format!(
            "SELECT {EVENT_COLS} FROM events e JOIN customers c ON c.id = e.customer_id
             WHERE e.program_id = ?1 AND e.invoice_id = ?2 AND e.kind = 'sale'"
        ),
        program_id,
        invoice_id
    )?)
    .await?)
}

pub struct NewEvent<'a> {
    pub id: &'a str,
    pub program_id: &'a str,
    pub external_id: &'a str,
    pub kind: &'a str,
    pub event_name: &'a str,
    pub invoice_id: Option<&'a str>,
    pub amount: Option<i64>,
    pub currency: Option<&'a str>,
    pub payout_amount: Option<i64>,
    pub partner_id: Option<&'a str>,
    pub click_id: Option<&'a str>,
    pub attribution: &'a str,
    pub metadata: Option<String>,
    pub now: i64,
}

/// Inserts the event unless its idempotency tuple exists (lead: program + customer + name;
/// sale: program + invoice). The customer is resolved in SQL, after the upsert in the same batch.
pub fn insert_event(db: &D1Database, e: &NewEvent<'_>) -> StoreResult<D1PreparedStatement> {
    Ok(query!(
        db,
        "INSERT INTO events (id, program_id, customer_id, kind, event_name, invoice_id, amount, currency, payout_amount,
             partner_id, click_id, attribution, metadata, created_at)
         SELECT ?1, ?2, c.id, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14
         FROM customers c WHERE c.program_id = ?2 AND c.external_id = ?3
         ON CONFLICT DO NOTHING",
        e.id,
        e.program_id,
        e.external_id,
        e.kind,
        e.event_name,
        e.invoice_id,
        e.amount,
        e.currency,
        e.payout_amount,
        e.partner_id,
        e.click_id,
        e.attribution,
        &e.metadata,
        e.now
    )?)
}

/// Records the customer's first sale time, only when this batch's sale event won.
pub fn mark_first_sale(
    db: &D1Database,
    program_id: &str,
    external_id: &str,
    event_id: &str,
    at: i64,
) -> StoreResult<D1PreparedStatement> {
    Ok(query!(
        db,
        "UPDATE customers SET first_sale_at = ?3 WHERE program_id = ?1 AND external_id = ?2 AND first_sale_at IS NULL
           AND EXISTS (SELECT 1 FROM events WHERE id = ?4)",
        program_id,
        external_id,
        at,
        event_id
    )?)
}
