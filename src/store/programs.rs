use super::D1Result;
use super::{all, batch_or_constraint, first, ConstraintKind, InUse, StoreError, StoreResult, Taken};
use refport_core::program::ProgramSettings;
use refport_core::time::rfc3339;
use serde::Serialize;
use worker::d1::D1PreparedStatement;
use worker::D1Database;

struct Row {
    id: String,
    settings: String,
    created_at: i64,
    updated_at: i64,
}
from_row!(Row { id, settings, created_at, updated_at });

/// A stored program: its id, validated settings and timestamps. Serializes as the wire shape.
#[derive(Clone, Debug, Serialize)]
pub struct Program {
    pub id: String,
    #[serde(flatten)]
    pub settings: ProgramSettings,
    #[serde(serialize_with = "crate::store::programs::ser_time")]
    pub created_at: i64,
    #[serde(serialize_with = "crate::store::programs::ser_time")]
    pub updated_at: i64,
}

pub fn ser_time<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*ms))
}

pub fn ser_opt_time<S: serde::Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => s.serialize_str(&rfc3339(*ms)),
        None => s.serialize_none(),
    }
}

impl TryFrom<Row> for Program {
    type Error = StoreError;
    fn try_from(r: Row) -> StoreResult<Program> {
        Ok(Program {
            id: r.id,
            settings: refport_core::wire::from_text(r.settings.as_bytes())?,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const COLS: &str = "id, settings, created_at, updated_at";

pub async fn get(db: &D1Database, id: &str) -> StoreResult<Option<Program>> {
    let row: Option<Row> = first(get_stmt(db, id)?).await?;
    row.map(Program::try_from).transpose()
}

pub(super) fn get_stmt(db: &D1Database, id: &str) -> StoreResult<D1PreparedStatement> {
    Ok(query!(db, &format!("SELECT {COLS} FROM programs WHERE id = ?1"), id)?)
}

/// The program a `get_stmt` found, from its result in a batch.
pub(super) fn read(r: Option<&D1Result>) -> StoreResult<Option<Program>> {
    super::first_row::<Row>(r)?.map(Program::try_from).transpose()
}

pub async fn list(db: &D1Database, only: Option<&str>, before: &str, limit: u32) -> StoreResult<Vec<Program>> {
    let rows: Vec<Row> = all(query!(
        db,
        &format!("SELECT {COLS} FROM programs WHERE id < ?1 AND (?2 IS NULL OR id = ?2) ORDER BY id DESC LIMIT ?3"),
        before,
        only,
        limit + 1
    )?)
    .await?;
    rows.into_iter().map(Program::try_from).collect()
}

/// Writes the program's statements; a taken domain or a removed domain with links writes nothing.
async fn write_domains(db: &D1Database, stmts: Vec<worker::d1::D1PreparedStatement>) -> StoreResult<()> {
    match batch_or_constraint(db, stmts).await? {
        Ok(_) => Ok(()),
        Err(c) if c.is_unique_on("program_domains") => Err(StoreError::Taken(Taken::Domain)),
        Err(c) if c.kind == ConstraintKind::ForeignKey => Err(StoreError::InUse(InUse::Domain)),
        Err(c) => Err(StoreError::Database(format!("constraint {c:?}"))),
    }
}

/// Creates the program and claims its domains, atomically: a taken domain writes nothing.
pub async fn insert(db: &D1Database, p: &Program) -> StoreResult<()> {
    let json = serde_json::to_string(&p.settings)?;
    let mut stmts = vec![query!(
        db,
        "INSERT INTO programs (id, settings, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)",
        &p.id,
        json,
        p.created_at
    )?];
    for d in &p.settings.domains {
        stmts.push(query!(db, "INSERT INTO program_domains (domain, program_id) VALUES (?1, ?2)", d, &p.id)?);
    }
    write_domains(db, stmts).await
}

/// Saves new settings and moves the domain claims, atomically.
pub async fn update(db: &D1Database, old: &Program, new: &Program) -> StoreResult<()> {
    let json = serde_json::to_string(&new.settings)?;
    let mut stmts = vec![query!(
        db,
        "UPDATE programs SET settings = ?2, updated_at = ?3 WHERE id = ?1",
        &new.id,
        json,
        new.updated_at
    )?];
    for d in old.settings.domains.iter().filter(|d| !new.settings.domains.contains(d)) {
        stmts.push(query!(db, "DELETE FROM program_domains WHERE domain = ?1 AND program_id = ?2", d, &new.id)?);
    }
    for d in new.settings.domains.iter().filter(|d| !old.settings.domains.contains(d)) {
        stmts.push(query!(db, "INSERT INTO program_domains (domain, program_id) VALUES (?1, ?2)", d, &new.id)?);
    }
    write_domains(db, stmts).await
}

struct Longest {
    days: Option<u32>,
}
from_row!(Longest { days });

/// The longest attribution window (days) of any program; 0 when there is none.
pub async fn longest_attribution_window(db: &D1Database) -> StoreResult<u32> {
    let r: Option<Longest> =
        first(query!(db, "SELECT MAX(json_extract(settings, '$.attribution_window_days')) AS days FROM programs"))
            .await?;
    Ok(r.and_then(|r| r.days).unwrap_or(0))
}
