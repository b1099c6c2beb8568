//! D1 and KV repositories: SQL lives here and nowhere else. The store answers in storage terms
//! (`StoreError`: taken / in use / raced / not found / corrupt / database); the HTTP layer maps
//! them to API errors in one place.

/// `FromRow` for a struct whose fields are columns of the same names: `from_row!(T { a, b })`;
/// `default { c }` names columns some queries leave out (absent -> `Default`), `skip { d }`
/// fields no query selects.
macro_rules! from_row {
    ($t:ty { $($f:ident),* $(,)? } $(default { $($d:ident),* $(,)? })? $(skip { $($s:ident),* $(,)? })?) => {
        impl $crate::store::FromRow for $t {
            fn from_row(r: &$crate::store::Row) -> $crate::store::StoreResult<Self> {
                let v = Self {
                    $($f: r.get(stringify!($f)),)*
                    $($($d: r.get_or_default(stringify!($d)),)*)?
                    $($($s: ::core::default::Default::default(),)*)?
                };
                r.check()?;
                Ok(v)
            }
        }
    };
}

/// A prepared statement with its parameters: `query!(db, SQL)` or `query!(db, SQL, a, b, ..)`,
/// the shape of `worker::query!`. Each parameter is passed as a `&dyn Param` to one shared
/// [`bind`], so a call site is a list of pointers: `worker::query!` serialized each argument
/// in place through `serde_wasm_bindgen`, with an early return after each one that dropped the
/// values made before it (172 call sites; hundreds of inlined cleanups in the wasm).
macro_rules! query {
    ($db:expr, $sql:expr $(,)?) => {
        ::worker::D1Database::prepare($db, $sql)
    };
    ($db:expr, $sql:expr, $($arg:expr),+ $(,)?) => {
        $crate::store::bind($db, $sql, &[$(&$arg as &dyn $crate::store::Param),+])
    };
}

pub mod api_keys;
pub mod bulk;
pub mod clicks;
pub mod commissions;
pub mod conversions;
pub mod coupons;
pub mod d1;
pub mod error;
pub mod groups;
pub mod invites;
pub mod link_cache;
pub mod links;
pub mod outbox;
pub mod partners;
pub mod payouts;
pub mod programs;
pub mod refunds;
pub mod stats;
pub mod stripe_webhooks;
pub mod webhook_deliveries;
pub mod webhook_endpoints;

pub use d1::D1Result;
pub use error::{Constraint, ConstraintKind, InUse, StoreError, StoreResult, Taken};
use wasm_bindgen::JsValue;
use worker::d1::D1PreparedStatement;
use worker::D1Database;

type Result<T> = StoreResult<T>;

/// A statement parameter as D1 binds it (what `worker::query!`'s `serde_wasm_bindgen` serializer
/// made of it: texts, numbers, booleans, `NULL` for `None`); `None` when it cannot be one.
pub trait Param {
    fn to_js(&self) -> Option<JsValue>;
}

/// JavaScript numbers hold integers exactly up to 2^53 - 1.
const MAX_SAFE_INTEGER: i64 = 9_007_199_254_740_991;

impl Param for str {
    fn to_js(&self) -> Option<JsValue> {
        Some(JsValue::from_str(self))
    }
}

impl Param for String {
    fn to_js(&self) -> Option<JsValue> {
        self.as_str().to_js()
    }
}

impl Param for i64 {
    /// Out of the exact range, refused (as `serde_wasm_bindgen` refused it), never rounded.
    fn to_js(&self) -> Option<JsValue> {
        (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(self).then(|| JsValue::from_f64(*self as f64))
    }
}

macro_rules! small_int_param {
    ($($t:ty),*) => {$(
        impl Param for $t {
            fn to_js(&self) -> Option<JsValue> {
                i64::try_from(*self).ok()?.to_js()
            }
        }
    )*};
}
small_int_param!(i32, u16, u32, u64, usize);

impl Param for bool {
    fn to_js(&self) -> Option<JsValue> {
        Some(JsValue::from_bool(*self))
    }
}

impl<T: Param> Param for Option<T> {
    fn to_js(&self) -> Option<JsValue> {
        match self {
            Some(v) => v.to_js(),
            None => Some(JsValue::NULL),
        }
    }
}

impl<T: Param + ?Sized> Param for &T {
    fn to_js(&self) -> Option<JsValue> {
        (**self).to_js()
    }
}

/// `sql` prepared with `args` bound as `?1`, `?2`, ... (see [`query!`]).
pub fn bind(db: &D1Database, sql: &str, args: &[&dyn Param]) -> worker::Result<D1PreparedStatement> {
    let mut values = Vec::with_capacity(args.len());
    for a in args {
        match a.to_js() {
            Some(v) => values.push(v),
            None => return Err(worker::Error::RustError("a query parameter has no D1 value".into())),
        }
    }
    db.prepare(sql).bind(&values)
}

/// One D1 row as the runtime answers it: a JS object keyed by column name. Rows are read column
/// by column (`FromRow`, usually through `from_row!`) rather than through serde: serde's
/// generated code per row type cost ~100 KB of the wasm (one `serde_wasm_bindgen` struct
/// deserializer and one visitor for each of ~40 row types), where a column read is a call.
/// A read never fails on its own: the first bad column is remembered and `check` answers it,
/// so building a struct has no early exit (each `?` between fields would cost a cleanup of the
/// fields read so far).
pub struct Row {
    obj: JsValue,
    bad: std::cell::Cell<Option<&'static str>>,
}

/// A D1 row type: built from one row by reading its columns.
pub trait FromRow: Sized {
    fn from_row(r: &Row) -> Result<Self>;
}

/// A column value: SQLite's integers (JS numbers within 2^53), texts and NULLs.
pub trait Column: Sized {
    /// `None` when the value has another type (a corrupt row, never coerced).
    fn from_js(v: JsValue) -> Option<Self>;
    /// A placeholder for a bad column (the row is refused by `Row::check`).
    fn fallback() -> Self;
}

impl Column for String {
    fn from_js(v: JsValue) -> Option<Self> {
        v.as_string()
    }
    fn fallback() -> Self {
        String::new()
    }
}

impl Column for i64 {
    fn from_js(v: JsValue) -> Option<Self> {
        // A JS number holding an integer D1 can answer exactly (|n| <= 2^53).
        v.as_f64().filter(|f| f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0).map(|f| f as i64)
    }
    fn fallback() -> Self {
        0
    }
}

impl Column for u32 {
    fn from_js(v: JsValue) -> Option<Self> {
        i64::from_js(v).and_then(|n| u32::try_from(n).ok())
    }
    fn fallback() -> Self {
        0
    }
}

impl Column for f64 {
    fn from_js(v: JsValue) -> Option<Self> {
        v.as_f64()
    }
    fn fallback() -> Self {
        0.0
    }
}

/// A column of either type (a group key: a day number or an id).
impl Column for serde_json::Value {
    fn from_js(v: JsValue) -> Option<Self> {
        match v.as_string() {
            Some(s) => Some(s.into()),
            None => i64::from_js(v).map(Into::into),
        }
    }
    fn fallback() -> Self {
        serde_json::Value::Null
    }
}

/// The stored enums: their text, parsed by the core (an unknown one is a corrupt row).
macro_rules! text_column {
    ($($t:ty = $fallback:expr),*) => {$(
        impl Column for $t {
            fn from_js(v: JsValue) -> Option<Self> {
                <$t>::parse(&v.as_string()?)
            }
            fn fallback() -> Self {
                $fallback
            }
        }
    )*};
}
text_column!(
    refport_core::commission::Status = refport_core::commission::Status::Pending,
    refport_core::commission::Kind = refport_core::commission::Kind::Lead,
    refport_core::payout::PayoutStatus = refport_core::payout::PayoutStatus::Processing,
    refport_core::partner::PartnerStatus = refport_core::partner::PartnerStatus::Invited
);

impl<T: Column> Column for Option<T> {
    fn from_js(v: JsValue) -> Option<Self> {
        if v.is_null() || v.is_undefined() {
            Some(None)
        } else {
            T::from_js(v).map(Some)
        }
    }
    fn fallback() -> Self {
        None
    }
}

impl Row {
    fn value(&self, name: &str) -> JsValue {
        js_sys::Reflect::get(&self.obj, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
    }

    fn bad<T: Column>(&self, name: &'static str) -> T {
        self.refuse(name);
        T::fallback()
    }

    /// Marks column `name` as holding a value its type refuses (read by hand: JSON in a column).
    pub fn refuse(&self, name: &'static str) {
        if self.bad.get().is_none() {
            self.bad.set(Some(name));
        }
    }

    /// Column `name`; a missing column or a value of another type makes the row corrupt.
    pub fn get<T: Column>(&self, name: &'static str) -> T {
        T::from_js(self.value(name)).unwrap_or_else(|| self.bad(name))
    }

    /// Column `name`, or `T::default()` when the query did not select it (or it is NULL).
    pub fn get_or_default<T: Column + Default>(&self, name: &'static str) -> T {
        let v = self.value(name);
        if v.is_null() || v.is_undefined() {
            return T::default();
        }
        T::from_js(v).unwrap_or_else(|| self.bad(name))
    }

    /// Refuses the row when a column was missing or of another type.
    pub fn check(&self) -> Result<()> {
        match self.bad.get() {
            None => Ok(()),
            Some(name) => Err(StoreError::Corrupt(format!("column `{name}`"))),
        }
    }
}

/// A row as a JSON object, column name to value (a generic read: the CSV export's pages).
impl FromRow for serde_json::Value {
    fn from_row(r: &Row) -> Result<Self> {
        use wasm_bindgen::JsCast;
        let mut m = serde_json::Map::new();
        for entry in js_sys::Object::entries(r.obj.unchecked_ref()).iter() {
            let entry: js_sys::Array = entry.unchecked_into();
            let v = entry.get(1);
            let value = match v.as_string() {
                Some(s) => serde_json::Value::String(s),
                None => match i64::from_js(v.clone()) {
                    Some(n) => n.into(),
                    None => {
                        v.as_f64().and_then(serde_json::Number::from_f64).map_or(serde_json::Value::Null, Into::into)
                    }
                },
            };
            m.insert(entry.get(0).as_string().unwrap_or_default(), value);
        }
        Ok(serde_json::Value::Object(m))
    }
}

/// Every row of one statement's result.
pub fn rows<T: FromRow>(r: &D1Result) -> Result<Vec<T>> {
    r.rows().into_iter().map(|obj| T::from_row(&Row { obj, bad: Default::default() })).collect()
}

/// Every D1 round trip goes through these helpers, which count it (`metrics::d1_calls`).
fn counted() {
    crate::metrics::add(crate::metrics::Counter::d1_calls, 1);
}

pub async fn first<T: FromRow>(stmt: D1PreparedStatement) -> Result<Option<T>> {
    Ok(all::<T>(stmt).await?.into_iter().next())
}

pub async fn all<T: FromRow>(stmt: D1PreparedStatement) -> Result<Vec<T>> {
    counted();
    rows(&d1::all(&stmt).await?)
}

/// Runs one statement and answers D1's result.
pub async fn run(stmt: D1PreparedStatement) -> Result<D1Result> {
    counted();
    Ok(d1::run(&stmt).await?)
}

/// Runs a write and answers how many rows it changed (the basis of every conditional update).
pub async fn changes(stmt: D1PreparedStatement) -> Result<usize> {
    Ok(run(stmt).await?.changes())
}

/// Runs statements atomically (one round trip); answers each statement's result.
pub async fn batch_results(db: &D1Database, stmts: Vec<D1PreparedStatement>) -> Result<Vec<D1Result>> {
    counted();
    Ok(d1::batch(db, &stmts).await?)
}

/// The first row of one statement's result in a batch (reads batched with others or appended
/// to a write batch, so that they cost no round trip of their own).
pub fn first_row<T: FromRow>(r: Option<&D1Result>) -> Result<Option<T>> {
    match r {
        Some(r) => Ok(rows::<T>(r)?.into_iter().next()),
        None => Err(StoreError::Database("a batch answered fewer results than statements".into())),
    }
}

/// Runs statements atomically; answers each statement's changed-row count.
pub async fn batch(db: &D1Database, stmts: Vec<D1PreparedStatement>) -> Result<Vec<usize>> {
    let results = batch_results(db, stmts).await?;
    Ok(results.iter().map(D1Result::changes).collect())
}

/// Like `batch`, but a constraint violation comes back as the `Constraint` D1 reported, for
/// the caller to name (which index it was is the caller's knowledge, not D1's).
pub async fn batch_or_constraint(
    db: &D1Database,
    stmts: Vec<D1PreparedStatement>,
) -> Result<std::result::Result<Vec<usize>, Constraint>> {
    counted();
    match d1::batch(db, &stmts).await {
        Ok(results) => Ok(Ok(results.iter().map(D1Result::changes).collect())),
        Err(e) => match Constraint::of(&e) {
            Some(c) => Ok(Err(c)),
            None => Err(e.into()),
        },
    }
}

/// Runs one write; a constraint violation comes back as the `Constraint` D1 reported.
pub async fn run_or_constraint(stmt: D1PreparedStatement) -> Result<std::result::Result<usize, Constraint>> {
    counted();
    match d1::run(&stmt).await {
        Ok(r) => Ok(Ok(r.changes())),
        Err(e) => match Constraint::of(&e) {
            Some(c) => Ok(Err(c)),
            None => Err(e.into()),
        },
    }
}

/// The list filter of commissions and payouts: by program, partner and status.
pub struct Filter<'a> {
    pub program_id: Option<&'a str>,
    pub partner_id: Option<&'a str>,
    pub status: Option<&'a str>,
}

/// One page of `table` rows (`cols`) matching `f`, newest first, `limit + 1` rows (see `Page`).
pub async fn list_filtered<T: FromRow>(
    db: &D1Database,
    table: &str,
    cols: &str,
    f: &Filter<'_>,
    before: &str,
    limit: u32,
) -> Result<Vec<T>> {
    list_filtered_where(db, table, cols, "1", f, before, limit).await
}

/// [`list_filtered`] with a fixed SQL condition `cond` on top of `f` (a constant of the caller,
/// never input).
pub async fn list_filtered_where<T: FromRow>(
    db: &D1Database,
    table: &str,
    cols: &str,
    cond: &str,
    f: &Filter<'_>,
    before: &str,
    limit: u32,
) -> Result<Vec<T>> {
    all(query!(
        db,
        &format!(
            "SELECT {cols} FROM {table} WHERE ({cond}) AND id < ?1 AND (?2 IS NULL OR program_id = ?2)
             AND (?3 IS NULL OR partner_id = ?3) AND (?4 IS NULL OR status = ?4) ORDER BY id DESC LIMIT ?5"
        ),
        before,
        f.program_id,
        f.partner_id,
        f.status,
        limit + 1
    )?)
    .await
}

pub struct Count {
    pub n: i64,
}
from_row!(Count { n });
