//! Partner groups (`partner_groups`).

use super::{all, first, run_or_constraint, StoreError, StoreResult, Taken};
use refport_core::group::GroupFields;
use refport_core::rules::Rewards;
use serde::Serialize;
use worker::D1Database;

struct Row {
    id: String,
    program_id: String,
    name: String,
    rewards: Option<String>,
    min_payout: Option<i64>,
    hold_days: Option<u32>,
    partners: i64,
    created_at: i64,
    updated_at: i64,
}
from_row!(Row { id, program_id, name, rewards, min_payout, hold_days, partners, created_at, updated_at });

#[derive(Clone, Debug, Serialize)]
pub struct Group {
    pub id: String,
    pub program_id: String,
    pub name: String,
    /// The group's rewards per event kind; a kind absent here: the program's applies.
    pub rewards: Option<Rewards>,
    /// `null`: the program's minimum payout applies.
    pub min_payout: Option<i64>,
    /// `null`: the program's hold period applies.
    pub hold_days: Option<u32>,
    /// Partners in the group.
    pub partners: i64,
    #[serde(serialize_with = "super::programs::ser_time")]
    pub created_at: i64,
    #[serde(serialize_with = "super::programs::ser_time")]
    pub updated_at: i64,
}

impl Group {
    pub fn fields(&self) -> GroupFields {
        GroupFields {
            name: self.name.clone(),
            rewards: self.rewards.clone(),
            min_payout: self.min_payout,
            hold_days: self.hold_days,
        }
    }
}

impl TryFrom<Row> for Group {
    type Error = StoreError;
    fn try_from(r: Row) -> StoreResult<Group> {
        Ok(Group {
            rewards: r.rewards.as_deref().map(|j| refport_core::wire::from_text(j.as_bytes())).transpose()?,
            id: r.id,
            program_id: r.program_id,
            name: r.name,
            min_payout: r.min_payout,
            hold_days: r.hold_days,
            partners: r.partners,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const COLS: &str = "id, program_id, name, rewards, min_payout, hold_days, created_at, updated_at, \
     (SELECT COUNT(*) FROM partners p WHERE p.group_id = partner_groups.id) AS partners";

pub async fn get(db: &D1Database, id: &str) -> StoreResult<Option<Group>> {
    let row: Option<Row> = first(query!(db, &format!("SELECT {COLS} FROM partner_groups WHERE id = ?1"), id)?).await?;
    row.map(Group::try_from).transpose()
}

/// A program's groups, by name (a program has few).
pub async fn list(db: &D1Database, program_id: &str) -> StoreResult<Vec<Group>> {
    let rows: Vec<Row> = all(query!(
        db,
        &format!("SELECT {COLS} FROM partner_groups WHERE program_id = ?1 ORDER BY lower(name), id LIMIT 500"),
        program_id
    )?)
    .await?;
    rows.into_iter().map(Group::try_from).collect()
}

fn rewards_json(r: &Option<Rewards>) -> StoreResult<Option<String>> {
    Ok(r.as_ref().map(serde_json::to_string).transpose()?)
}

async fn write(stmt: worker::d1::D1PreparedStatement) -> StoreResult<()> {
    match run_or_constraint(stmt).await? {
        Ok(_) => Ok(()),
        Err(c) if c.is_unique_index("partner_groups_name") => Err(StoreError::Taken(Taken::GroupName)),
        Err(c) => Err(StoreError::Database(format!("constraint {c:?}"))),
    }
}

pub async fn insert(db: &D1Database, id: &str, program_id: &str, f: &GroupFields, now: i64) -> StoreResult<()> {
    let rewards = rewards_json(&f.rewards)?;
    write(query!(
        db,
        "INSERT INTO partner_groups (id, program_id, name, rewards, min_payout, hold_days, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        id,
        program_id,
        &f.name,
        rewards,
        f.min_payout,
        f.hold_days,
        now
    )?)
    .await
}

pub async fn update(db: &D1Database, id: &str, f: &GroupFields, now: i64) -> StoreResult<()> {
    let rewards = rewards_json(&f.rewards)?;
    write(query!(
        db,
        "UPDATE partner_groups SET name = ?2, rewards = ?3, min_payout = ?4, hold_days = ?5, updated_at = ?6 WHERE id = ?1",
        id,
        &f.name,
        rewards,
        f.min_payout,
        f.hold_days,
        now
    )?)
    .await
}

/// Deletes the group unless a partner is in it (then `InUse`): one conditional statement, so a
/// partner joining meanwhile either lands first (the delete is refused) or fails on its foreign
/// key.
pub async fn delete(db: &D1Database, id: &str) -> StoreResult<()> {
    let deleted = super::changes(query!(
        db,
        "DELETE FROM partner_groups WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM partners WHERE group_id = ?1)",
        id
    )?)
    .await?;
    match deleted {
        0 => Err(StoreError::InUse(super::InUse::Group)),
        _ => Ok(()),
    }
}
