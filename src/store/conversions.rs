//! Customers and conversion events: the idempotency ledger of the track API.

use super::commissions::{self, Commission, NewCommission};
use super::coupons::Coupon;
use super::partners::Partner;
use super::programs::Program;
use super::D1Result;
use super::{first, outbox, StoreError, StoreResult};
use refport_core::conversion::{
    AttributionOutcome, EventKind, LeadDecision, LeadRequest, PricedSale, SaleDecision, SaleRequest,
};
use serde::Serialize;
use worker::d1::D1PreparedStatement;
use worker::D1Database;

#[derive(Clone, Debug, Serialize)]
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
    /// What the attributed click said to the fraud rules (`refport_core::fraud::ClickSignals`).
    pub click_signals: Option<String>,
    /// The country of the attributed click, when its row said it.
    pub country: Option<String>,
}
from_row!(Customer { id, program_id, external_id, email, name, partner_id, link_id, click_id, clicked_at, first_sale_at, click_signals } default { country });

const CUSTOMER_COLS: &str =
    "id, program_id, external_id, email, name, partner_id, link_id, click_id, clicked_at, first_sale_at, click_signals, country";

pub async fn customer(db: &D1Database, program_id: &str, external_id: &str) -> StoreResult<Option<Customer>> {
    first(customer_stmt(db, program_id, external_id)?).await
}

fn customer_stmt(db: &D1Database, program_id: &str, external_id: &str) -> StoreResult<D1PreparedStatement> {
    Ok(query!(
        db,
        &format!("SELECT {CUSTOMER_COLS} FROM customers WHERE program_id = ?1 AND external_id = ?2"),
        program_id,
        external_id
    )?)
}

pub struct ProgramRef {
    pub program_id: String,
}
from_row!(ProgramRef { program_id });

/// Programs in which a customer external id is known (to find the program of a sale).
pub async fn programs_of_customer(db: &D1Database, external_id: &str) -> StoreResult<Vec<ProgramRef>> {
    super::all(query!(db, "SELECT program_id FROM customers WHERE external_id = ?1 LIMIT 2", external_id)?).await
}

/// Programs in which an invoice id has a sale (to find the program of a refund).
pub async fn programs_of_invoice(db: &D1Database, invoice_id: &str) -> StoreResult<Vec<ProgramRef>> {
    super::all(query!(db, "SELECT program_id FROM events WHERE kind = 'sale' AND invoice_id = ?1 LIMIT 2", invoice_id)?)
        .await
}

/// A customer known by its Stripe customer id.
pub struct StripeCustomerRef {
    pub program_id: String,
    pub external_id: String,
}
from_row!(StripeCustomerRef { program_id, external_id });

/// The customers (at most 2: more than one is ambiguous) that Stripe customer `stripe_id` is:
/// stored by a Stripe-tracked lead, or tracked through the API with it as external id.
pub async fn customers_of_stripe(db: &D1Database, stripe_id: &str) -> StoreResult<Vec<StripeCustomerRef>> {
    super::all(query!(
        db,
        "SELECT program_id, external_id FROM customers WHERE stripe_customer_id = ?1
         UNION SELECT program_id, external_id FROM customers WHERE external_id = ?1 LIMIT 2",
        stripe_id
    )?)
    .await
}

/// Remembers the Stripe customer of a customer (its later invoices find it by it).
pub async fn set_stripe_customer(
    db: &D1Database,
    program_id: &str,
    external_id: &str,
    stripe_id: &str,
) -> StoreResult<()> {
    super::run(query!(
        db,
        "UPDATE customers SET stripe_customer_id = ?3
         WHERE program_id = ?1 AND external_id = ?2 AND stripe_customer_id IS NOT ?3",
        program_id,
        external_id,
        stripe_id
    )?)
    .await?;
    Ok(())
}

pub struct CustomerUpsert<'a> {
    pub new_id: &'a str,
    pub program_id: &'a str,
    pub external_id: &'a str,
    pub email: Option<&'a str>,
    pub name: Option<&'a str>,
    /// Set the attribution (partner, link, click, time) to this click; a coupon code's
    /// attribution has no link and no click (empty: stored as none).
    pub attribution: Option<(&'a str, &'a str, &'a str, i64)>,
    /// What that click said to the fraud rules (stored form), kept with the attribution.
    pub click_signals: Option<&'a str>,
    /// That click's country, kept with the attribution.
    pub country: Option<&'a str>,
    pub now: i64,
}

/// `None` for an empty id: a credit without a click or link (a coupon code's).
fn nonempty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// Creates the customer or updates its details; attribution is only written when given.
pub fn upsert_customer(db: &D1Database, c: &CustomerUpsert<'_>) -> StoreResult<D1PreparedStatement> {
    let (partner, link, click, clicked_at) = match c.attribution {
        Some((p, l, k, t)) => (Some(p), nonempty(l), nonempty(k), Some(t)),
        None => (None, None, None, None),
    };
    Ok(query!(
        db,
        "INSERT INTO customers (id, program_id, external_id, email, name, partner_id, link_id, click_id, clicked_at, created_at, updated_at,
             click_signals, country)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, ?12)
         ON CONFLICT (program_id, external_id) DO UPDATE SET
           email = COALESCE(excluded.email, email),
           name = COALESCE(excluded.name, name),
           partner_id = COALESCE(excluded.partner_id, partner_id),
           link_id = CASE WHEN excluded.partner_id IS NULL THEN link_id ELSE excluded.link_id END,
           click_id = CASE WHEN excluded.partner_id IS NULL THEN click_id ELSE excluded.click_id END,
           clicked_at = CASE WHEN excluded.partner_id IS NULL THEN clicked_at ELSE excluded.clicked_at END,
           click_signals = CASE WHEN excluded.partner_id IS NULL THEN click_signals ELSE excluded.click_signals END,
           country = CASE WHEN excluded.partner_id IS NULL THEN country ELSE excluded.country END,
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
        c.now,
        c.click_signals,
        c.country
    )?)
}

struct EventRow {
    id: String,
    program_id: String,
    customer_id: String,
    kind: String,
    event_name: String,
    invoice_id: Option<String>,
    amount: Option<i64>,
    currency: Option<String>,
    payout_amount: Option<i64>,
    partner_id: Option<String>,
    click_id: Option<String>,
    attribution: String,
    metadata: Option<String>,
    created_at: i64,
    customer_external_id: String,
    coupon_code: Option<String>,
    coupon_id: Option<String>,
}
from_row!(EventRow { id, program_id, customer_id, kind, event_name, invoice_id, amount, currency, payout_amount, partner_id, click_id, attribution, metadata, created_at, customer_external_id } default { coupon_code, coupon_id });

#[derive(Clone, Debug)]
pub struct Event {
    pub id: String,
    pub program_id: String,
    pub customer_id: String,
    pub kind: EventKind,
    pub event_name: String,
    pub invoice_id: Option<String>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub payout_amount: Option<i64>,
    pub partner_id: Option<String>,
    pub click_id: Option<String>,
    pub attribution: AttributionOutcome,
    pub metadata: Option<String>,
    pub created_at: i64,
    pub customer_external_id: String,
    /// The coupon code the conversion carried (as sent), and the live coupon it named.
    pub coupon_code: Option<String>,
    pub coupon_id: Option<String>,
}

impl TryFrom<EventRow> for Event {
    type Error = StoreError;

    fn try_from(r: EventRow) -> StoreResult<Event> {
        let kind = EventKind::parse(&r.kind)
            .ok_or_else(|| StoreError::Corrupt(format!("event {} has kind `{}`", r.id, r.kind)))?;
        let attribution = AttributionOutcome::parse(&r.attribution)
            .ok_or_else(|| StoreError::Corrupt(format!("event {} has attribution `{}`", r.id, r.attribution)))?;
        Ok(Event {
            id: r.id,
            program_id: r.program_id,
            customer_id: r.customer_id,
            kind,
            event_name: r.event_name,
            invoice_id: r.invoice_id,
            amount: r.amount,
            currency: r.currency,
            payout_amount: r.payout_amount,
            partner_id: r.partner_id,
            click_id: r.click_id,
            attribution,
            metadata: r.metadata,
            created_at: r.created_at,
            customer_external_id: r.customer_external_id,
            coupon_code: r.coupon_code,
            coupon_id: r.coupon_id,
        })
    }
}

const EVENT_COLS: &str = "e.id, e.program_id, e.customer_id, e.kind, e.event_name, e.invoice_id, e.amount, e.currency, \
     e.payout_amount, e.partner_id, e.click_id, e.attribution, e.metadata, e.created_at, c.external_id AS customer_external_id, \
     e.coupon_code, e.coupon_id";

pub async fn lead_event(
    db: &D1Database,
    program_id: &str,
    external_id: &str,
    event_name: &str,
) -> StoreResult<Option<Event>> {
    let row: Option<EventRow> = first(lead_event_stmt(db, program_id, external_id, event_name)?).await?;
    row.map(Event::try_from).transpose()
}

fn lead_event_stmt(
    db: &D1Database,
    program_id: &str,
    external_id: &str,
    event_name: &str,
) -> StoreResult<D1PreparedStatement> {
    Ok(query!(
        db,
        &format!(
            "SELECT {EVENT_COLS} FROM events e JOIN customers c ON c.id = e.customer_id
             WHERE e.program_id = ?1 AND c.external_id = ?2 AND e.event_name = ?3 AND e.kind = 'lead'"
        ),
        program_id,
        external_id,
        event_name
    )?)
}

/// The reads of a lead, appended to a batch: its event, then its commission.
fn stored_lead_stmts(
    db: &D1Database,
    program_id: &str,
    external_id: &str,
    event_name: &str,
) -> StoreResult<[D1PreparedStatement; 2]> {
    Ok([
        lead_event_stmt(db, program_id, external_id, event_name)?,
        commissions::of_lead_stmt(db, program_id, external_id, event_name)?,
    ])
}

pub async fn sale_event(db: &D1Database, program_id: &str, invoice_id: &str) -> StoreResult<Option<Event>> {
    let row: Option<EventRow> = first(sale_event_stmt(db, program_id, invoice_id)?).await?;
    row.map(Event::try_from).transpose()
}

fn sale_event_stmt(db: &D1Database, program_id: &str, invoice_id: &str) -> StoreResult<D1PreparedStatement> {
    Ok(query!(
        db,
        &format!(
            "SELECT {EVENT_COLS} FROM events e JOIN customers c ON c.id = e.customer_id
             WHERE e.program_id = ?1 AND e.invoice_id = ?2 AND e.kind = 'sale'"
        ),
        program_id,
        invoice_id
    )?)
}

/// A conversion as stored: its event and its commission (none if unattributed or unpaid).
pub struct StoredEvent {
    pub event: Event,
    pub commission: Option<Commission>,
}

/// The reads of a sale, appended to a batch: its event, then its commission.
fn stored_sale_stmts(db: &D1Database, program_id: &str, invoice_id: &str) -> StoreResult<[D1PreparedStatement; 2]> {
    Ok([sale_event_stmt(db, program_id, invoice_id)?, commissions::of_sale_stmt(db, program_id, invoice_id)?])
}

fn read_stored(event: Option<&D1Result>, commission: Option<&D1Result>) -> StoreResult<Option<StoredEvent>> {
    let Some(row) = super::first_row::<EventRow>(event)? else {
        return Ok(None);
    };
    Ok(Some(StoredEvent { event: Event::try_from(row)?, commission: super::first_row(commission)? }))
}

/// Everything a conversion is decided on, once its program is known.
pub struct ConversionLoad {
    pub program: Option<Program>,
    /// The conversion with the same key (a lead's customer and name, a sale's invoice id), if
    /// one was tracked already: a retry is answered with it.
    pub stored: Option<StoredEvent>,
    pub customer: Option<Customer>,
    /// The partner the customer is attributed to now.
    pub partner: Option<Partner>,
    /// The live coupon the conversion's code names, with its partner (read only for a code).
    pub coupon: Option<(Coupon, Option<Partner>)>,
}

/// Loads the program, the stored conversion (`stored`: its event and commission reads), the
/// customer and the customer's partner, plus `extra` reads, in one round trip (a batch of
/// reads); answers the extra reads' results.
async fn load(
    db: &D1Database,
    program_id: &str,
    external_id: &str,
    stored: [D1PreparedStatement; 2],
    extra: Vec<D1PreparedStatement>,
) -> StoreResult<(ConversionLoad, Vec<D1Result>)> {
    let [event, commission] = stored;
    let mut stmts = vec![
        super::programs::get_stmt(db, program_id)?,
        event,
        commission,
        customer_stmt(db, program_id, external_id)?,
        super::partners::of_customer_stmt(db, program_id, external_id)?,
    ];
    stmts.extend(extra);
    let mut r = super::batch_results(db, stmts).await?;
    let loaded = ConversionLoad {
        program: super::programs::read(r.first())?,
        stored: read_stored(r.get(1), r.get(2))?,
        customer: super::first_row(r.get(3))?,
        partner: super::partners::read(r.get(4))?,
        coupon: None,
    };
    Ok((loaded, r.split_off(r.len().min(5))))
}

/// A lead's load, the partner of the click it presented (`presented_partner_id`) and the
/// visits the presented visitor paid to that partner's links in the hours of `recent_hours` (the
/// visitor's id prefixes of the last 24 hours: the `click_spam` rule), in the same round trip.
pub async fn load_lead(
    db: &D1Database,
    program_id: &str,
    external_id: &str,
    event_name: &str,
    presented_partner_id: Option<&str>,
    recent_hours: &[String],
    coupon_key: Option<&str>,
) -> StoreResult<(ConversionLoad, Option<Partner>, i64)> {
    struct Hits {
        hits: i64,
    }
    from_row!(Hits { hits });
    let stored = stored_lead_stmts(db, program_id, external_id, event_name)?;
    let presented = super::partners::get_stmt(db, presented_partner_id)?;
    let hits = super::clicks::partner_visits_stmt(db, presented_partner_id.unwrap_or(""), recent_hours)?;
    let mut extra = vec![presented, hits];
    if let Some(key) = coupon_key {
        extra.extend(super::coupons::by_code_stmts(db, program_id, key)?);
    }
    let (mut loaded, extra) = load(db, program_id, external_id, stored, extra).await?;
    let hits = super::first_row::<Hits>(extra.get(1))?.map_or(0, |h| h.hits);
    if coupon_key.is_some() {
        loaded.coupon = super::coupons::read(extra.get(2), extra.get(3))?;
    }
    Ok((loaded, super::partners::read(extra.first())?, hits))
}

/// A sale's load: its stored sale is the one with its invoice id; what the customer earned
/// its partner so far (sale commissions not rejected, at their created amount: what the sale
/// reward's caps count); with a coupon code (`coupon_key`, lower-case), its coupon; all in the
/// same round trip.
pub async fn load_sale(
    db: &D1Database,
    program_id: &str,
    invoice_id: &str,
    external_id: &str,
    coupon_key: Option<&str>,
) -> StoreResult<(ConversionLoad, refport_core::rules::Earned)> {
    struct EarnedRow {
        amount: i64,
        sales: u32,
    }
    from_row!(EarnedRow { amount, sales });
    let stored = stored_sale_stmts(db, program_id, invoice_id)?;
    let mut extra = vec![query!(
        db,
        &format!("SELECT COALESCE(SUM(original_amount), 0) AS amount, COUNT(*) AS sales {EARNED}"),
        program_id,
        external_id,
        None::<&str>
    )?];
    if let Some(key) = coupon_key {
        extra.extend(super::coupons::by_code_stmts(db, program_id, key)?);
    }
    let (mut loaded, extra) = load(db, program_id, external_id, stored, extra).await?;
    if coupon_key.is_some() {
        loaded.coupon = super::coupons::read(extra.get(1), extra.get(2))?;
    }
    let e = super::first_row::<EarnedRow>(extra.first())?;
    Ok((loaded, e.map(|e| refport_core::rules::Earned { amount: e.amount, sales: e.sales }).unwrap_or_default()))
}

/// The sale commissions (not rejected) customer `?2` of program `?1` brought partner `?3`
/// (`NULL`: the customer's partner now).
const EARNED: &str = "FROM commissions INDEXED BY commissions_customer
     WHERE customer_id = (SELECT id FROM customers WHERE program_id = ?1 AND external_id = ?2)
       AND partner_id = COALESCE(?3, (SELECT partner_id FROM customers WHERE program_id = ?1 AND external_id = ?2))
       AND kind = 'sale' AND status != 'rejected'";

pub struct NewEvent<'a> {
    pub id: &'a str,
    pub program_id: &'a str,
    pub external_id: &'a str,
    pub kind: EventKind,
    pub event_name: &'a str,
    pub invoice_id: Option<&'a str>,
    pub amount: Option<i64>,
    pub currency: Option<&'a str>,
    pub payout_amount: Option<i64>,
    pub partner_id: Option<&'a str>,
    pub click_id: Option<&'a str>,
    /// The credited link when the caller knows it (a lead); `None`: the customer's link, when
    /// the customer is attributed to the event's partner (a sale).
    pub link_id: Option<&'a str>,
    pub attribution: AttributionOutcome,
    pub metadata: Option<&'a str>,
    pub product_id: Option<&'a str>,
    pub now: i64,
    /// The coupon code carried (as sent) and the live coupon it named.
    pub coupon: (Option<&'a str>, Option<&'a str>),
}

/// Inserts the event unless its idempotency tuple exists (lead: program + customer + name;
/// sale: program + invoice). The customer is resolved in SQL, after the upsert in the same batch.
pub fn insert_event(db: &D1Database, e: &NewEvent<'_>) -> StoreResult<D1PreparedStatement> {
    Ok(query!(
        db,
        "INSERT INTO events (id, program_id, customer_id, kind, event_name, invoice_id, amount, currency, payout_amount,
             partner_id, click_id, attribution, metadata, created_at, link_id, product_id, coupon_code, coupon_id)
         SELECT ?1, ?2, c.id, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,
             CASE WHEN ?10 IS NULL THEN NULL WHEN ?15 IS NOT NULL THEN ?15 WHEN c.partner_id = ?10 THEN c.link_id END,
             ?16, ?17, ?18
         FROM customers c WHERE c.program_id = ?2 AND c.external_id = ?3
         ON CONFLICT DO NOTHING",
        e.id,
        e.program_id,
        e.external_id,
        e.kind.as_str(),
        e.event_name,
        e.invoice_id,
        e.amount,
        e.currency,
        e.payout_amount,
        e.partner_id,
        e.click_id,
        e.attribution.as_str(),
        e.metadata,
        e.now,
        e.link_id,
        e.product_id,
        e.coupon.0,
        e.coupon.1
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

/// Fresh ids for the rows a conversion may create: they exist only if this request's batch won.
pub struct NewIds {
    pub customer: String,
    pub event: String,
    pub commission: String,
}

/// A lead and what the core decided for it.
pub struct LeadWrite<'a> {
    pub program_id: &'a str,
    pub lead: &'a LeadRequest,
    pub decision: &'a LeadDecision,
    pub ids: &'a NewIds,
    pub now: i64,
    /// The live coupon the lead's code named.
    pub coupon_id: Option<&'a str>,
}

/// Records a lead in one atomic batch: the customer (and its new attribution), the event unless
/// its (program, customer, name) exists, the commission only if this batch's event won, and
/// their `lead.created` / `commission.created` webhooks. A racing twin writes nothing; both
/// answer the lead stored under its key, read back in the same batch.
pub async fn record_lead(db: &D1Database, w: &LeadWrite<'_>) -> StoreResult<Recorded> {
    let (d, external_id) = (w.decision, w.lead.customer_external_id.as_str());
    let credited = d.credited.as_ref();
    let signals = d.credited_signals.to_stored();
    let mut stmts = vec![upsert_customer(
        db,
        &CustomerUpsert {
            new_id: &w.ids.customer,
            program_id: w.program_id,
            external_id,
            email: w.lead.customer_email.as_deref(),
            name: w.lead.customer_name.as_deref(),
            attribution: credited.map(|f| (f.partner_id.as_str(), f.link_id.as_str(), f.click_id.as_str(), f.at)),
            click_signals: credited.and(signals.as_deref()),
            country: credited.and(d.credited_country.as_deref()),
            now: w.now,
        },
    )?];
    stmts.push(insert_event(
        db,
        &NewEvent {
            id: &w.ids.event,
            program_id: w.program_id,
            external_id,
            kind: EventKind::Lead,
            event_name: &w.lead.event_name,
            invoice_id: None,
            amount: None,
            currency: None,
            payout_amount: None,
            partner_id: credited.map(|f| f.partner_id.as_str()),
            click_id: credited.and_then(|f| nonempty(&f.click_id)),
            link_id: credited.and_then(|f| nonempty(&f.link_id)),
            attribution: d.attribution,
            metadata: None,
            product_id: None,
            now: w.now,
            coupon: (w.lead.coupon_code.as_deref(), w.coupon_id),
        },
    )?);
    if let Some(plan) = &d.commission {
        stmts.extend(commissions::insert_if_event_won(
            db,
            &NewCommission {
                id: &w.ids.commission,
                program_id: w.program_id,
                customer_ref: (w.program_id, external_id),
                event_id: &w.ids.event,
                invoice_id: None,
                plan,
                now: w.now,
            },
        )?);
    }
    stmts.push(outbox::conversion(db, &w.ids.event, w.now)?);
    stmts.push(outbox::commission(db, outbox::CREATED, &w.ids.commission, w.now)?);
    let fan_out = stmts.len();
    stmts.extend(outbox::fan_out(db, w.now)?);
    stmts.extend(stored_lead_stmts(db, w.program_id, &w.lead.customer_external_id, &w.lead.event_name)?);
    read_back(super::batch_results(db, stmts).await?, fan_out, &w.ids.event)
}

/// A sale and what the core decided for it.
pub struct SaleWrite<'a> {
    pub program_id: &'a str,
    pub sale: &'a SaleRequest,
    pub priced: &'a PricedSale,
    pub decision: &'a SaleDecision,
    pub ids: &'a NewIds,
    pub now: i64,
    /// The live coupon the sale's code named, and the partner it (re)attributes the customer to.
    pub coupon_id: Option<&'a str>,
    pub attribute_to: Option<&'a str>,
}

/// Records a sale in one atomic batch: the customer if new, the event unless its (program,
/// invoice) exists, the customer's first sale time, the commission only if this batch's event
/// won (for a first-sale-only reward: only if no other sale of the customer landed first), and
/// its `commission.created` webhook.
/// Writes the sale (only if its invoice id is new: a racing twin writes nothing) and answers
/// the sale stored under its invoice id, read back in the same batch.
pub async fn record_sale(db: &D1Database, w: &SaleWrite<'_>) -> StoreResult<Recorded> {
    let (d, sale, external_id) = (w.decision, w.sale, w.sale.customer_external_id.as_str());
    let mut stmts = Vec::new();
    if d.create_customer || w.attribute_to.is_some() {
        stmts.push(upsert_customer(
            db,
            &CustomerUpsert {
                new_id: &w.ids.customer,
                program_id: w.program_id,
                external_id,
                email: None,
                name: None,
                // A coupon's attribution: its partner, no link, no click, from now.
                attribution: w.attribute_to.map(|p| (p, "", "", w.now)),
                click_signals: None,
                country: None,
                now: w.now,
            },
        )?);
    }
    stmts.push(insert_event(
        db,
        &NewEvent {
            id: &w.ids.event,
            program_id: w.program_id,
            external_id,
            kind: EventKind::Sale,
            event_name: &sale.event_name,
            invoice_id: Some(&sale.invoice_id),
            amount: Some(sale.amount),
            currency: Some(sale.currency.code()),
            payout_amount: w.priced.payout_amount,
            partner_id: d.partner_id.as_deref(),
            click_id: d.click_id.as_deref(),
            link_id: None,
            attribution: d.attribution,
            metadata: sale.metadata.as_deref(),
            product_id: sale.product_id.as_deref(),
            now: w.now,
            coupon: (sale.coupon_code.as_deref(), w.coupon_id),
        },
    )?);
    stmts.push(mark_first_sale(db, w.program_id, external_id, &w.ids.event, w.now)?);
    if let Some(plan) = &d.commission {
        stmts.extend(commissions::insert_if_event_won(
            db,
            &NewCommission {
                id: &w.ids.commission,
                program_id: w.program_id,
                customer_ref: (w.program_id, external_id),
                event_id: &w.ids.event,
                invoice_id: Some(&sale.invoice_id),
                plan,
                now: w.now,
            },
        )?);
        if let Some(cap) = plan.cap {
            // The caps, enforced inside the batch against what the customer's other sales
            // stored first (concurrent sales of one customer cannot together pass the cap).
            stmts.extend(commissions::keep_within_cap(db, &w.ids.commission, &w.ids.event, cap)?);
        }
        if plan.first_sale_only {
            // First sale only, enforced inside the batch: concurrent "first" sales of one
            // customer cannot all earn; the others are recorded outside the recurring window.
            stmts.extend(commissions::keep_only_first_sale(db, &w.ids.commission, &w.ids.event)?);
        }
    }
    stmts.push(outbox::conversion(db, &w.ids.event, w.now)?);
    stmts.push(outbox::commission(db, outbox::CREATED, &w.ids.commission, w.now)?);
    let fan_out = stmts.len();
    stmts.extend(outbox::fan_out(db, w.now)?);
    stmts.extend(stored_sale_stmts(db, w.program_id, &sale.invoice_id)?);
    read_back(super::batch_results(db, stmts).await?, fan_out, &w.ids.event)
}

/// What a conversion's write batch did.
pub struct Recorded {
    /// The conversion as stored (this request's, or a racing twin's that landed first).
    pub stored: StoredEvent,
    /// Webhook deliveries the batch queued (none when no endpoint wants its events).
    pub deliveries: usize,
    /// This call stored it (not a retry, nor a twin that landed first).
    pub new: bool,
}

/// The event (and commission) a write batch read back in its last two statements, and the
/// deliveries queued by its fan-out statement (at `fan_out`).
fn read_back(r: Vec<D1Result>, fan_out: usize, event_id: &str) -> StoreResult<Recorded> {
    let n = r.len();
    let stored = read_stored(r.get(n.wrapping_sub(2)), r.last())?
        .ok_or_else(|| StoreError::Database("the event is missing after its batch".into()))?;
    let deliveries = match r.get(fan_out) {
        Some(f) => f.changes(),
        None => 0,
    };
    let new = stored.event.id == event_id;
    Ok(Recorded { stored, deliveries, new })
}
