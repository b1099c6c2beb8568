//! The webhook outbox: statements that record an event in the same D1 batch as the change it
//! describes, then fan it out to the subscribed endpoints (one delivery row each). Delivery
//! happens later (`src/webhook_delivery.rs`), so a failing receiver never loses an event.

use super::StoreResult as Result;
use worker::d1::D1PreparedStatement;
use worker::{query, D1Database};

/// RFC 3339 (ms, UTC) of an INTEGER ms column, in SQL.
macro_rules! iso {
    ($col:expr) => {
        concat!("strftime('%Y-%m-%dT%H:%M:%fZ', ", $col, " / 1000.0, 'unixepoch')")
    };
}

/// The Commission wire object of row `c`, in SQL.
const COMMISSION_JSON: &str = concat!(
    "json_object('id', c.id, 'program_id', c.program_id, 'partner_id', c.partner_id, 'customer_id', c.customer_id, ",
    "'kind', c.kind, 'invoice_id', c.invoice_id, 'sale_amount', c.sale_amount, 'amount', c.amount, 'currency', c.currency, ",
    "'status', c.status, 'reason', c.reason, 'hold_reasons', json(COALESCE(c.hold_reasons, '[]')), ",
    "'held', json(CASE WHEN c.status = 'pending' AND c.hold_reasons IS NOT NULL THEN 'true' ELSE 'false' END), ",
    "'payout_id', c.payout_id, 'description', c.description, 'created_at', ",
    iso!("c.created_at"),
    ", 'approved_at', CASE WHEN c.approved_at IS NULL THEN NULL ELSE ",
    iso!("c.approved_at"),
    " END, 'paid_at', CASE WHEN c.paid_at IS NULL THEN NULL ELSE ",
    iso!("c.paid_at"),
    " END)"
);

const PAYOUT_JSON: &str = concat!(
    "json_object('id', p.id, 'program_id', p.program_id, 'partner_id', p.partner_id, 'amount', p.amount, ",
    "'currency', p.currency, 'status', p.status, 'stripe_transfer_id', p.stripe_transfer_id, ",
    "'failure_message', p.failure_message, 'commission_count', p.commission_count, ",
    "'reversed_amount', p.reversed_amount, 'created_at', ",
    iso!("p.created_at"),
    ", 'paid_at', CASE WHEN p.paid_at IS NULL THEN NULL ELSE ",
    iso!("p.paid_at"),
    " END)"
);

const NEW_EVENT_ID: &str = "'evt_' || lower(hex(randomblob(13)))";

/// `commission.created` / `commission.updated` for the commission `id`, as it is after the
/// preceding statements of the batch (emitted only if the row exists and changed at `now`).
pub fn commission(db: &D1Database, event_type: &str, id: &str, now: i64) -> Result<D1PreparedStatement> {
    Ok(query!(
        db,
        &format!(
            "INSERT INTO webhook_events (id, type, subject_id, payload, created_at)
             SELECT {NEW_EVENT_ID}, ?1, c.id, {COMMISSION_JSON}, ?3 FROM commissions c WHERE c.id = ?2 AND c.updated_at = ?3
             ON CONFLICT DO NOTHING"
        ),
        event_type,
        id,
        now
    )?)
}

/// `commission.updated` for every commission matching `where_sql` (a fixed SQL condition on `c`
/// using `?1` = now), e.g. the cron's bulk approvals.
pub fn commissions_where(db: &D1Database, where_sql: &str, now: i64, arg: Option<&str>) -> Result<D1PreparedStatement> {
    Ok(query!(
        db,
        &format!(
            "INSERT INTO webhook_events (id, type, subject_id, payload, created_at)
             SELECT {NEW_EVENT_ID}, 'commission.updated', c.id, {COMMISSION_JSON}, ?1 FROM commissions c WHERE {where_sql}"
        ),
        now,
        arg
    )?)
}

/// `payout.paid` / `payout.failed`, once per payout.
pub fn payout(db: &D1Database, event_type: &str, id: &str, status: &str, now: i64) -> Result<D1PreparedStatement> {
    Ok(query!(
        db,
        &format!(
            "INSERT INTO webhook_events (id, type, subject_id, payload, created_at)
             SELECT {NEW_EVENT_ID}, ?1, p.id, {PAYOUT_JSON}, ?4 FROM payouts p WHERE p.id = ?2 AND p.status = ?3
             ON CONFLICT DO NOTHING"
        ),
        event_type,
        id,
        status,
        now
    )?)
}

/// `payout.awaiting_approval` for each payout of `ids_json` (a JSON array) the preceding
/// statements of the batch prepared awaiting approval.
pub fn payouts_awaiting_approval(db: &D1Database, ids_json: &str, now: i64) -> Result<D1PreparedStatement> {
    Ok(query!(
        db,
        &format!(
            "INSERT INTO webhook_events (id, type, subject_id, payload, created_at)
             SELECT {NEW_EVENT_ID}, 'payout.awaiting_approval', p.id, {PAYOUT_JSON}, ?2 FROM payouts p
             WHERE p.id IN (SELECT value FROM json_each(?1)) AND p.status = 'awaiting_approval' AND p.updated_at = ?2
             ON CONFLICT DO NOTHING"
        ),
        ids_json,
        now
    )?)
}

/// `payout.reversed` for payout `id`, only if this batch recorded the reversal (its clawback
/// row `clawback_id` exists), so a repeated or late event writes no second one.
pub fn payout_reversed(db: &D1Database, id: &str, clawback_id: &str, now: i64) -> Result<D1PreparedStatement> {
    Ok(query!(
        db,
        &format!(
            "INSERT INTO webhook_events (id, type, subject_id, payload, created_at)
             SELECT {NEW_EVENT_ID}, 'payout.reversed', p.id, {PAYOUT_JSON}, ?3 FROM payouts p
             WHERE p.id = ?1 AND EXISTS (SELECT 1 FROM commissions WHERE id = ?2 AND payout_id = ?1)
             ON CONFLICT DO NOTHING"
        ),
        id,
        clawback_id,
        now
    )?)
}

/// `lead.created` for the conversion event `event_id` (exists only if this batch inserted it).
pub fn lead(db: &D1Database, event_id: &str, now: i64) -> Result<D1PreparedStatement> {
    Ok(query!(
        db,
        &format!(
            "INSERT INTO webhook_events (id, type, subject_id, payload, created_at)
             SELECT {NEW_EVENT_ID}, 'lead.created', e.id,
                 json_object('id', e.id, 'program_id', e.program_id, 'customer_id', e.customer_id,
                     'customer_external_id', cu.external_id, 'event_name', e.event_name, 'partner_id', e.partner_id,
                     'click_id', e.click_id, 'attributed', json(CASE WHEN e.attribution = 'attributed' THEN 'true' ELSE 'false' END),
                     'reason', CASE WHEN e.attribution = 'attributed' THEN NULL ELSE e.attribution END,
                     'created_at', {}), ?2
             FROM events e JOIN customers cu ON cu.id = e.customer_id WHERE e.id = ?1 AND e.created_at = ?2
             ON CONFLICT DO NOTHING",
            iso!("e.created_at")
        ),
        event_id,
        now
    )?)
}

/// Creates the deliveries of every event not yet fanned out, to each endpoint subscribed to its
/// type, and marks the events fanned out: two statements, to end every emitting batch.
pub fn fan_out(db: &D1Database, now: i64) -> Result<Vec<D1PreparedStatement>> {
    Ok(vec![
        query!(
            db,
            "INSERT INTO webhook_deliveries (id, event_id, endpoint_id, status, attempts, next_attempt_at, created_at)
             SELECT 'wd_' || lower(hex(randomblob(12))), ev.id, ep.id, 'pending', 0, ?1, ?1
             FROM webhook_events ev JOIN webhook_endpoints ep
               ON ep.deleted_at IS NULL AND EXISTS (SELECT 1 FROM json_each(ep.events) j WHERE j.value = ev.type)
              -- An endpoint made by a program-bound key receives only its program's events.
              AND (ep.program_id IS NULL OR ep.program_id = json_extract(ev.payload, '$.program_id'))
             WHERE ev.fanned_out = 0
             ON CONFLICT DO NOTHING",
            now
        )?,
        query!(db, "UPDATE webhook_events SET fanned_out = 1 WHERE fanned_out = 0"),
    ])
}
