use super::D1Result;
use super::{all, first, StoreError, StoreResult, Taken};
use refport_core::partner::{PartnerFields, PartnerStatus};
use refport_core::rules::Rewards;
use serde::Serialize;
use worker::d1::D1PreparedStatement;
use worker::D1Database;

struct Row {
    id: String,
    program_id: String,
    email: String,
    name: String,
    status: String,
    rewards: Option<String>,
    stripe_account_id: Option<String>,
    payouts_enabled: i64,
    country: Option<String>,
    payouts_disabled_reason: Option<String>,
    created_at: i64,
    updated_at: i64,
    payout_held: Option<f64>,
    payout_account_approved_at: Option<i64>,
    group_id: Option<String>,
    min_payout: Option<i64>,
    group_rewards: Option<String>,
    group_min_payout: Option<i64>,
    group_hold_days: Option<u32>,
}
from_row!(Row { id, program_id, email, name, status, rewards, stripe_account_id, payouts_enabled, country, payouts_disabled_reason, created_at, updated_at } default { payout_held, payout_account_approved_at, group_id, min_payout, group_rewards, group_min_payout, group_hold_days });

#[derive(Clone, Debug, Serialize)]
pub struct Partner {
    pub id: String,
    pub program_id: String,
    pub email: String,
    pub name: String,
    pub status: PartnerStatus,
    /// Per-partner reward override; `null` means the program's rewards apply.
    pub rewards: Option<Rewards>,
    pub stripe_account_id: Option<String>,
    pub payouts_enabled: bool,
    /// ISO 3166-1 alpha-2; decides the Stripe service agreement at onboarding.
    pub country: Option<String>,
    /// Why payouts are disabled (a Stripe refusal, a deauthorization); `null` otherwise.
    pub payouts_disabled_reason: Option<String>,
    /// Fraud rules holding the partner's payouts for the merchant (`duplicate_payout_account`:
    /// another partner is paid to the same Stripe account or bank account).
    pub payout_hold_reasons: Vec<refport_core::fraud::Rule>,
    /// When the merchant approved the partner's payout account despite a shared account.
    #[serde(serialize_with = "super::programs::ser_opt_time")]
    pub payout_account_approved_at: Option<i64>,
    /// The partner's group; `null`: none.
    pub group_id: Option<String>,
    /// The partner's own minimum payout; `null`: its group's or the program's applies.
    pub min_payout: Option<i64>,
    /// Its group's rewards (what applies between the program's and the partner's override).
    #[serde(skip)]
    pub group_rewards: Option<Rewards>,
    /// Its group's minimum payout and hold period, when the group sets them.
    #[serde(skip)]
    pub group_min_payout: Option<i64>,
    #[serde(skip)]
    pub group_hold_days: Option<u32>,
    #[serde(serialize_with = "super::programs::ser_time")]
    pub created_at: i64,
    #[serde(serialize_with = "super::programs::ser_time")]
    pub updated_at: i64,
}

impl Partner {
    pub fn fields(&self) -> PartnerFields {
        PartnerFields {
            email: self.email.clone(),
            name: self.name.clone(),
            status: self.status,
            rewards: self.rewards.clone(),
            country: self.country.clone(),
            group_id: self.group_id.clone(),
            min_payout: self.min_payout,
        }
    }
}

impl TryFrom<Row> for Partner {
    type Error = StoreError;
    fn try_from(r: Row) -> StoreResult<Partner> {
        Ok(Partner {
            status: PartnerStatus::parse(&r.status)
                .ok_or_else(|| StoreError::Corrupt(format!("partner {} has status `{}`", r.id, r.status)))?,
            rewards: r.rewards.as_deref().map(|j| refport_core::wire::from_text(j.as_bytes())).transpose()?,
            id: r.id,
            program_id: r.program_id,
            email: r.email,
            name: r.name,
            stripe_account_id: r.stripe_account_id,
            payouts_enabled: r.payouts_enabled != 0,
            country: r.country,
            payouts_disabled_reason: r.payouts_disabled_reason,
            payout_hold_reasons: if r.payout_held.is_some_and(|h| h != 0.0) {
                vec![refport_core::fraud::Rule::DuplicatePayoutAccount]
            } else {
                Vec::new()
            },
            payout_account_approved_at: r.payout_account_approved_at,
            group_rewards: r
                .group_rewards
                .as_deref()
                .map(|j| refport_core::wire::from_text(j.as_bytes()))
                .transpose()?,
            group_id: r.group_id,
            min_payout: r.min_payout,
            group_min_payout: r.group_min_payout,
            group_hold_days: r.group_hold_days,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// Whether the `duplicate_payout_account` rule holds the partner's payouts (row `partners`).
macro_rules! payout_held {
    () => {
        "(payout_account_approved_at IS NULL \
      AND COALESCE((SELECT json_extract(settings, '$.fraud_rules.duplicate_payout_account') FROM programs WHERE id = partners.program_id), 'hold') = 'hold' \
      AND EXISTS (SELECT 1 FROM partners o WHERE o.id != partners.id AND lower(o.email) != lower(partners.email) \
                  AND (o.stripe_account_id = partners.stripe_account_id OR o.bank_fingerprint = partners.bank_fingerprint)))"
    };
}
pub(super) use payout_held;

const COLS: &str = concat!(
    "id, program_id, email, name, status, rewards, stripe_account_id, payouts_enabled, country, \
     payouts_disabled_reason, created_at, updated_at, payout_account_approved_at, group_id, min_payout, \
     (SELECT g.rewards FROM partner_groups g WHERE g.id = partners.group_id) AS group_rewards, \
     (SELECT g.min_payout FROM partner_groups g WHERE g.id = partners.group_id) AS group_min_payout, \
     (SELECT g.hold_days FROM partner_groups g WHERE g.id = partners.group_id) AS group_hold_days, ",
    payout_held!(),
    " AS payout_held"
);

/// The merchant approves the partner's payout account despite an account shared with another
/// partner (`duplicate_payout_account`): its payouts are no longer held by that rule.
pub async fn approve_payout_account(db: &D1Database, id: &str, now: i64) -> StoreResult<()> {
    super::run(query!(
        db,
        "UPDATE partners SET payout_account_approved_at = ?2, updated_at = ?2 WHERE id = ?1 AND payout_account_approved_at IS NULL",
        id,
        now
    )?)
    .await?;
    Ok(())
}

pub async fn get(db: &D1Database, id: &str) -> StoreResult<Option<Partner>> {
    let row: Option<Row> = first(get_stmt(db, Some(id))?).await?;
    row.map(Partner::try_from).transpose()
}

/// The partner with this id (no row for none), for a batch.
pub(super) fn get_stmt(db: &D1Database, id: Option<&str>) -> StoreResult<D1PreparedStatement> {
    Ok(query!(db, &format!("SELECT {COLS} FROM partners WHERE id = ?1"), id)?)
}

/// The partner a customer is attributed to (none if the customer is unknown or unattributed).
pub(super) fn of_customer_stmt(
    db: &D1Database,
    program_id: &str,
    external_id: &str,
) -> StoreResult<D1PreparedStatement> {
    Ok(query!(
        db,
        &format!(
            "SELECT {COLS} FROM partners WHERE id =
             (SELECT partner_id FROM customers WHERE program_id = ?1 AND external_id = ?2)"
        ),
        program_id,
        external_id
    )?)
}

/// The partner of the live coupon of the program with this lower-case code.
pub(super) fn of_coupon_stmt(db: &D1Database, program_id: &str, code_key: &str) -> StoreResult<D1PreparedStatement> {
    Ok(query!(
        db,
        &format!(
            "SELECT {COLS} FROM partners WHERE id =
             (SELECT partner_id FROM coupons WHERE program_id = ?1 AND code_key = ?2 AND deleted_at IS NULL)"
        ),
        program_id,
        code_key
    )?)
}

/// The partner an `of_customer_stmt` found, from its result in a batch.
pub(super) fn read(r: Option<&D1Result>) -> StoreResult<Option<Partner>> {
    super::first_row::<Row>(r)?.map(Partner::try_from).transpose()
}

pub async fn list(db: &D1Database, program_id: &str, before: &str, limit: u32) -> StoreResult<Vec<Partner>> {
    let rows: Vec<Row> = all(query!(
        db,
        &format!("SELECT {COLS} FROM partners WHERE program_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3"),
        program_id,
        before,
        limit + 1
    )?)
    .await?;
    rows.into_iter().map(Partner::try_from).collect()
}

/// Runs an insert or update of a partner row with its webhook `events` (and, for a ban, the
/// rejection of its open commissions) in one atomic batch; a second enrolment of the email is
/// `Taken`.
async fn write(
    db: &D1Database,
    stmt: D1PreparedStatement,
    id: &str,
    events: &[&str],
    ban: bool,
    now: i64,
) -> StoreResult<()> {
    let mut stmts = vec![stmt];
    if ban {
        stmts.extend(super::commissions::reject_open_stmts(db, id, "partner_banned", now)?);
    }
    for e in events {
        stmts.push(super::outbox::partner(db, e, id, now)?);
    }
    stmts.extend(super::outbox::fan_out(db, now)?);
    match super::batch_or_constraint(db, stmts).await? {
        Ok(_) => Ok(()),
        Err(c) if c.is_unique_on("partners") => Err(StoreError::Taken(Taken::PartnerEmail)),
        Err(c) => Err(StoreError::Database(format!("constraint {c:?}"))),
    }
}

fn rewards_json(r: &Option<Rewards>) -> StoreResult<Option<String>> {
    Ok(r.as_ref().map(serde_json::to_string).transpose()?)
}

/// Creates the partner; an active one is `partner.enrolled` (an invited one enrols when it
/// accepts the invitation).
pub async fn insert(db: &D1Database, p: &Partner) -> StoreResult<()> {
    let rewards = rewards_json(&p.rewards)?;
    let stmt = query!(
        db,
        "INSERT INTO partners (id, program_id, email, name, status, rewards, payouts_enabled, country, created_at, updated_at,
             group_id, min_payout)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8, ?8, ?9, ?10)",
        &p.id,
        &p.program_id,
        &p.email,
        &p.name,
        p.status.as_str(),
        rewards,
        &p.country,
        p.created_at,
        &p.group_id,
        p.min_payout
    )?;
    write(db, stmt, &p.id, &["partner.enrolled"], false, p.created_at).await
}

/// Updates the partner (`partner.updated`); a ban (`ban`: the status moves to banned) also
/// rejects its pending commissions (`commission.updated` each) and is `partner.banned`, all in
/// the same atomic batch.
pub async fn update(db: &D1Database, id: &str, f: &PartnerFields, ban: bool, now: i64) -> StoreResult<()> {
    let rewards = rewards_json(&f.rewards)?;
    let stmt = query!(
        db,
        "UPDATE partners SET email = ?2, name = ?3, status = ?4, rewards = ?5, updated_at = ?6, country = ?7,
             group_id = ?8, min_payout = ?9 WHERE id = ?1",
        id,
        &f.email,
        &f.name,
        f.status.as_str(),
        rewards,
        now,
        &f.country,
        &f.group_id,
        f.min_payout
    )?;
    let events: &[&str] = if ban { &["partner.updated", "partner.banned"] } else { &["partner.updated"] };
    write(db, stmt, id, events, ban, now).await
}

/// Sets whether the partner's Stripe account can receive transfers, from a fresh read of the
/// account (`GET /v1/accounts/{id}`), never from an event's possibly stale snapshot.
pub async fn set_payouts_enabled(
    db: &D1Database,
    stripe_account_id: &str,
    enabled: bool,
    reason: Option<&str>,
    now: i64,
) -> StoreResult<usize> {
    super::changes(query!(
        db,
        "UPDATE partners SET payouts_enabled = ?2, payouts_disabled_reason = ?3, updated_at = ?4 WHERE stripe_account_id = ?1",
        stripe_account_id,
        enabled as i32,
        reason,
        now
    )?)
    .await
}

/// Enrols `email` in the program as an active partner unless it already is (idempotent by
/// email), with its `partner.enrolled` webhook in the same batch (only when this call inserted
/// it); answers the partner either way and whether this call enrolled it.
pub async fn enrol(
    db: &D1Database,
    new_id: &str,
    program_id: &str,
    email: &str,
    name: &str,
    now: i64,
) -> StoreResult<(Partner, bool)> {
    let mut stmts = vec![
        query!(
            db,
            "INSERT INTO partners (id, program_id, email, name, status, payouts_enabled, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, 'active', 0, ?5, ?5) ON CONFLICT (program_id, email) DO NOTHING",
            new_id,
            program_id,
            email,
            name,
            now
        )?,
        super::outbox::partner(db, "partner.enrolled", new_id, now)?,
    ];
    stmts.extend(super::outbox::fan_out(db, now)?);
    stmts.push(query!(
        db,
        &format!("SELECT {COLS} FROM partners WHERE program_id = ?1 AND email = ?2"),
        program_id,
        email
    )?);
    let r = super::batch_results(db, stmts).await?;
    let row: Option<Row> = super::first_row(r.last())?;
    let p = row.map(Partner::try_from).transpose()?.ok_or(StoreError::NotFound("partner after enrol"))?;
    let new = p.id == new_id;
    Ok((p, new))
}

/// Sets the partner's Stripe account (and the country it was created in) unless it has one
/// already (the first writer wins).
pub async fn set_stripe_account_once(
    db: &D1Database,
    id: &str,
    account_id: &str,
    country: &str,
    now: i64,
) -> StoreResult<()> {
    super::changes(query!(
        db,
        "UPDATE partners SET stripe_account_id = ?2, updated_at = ?3, country = ?4 WHERE id = ?1 AND stripe_account_id IS NULL",
        id,
        account_id,
        now,
        country
    )?)
    .await?;
    Ok(())
}
