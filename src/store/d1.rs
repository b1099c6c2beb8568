//! D1's answers read straight from the runtime's objects. `worker`'s `D1Result` reads `meta`
//! and each row through `serde_wasm_bindgen` (a second serde reader in the wasm, for JS
//! objects); here a statement's answer stays the `{results, meta}` object D1 gave, and the store
//! reads the rows (`Row`, column by column) and the two counters it needs.

use js_sys::futures::JsFuture;
use js_sys::{Array, Function, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use worker::d1::D1PreparedStatement;
use worker::D1Database;

/// One statement's answer: D1's `{results, meta}` object.
pub struct D1Result(JsValue);

fn field(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

impl D1Result {
    fn results(&self) -> Option<Array> {
        field(&self.0, "results").dyn_into::<Array>().ok()
    }

    /// The rows, as the runtime's objects keyed by column name (none for a write).
    pub fn rows(&self) -> Vec<JsValue> {
        self.results().map(|a| a.iter().collect()).unwrap_or_default()
    }

    /// How many rows it answered.
    pub fn row_count(&self) -> usize {
        self.results().map_or(0, |a| a.length() as usize)
    }

    fn meta(&self, key: &str) -> usize {
        field(&field(&self.0, "meta"), key).as_f64().filter(|n| *n >= 0.0).map(|n| n as usize).unwrap_or(0)
    }

    /// Rows the statement changed (`meta.changes`): the basis of every conditional write.
    pub fn changes(&self) -> usize {
        self.meta("changes")
    }

    /// Rows it wrote, indexes included (`meta.rows_written`, what D1 bills).
    pub fn rows_written(&self) -> usize {
        self.meta("rows_written")
    }
}

/// D1's failure as text: the SQLite message D1 puts in the error's `cause` (`UNIQUE constraint
/// failed: ..`, what `Constraint::of` reads), else the error's own message.
fn error(e: JsValue) -> worker::Error {
    let text = match e.dyn_ref::<js_sys::Error>() {
        Some(err) => match err.cause().dyn_ref::<js_sys::Error>() {
            Some(cause) => String::from(cause.message()),
            None => String::from(err.message()),
        },
        None => e.as_string().unwrap_or_else(|| "D1 failed without a message".into()),
    };
    worker::Error::RustError(text)
}

async fn settle(p: Result<Promise, JsValue>) -> worker::Result<JsValue> {
    JsFuture::from(p.map_err(error)?).await.map_err(error)
}

/// Runs a write.
pub async fn run(stmt: &D1PreparedStatement) -> worker::Result<D1Result> {
    settle(stmt.inner().run()).await.map(D1Result)
}

/// Runs a read.
pub async fn all(stmt: &D1PreparedStatement) -> worker::Result<D1Result> {
    settle(stmt.inner().all()).await.map(D1Result)
}

/// Runs statements in one atomic batch; one answer per statement, in order.
pub async fn batch(db: &D1Database, stmts: &[D1PreparedStatement]) -> worker::Result<Vec<D1Result>> {
    let list: Array = stmts.iter().map(|s| JsValue::from(s.inner())).collect();
    let db: &JsValue = db.as_ref();
    let call = field(db, "batch").dyn_into::<Function>().map_err(error)?.call1(db, &list);
    let answers = settle(call.and_then(|p| p.dyn_into::<Promise>())).await?;
    Ok(answers.dyn_into::<Array>().map_err(error)?.iter().map(D1Result).collect())
}
