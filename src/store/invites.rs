//! Partner invitations (`invitations`): single-use and expiring; only the SHA-256 of the token
//! is stored.

use super::{batch, first, StoreResult};
use worker::D1Database;

/// An open invitation: what accepting it needs.
#[derive(Clone, Debug)]
pub struct Invite {
    pub id: String,
    pub program_id: String,
    pub partner_id: String,
}
from_row!(Invite { id, program_id, partner_id });

/// A new invitation for `partner_id`, valid until `expires_at`.
pub async fn insert(db: &D1Database, invite: &Invite, token_hash: &str, expires_at: i64, now: i64) -> StoreResult<()> {
    super::run(query!(
        db,
        "INSERT INTO invitations (id, program_id, partner_id, token_hash, expires_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        &invite.id,
        &invite.program_id,
        &invite.partner_id,
        token_hash,
        expires_at,
        now
    )?).await?;
    Ok(())
}

/// The invitation with this token hash, unless it has expired (used ones are still found:
/// accepting tells them apart).
pub async fn find_unexpired(db: &D1Database, token_hash: &str, now: i64) -> StoreResult<Option<Invite>> {
    first(query!(
        db,
        "SELECT id, program_id, partner_id FROM invitations WHERE token_hash = ?1 AND expires_at > ?2",
        token_hash,
        now
    )?)
    .await
}

/// Uses the invitation and activates its (still invited) partner, in one atomic batch; answers
/// whether this call used it (a second accept changes nothing and answers false).
pub async fn accept(db: &D1Database, invite: &Invite, now: i64) -> StoreResult<bool> {
    let changes = batch(
        db,
        vec![
            query!(db, "UPDATE invitations SET used_at = ?2 WHERE id = ?1 AND used_at IS NULL", &invite.id, now)?,
            query!(
                db,
                "UPDATE partners SET status = 'active', updated_at = ?2 WHERE id = ?1 AND status = 'invited'
                   AND EXISTS (SELECT 1 FROM invitations WHERE id = ?3 AND used_at = ?2)",
                &invite.partner_id,
                now,
                &invite.id
            )?,
            // `partner.enrolled` only if this batch activated it (its updated_at is now, active).
            super::outbox::partner(db, "partner.enrolled", &invite.partner_id, now)?,
        ]
        .into_iter()
        .chain(super::outbox::fan_out(db, now)?)
        .collect(),
    )
    .await?;
    Ok(changes.first().copied().unwrap_or(0) == 1)
}
