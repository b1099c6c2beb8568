//! What the store answers when a write or read cannot be done: storage terms, not HTTP. The one
//! mapping to API errors is `From<StoreError> for ApiError` in `src/http/error.rs`.

use std::fmt;

/// A unique index that refused a write, named by what it protects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Taken {
    /// `program_domains.domain`: a branded domain belongs to one program.
    Domain,
    /// `partners (program_id, email)`: one enrolment per email and program.
    PartnerEmail,
    /// `links (domain, key)`: one link per key on a domain.
    LinkKey,
    /// `partner_groups (program_id, lower(name))`: one group per name in a program.
    GroupName,
}

/// A row that other rows still reference (a foreign key refused the write).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InUse {
    /// A domain removed from a program still has links.
    Domain,
    /// A group still has partners.
    Group,
}

#[derive(Debug)]
pub enum StoreError {
    /// A unique index refused the write.
    Taken(Taken),
    /// A foreign key refused the write.
    InUse(InUse),
    /// A conditional write found the state it was planned against already changed.
    Raced,
    /// A row that must exist (it was just written, or is referenced) is missing.
    NotFound(&'static str),
    /// A stored value the code does not know (an unknown status, bad JSON): never guessed.
    Corrupt(String),
    /// D1 itself failed (unavailable, timeout, SQL error).
    Database(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Taken(t) => write!(f, "unique constraint: {t:?}"),
            StoreError::InUse(u) => write!(f, "still referenced: {u:?}"),
            StoreError::Raced => f.write_str("conditional write lost a race"),
            StoreError::NotFound(what) => write!(f, "{what} missing"),
            StoreError::Corrupt(m) => write!(f, "corrupt row: {m}"),
            StoreError::Database(m) => write!(f, "database: {m}"),
        }
    }
}

impl From<worker::Error> for StoreError {
    fn from(e: worker::Error) -> Self {
        StoreError::Database(e.to_string())
    }
}

impl From<worker::kv::KvError> for StoreError {
    fn from(e: worker::kv::KvError) -> Self {
        StoreError::Database(format!("kv: {e}"))
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(format!("json: {e}"))
    }
}

/// The kind of SQLite constraint a D1 error reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConstraintKind {
    Unique,
    ForeignKey,
    Check,
    NotNull,
}

/// A constraint violation read from D1's error: D1 forwards SQLite's result (`UNIQUE constraint
/// failed: partners.program_id, partners.email: SQLITE_CONSTRAINT`) as the cause of a `D1_ERROR`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Constraint {
    pub kind: ConstraintKind,
    /// `table.column` list for unique and not-null violations; empty for foreign keys.
    pub columns: Vec<String>,
}

impl Constraint {
    pub fn of(e: &worker::Error) -> Option<Constraint> {
        let cause = match e {
            worker::Error::D1(d) => d.cause(),
            other => other.to_string(),
        };
        parse_constraint(&cause)
    }

    pub fn is_unique_on(&self, table: &str) -> bool {
        self.kind == ConstraintKind::Unique && self.columns.iter().any(|c| c.split('.').next() == Some(table))
    }

    /// A unique index on an expression is named, not its columns: `index 'name'`.
    pub fn is_unique_index(&self, index: &str) -> bool {
        self.kind == ConstraintKind::Unique
            && self.columns.iter().any(|c| c.trim_matches(|x| x == '\'' || x == ' ').ends_with(index))
    }
}

/// Parses SQLite's constraint message (the format of `sqlite3_errmsg` for SQLITE_CONSTRAINT_*).
pub fn parse_constraint(cause: &str) -> Option<Constraint> {
    const KINDS: [(&str, ConstraintKind); 4] = [
        ("UNIQUE constraint failed: ", ConstraintKind::Unique),
        ("FOREIGN KEY constraint failed", ConstraintKind::ForeignKey),
        ("CHECK constraint failed", ConstraintKind::Check),
        ("NOT NULL constraint failed: ", ConstraintKind::NotNull),
    ];
    KINDS.iter().find_map(|(marker, kind)| {
        let at = cause.find(marker)?;
        let rest = &cause[at + marker.len()..];
        let list = rest.split(": SQLITE").next().unwrap_or(rest);
        let columns = match kind {
            ConstraintKind::Unique | ConstraintKind::NotNull => {
                list.split(',').map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).collect()
            }
            _ => Vec::new(),
        };
        Some(Constraint { kind: *kind, columns })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sqlite_messages() {
        let u = parse_constraint(
            "D1_ERROR: UNIQUE constraint failed: partners.program_id, partners.email: SQLITE_CONSTRAINT",
        )
        .unwrap();
        assert_eq!(u.kind, ConstraintKind::Unique);
        assert_eq!(u.columns, vec!["partners.program_id", "partners.email"]);
        assert!(u.is_unique_on("partners"));
        assert!(!u.is_unique_on("links"));
        let fk = parse_constraint("FOREIGN KEY constraint failed: SQLITE_CONSTRAINT").unwrap();
        assert_eq!(fk.kind, ConstraintKind::ForeignKey);
        let ck = parse_constraint("D1_ERROR: CHECK constraint failed: amount >= 0: SQLITE_CONSTRAINT").unwrap();
        assert_eq!(ck.kind, ConstraintKind::Check);
        assert_eq!(parse_constraint("D1_ERROR: no such table: x"), None);
    }
}
