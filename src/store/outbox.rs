//! The webhook outbox: statements that record an event in the same D1 batch as the change it
//! describes, then fan it out to the subscribed endpoints (one delivery row each). Delivery
//! happens later (`src/webhook_delivery.rs`), so a failing receiver never loses an event.

use super::StoreResult as Result;
use worker::d1::D1PreparedStatement;
use worker::D1Database;

/// RFC 3339 (ms, UTC) of an INTEGER ms column, in SQL.
macro_rules! iso {
    ($col:expr) => {
        concat!("strftime('%Y-%m-%dT%H:%M:%fZ', ", $col, " / 1000.0, 'unixepoch')")
    };
}

/// The Commission wire object of row `c`, in SQL: field for field what `GET /api/v1/commissions`
/// answers (`store::commissions::Commission`); `GET /api/v1/commissions/{id}` answers this very
/// expression, so the webhook and the API cannot drift apart.
pub const COMMISSION_JSON: &str = concat!(
    "json_object('id', c.id, 'program_id', c.program_id, 'partner_id', c.partner_id, 'customer_id', c.customer_id, ",
    "'event_id', c.event_id, 'parent_id', c.parent_id, 'kind', c.kind, 'invoice_id', c.invoice_id, ",
    "'sale_amount', c.sale_amount, 'original_amount', c.original_amount, 'amount', c.amount, 'currency', c.currency, ",
    "'status', c.status, 'reason', c.reason, 'refunded_amount', c.refunded_amount, 'clawed_back', c.clawed_back, ",
    "'payout_id', c.payout_id, 'created_at', ",
    iso!("c.created_at"),
    ", 'updated_at', ",
    iso!("c.updated_at"),
    ", 'approved_at', CASE WHEN c.approved_at IS NULL THEN NULL ELSE ",
    iso!("c.approved_at"),
    " END, 'paid_at', CASE WHEN c.paid_at IS NULL THEN NULL ELSE ",
    iso!("c.paid_at"),
    " END, 'hold_reasons', json(COALESCE(c.hold_reasons, '[]')), ",
    "'held', json(CASE WHEN c.status = 'pending' AND c.hold_reasons IS NOT NULL THEN 'true' ELSE 'false' END), ",
    "'description', c.description)"
);

/// The Partner wire object of row `partners` (what `GET /api/v1/partners/{id}` answers), in SQL.
const PARTNER_JSON: &str = concat!(
    "json_object('id', id, 'program_id', program_id, 'email', email, 'name', name, 'status', status, ",
    "'rewards', json(rewards), 'stripe_account_id', stripe_account_id, ",
    "'payouts_enabled', json(CASE WHEN payouts_enabled THEN 'true' ELSE 'false' END), 'country', country, ",
    "'payouts_disabled_reason', payouts_disabled_reason, 'payout_hold_reasons', json(CASE WHEN ",
    super::partners::payout_held!(),
    " THEN '[\"duplicate_payout_account\"]' ELSE '[]' END), 'payout_account_approved_at', ",
    "CASE WHEN payout_account_approved_at IS NULL THEN NULL ELSE ",
    iso!("payout_account_approved_at"),
    " END, 'group_id', group_id, 'min_payout', min_payout, 'created_at', ",
    iso!("created_at"),
    ", 'updated_at', ",
    iso!("updated_at"),
    ")"
);

/// The Payout wire object of row `p` (what `GET /api/v1/payouts` lists), in SQL.
const PAYOUT_JSON: &str = concat!(
    "json_object('id', p.id, 'program_id', p.program_id, 'partner_id', p.partner_id, 'amount', p.amount, ",
    "'currency', p.currency, 'status', p.status, 'stripe_transfer_id', p.stripe_transfer_id, ",
    "'failure_message', p.failure_message, 'commission_count', p.commission_count, 'attempts', p.attempts, ",
    "'reversed_amount', p.reversed_amount, 'created_at', ",
    iso!("p.created_at"),
    ", 'paid_at', CASE WHEN p.paid_at IS NULL THEN NULL ELSE ",
    iso!("p.paid_at"),
    " END)"
);

const NEW_EVENT_ID: &str = "'evt_' || lower(hex(randomblob(13)))";

/// Event types, as the JSON array the outbox inserts iterate (`json_each`): one row each.
pub const CREATED: &str = r#"["commission.created"]"#;
pub const UPDATED: &str = r#"["commission.updated"]"#;
/// A move to approved (the API, the cron): `commission.updated` and `commission.approved`.
pub const APPROVED: &str = r#"["commission.updated","commission.approved"]"#;
/// A payout paid its commissions: `commission.updated` and `commission.paid`.
pub const PAID: &str = r#"["commission.updated","commission.paid"]"#;

/// The commission events `types` (a JSON array above) for the commission `id`, as it is after
/// the preceding statements of the batch (emitted only if the row exists and changed at `now`).
pub fn commission(db: &D1Database, types: &str, id: &str, now: i64) -> Result<D1PreparedStatement> {
    commissions_where(db, types, "c.id = ?2 AND c.updated_at = ?1", now, Some(id))
}

/// The commission events `types` (a JSON array above) for every commission matching
/// `where_sql` (a fixed SQL condition on `c` using `?1` = now and `?2` = `arg`), e.g. the
/// cron's bulk approvals. The payload is the row as this batch wrote it (a snapshot taken in the
/// same transaction), not as it is when delivered: each event shows its own change.
pub fn commissions_where(
    db: &D1Database,
    types: &str,
    where_sql: &str,
    now: i64,
    arg: Option<&str>,
) -> Result<D1PreparedStatement> {
    Ok(query!(
        db,
        &format!(
            "INSERT INTO webhook_events (id, type, subject_id, payload, created_at)
             SELECT {NEW_EVENT_ID}, t.value, c.id, {COMMISSION_JSON}, ?1 FROM commissions c, json_each(?3) t WHERE {where_sql}
             ON CONFLICT DO NOTHING"
        ),
        now,
        arg,
        types
    )?)
}

/// `partner.enrolled` / `partner.updated` / `partner.banned` for the partner `id`, as this batch
/// wrote it: only if it changed at `now` (enrolled: and is active; banned: and is banned).
pub fn partner(db: &D1Database, event_type: &str, id: &str, now: i64) -> Result<D1PreparedStatement> {
    Ok(query!(
        db,
        &format!(
            "INSERT INTO webhook_events (id, type, subject_id, payload, created_at)
             SELECT {NEW_EVENT_ID}, ?1, id, {PARTNER_JSON}, ?3 FROM partners WHERE id = ?2 AND updated_at = ?3
               AND (?1 = 'partner.updated' OR status = CASE ?1 WHEN 'partner.banned' THEN 'banned' ELSE 'active' END)"
        ),
        event_type,
        id,
        now
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

/// `lead.created` / `sale.created` for the conversion event `event_id` (it exists only if this
/// batch inserted it), with its commission as `GET /api/v1/commissions/{id}` shows it (`null`
/// when it earned none): put it after the commission's statements.
pub fn conversion(db: &D1Database, event_id: &str, now: i64) -> Result<D1PreparedStatement> {
    Ok(query!(
        db,
        &format!(
            "INSERT INTO webhook_events (id, type, subject_id, payload, created_at)
             SELECT {NEW_EVENT_ID}, e.kind || '.created', e.id,
                 json_object('id', e.id, 'kind', e.kind, 'program_id', e.program_id, 'customer_id', e.customer_id,
                     'customer_external_id', cu.external_id, 'event_name', e.event_name, 'partner_id', e.partner_id,
                     'click_id', e.click_id, 'coupon_code', e.coupon_code, 'coupon_id', e.coupon_id,
                     'invoice_id', e.invoice_id, 'amount', e.amount, 'currency', e.currency, 'payout_amount', e.payout_amount,
                     'metadata', json(e.metadata),
                     'attributed', json(CASE WHEN e.attribution = 'attributed' THEN 'true' ELSE 'false' END),
                     'reason', CASE WHEN e.attribution = 'attributed' THEN NULL ELSE e.attribution END,
                     'commission', json((SELECT {COMMISSION_JSON} FROM commissions c WHERE c.event_id = e.id AND c.kind != 'clawback')),
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
