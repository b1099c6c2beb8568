//! The clicks queue's consumer: each batch (up to 40 messages, `max_batch_size` in wrangler.toml,
//! each message one flush's clicks, at most 100: `refport_core::click_message`) is written to D1
//! in atomic `db.batch()`es of up to 100 clicks (`store::clicks::insert_batch`), at most 40 per
//! invocation.
//! One click per visitor: the visits of the same visitor to the same link within an hour (the
//! same v2 click id, or its previous hour's sibling, which the consumer computes with the click
//! key) are one click, whose row's `hits` counts them. Delivery is at least once: a click
//! delivered again is not inserted again (the id is the key) and the rollups count only rows
//! actually inserted, so a retried batch neither loses nor doubles a click. A batch whose write
//! fails is retried whole, after a delay, up to `max_retries`.

use crate::http::error::ApiResult;
use crate::metrics::{self, Counter};
use crate::state::AppState;
use crate::store::clicks::{self, NewClick};
use refport_core::click_message;
use worker::{MessageBatch, QueueRetryOptionsBuilder};

/// Seconds before a batch whose write failed is delivered again (D1 overloaded or restarting).
const RETRY_DELAY_SECONDS: u32 = 10;

/// A message that is not a click (a bug, or a message from another version) can never be
/// written: it is acknowledged and dropped rather than retried forever, and never blocks the
/// valid clicks of its batch.
fn parse(body: serde_json::Value) -> Option<NewClick> {
    let c: NewClick = refport_core::wire::from_value(body).ok()?;
    let id_ok = |s: &str| !s.is_empty() && s.len() <= 200;
    if !(id_ok(&c.id) && id_ok(&c.program_id) && id_ok(&c.partner_id) && id_ok(&c.link_id)) || c.at <= 0 {
        return None;
    }
    // The table's CHECK must never fail a whole batch: an odd country is dropped, not the click.
    let country = c.country.filter(|x| x.len() == 2 && x.bytes().all(|b| b.is_ascii_uppercase()));
    // Likewise a sub-ID the redirect would not have accepted.
    let sub = |v: Option<String>| v.filter(|v| refport_core::click::is_sub_id(v));
    let (sub1, sub2, sub3) = (sub(c.sub1), sub(c.sub2), sub(c.sub3));
    Some(NewClick { country, sub1, sub2, sub3, ..c })
}

pub async fn consume(state: &AppState, batch: &MessageBatch<serde_json::Value>, _now: i64) -> ApiResult<()> {
    metrics::add(Counter::click_batches, 1);
    let key = state.secrets.click_key();
    let mut pending: Vec<NewClick> = Vec::new();
    let mut dropped = 0usize;
    let mut messages = batch.raw_iter();
    loop {
        let next = messages.next();
        let done = next.is_none();
        if let Some(m) = next {
            metrics::add(Counter::click_messages, 1);
            let body = m.body();
            // Packed clicks arrive as text; a message of the versions before as one click object,
            // read back through its JSON text (one JSON reader in the wasm, not a second one
            // for JS objects).
            let text = body.as_string().or_else(|| js_sys::JSON::stringify(&body).ok().and_then(|s| s.as_string()));
            let clicks = text.map(|t| click_message::unpack_text(&t)).unwrap_or_default();
            if clicks.is_empty() {
                dropped += 1;
            }
            metrics::add(Counter::click_messages_clicks, clicks.len() as u64);
            for c in clicks {
                match parse(c) {
                    Some(c) => pending.push(c),
                    None => dropped += 1,
                }
            }
        }
        // Written as they fill a chunk, so the work between two awaits is one chunk's and the
        // redirects this isolate serves meanwhile wait no longer. A failed write retries the
        // whole batch: the chunks written before it are not written twice (the click id is the
        // key), their visits only counted again in `hits`.
        while pending.len() >= click_message::CLICKS_PER_WRITE || (done && !pending.is_empty()) {
            let chunk: Vec<NewClick> = pending.drain(..pending.len().min(click_message::CLICKS_PER_WRITE)).collect();
            match clicks::insert_batch(&state.db, key.as_ref(), &chunk).await {
                Ok(w) => {
                    metrics::add(Counter::clicks_inserted, w.inserted as u64);
                    metrics::add(Counter::click_rows_written, w.rows_written as u64);
                }
                Err(e) => {
                    metrics::add(Counter::click_batch_failures, 1);
                    worker::console_error!("clicks queue: {} clicks not written, batch retried: {e}", chunk.len());
                    batch.retry_all_with_options(
                        &QueueRetryOptionsBuilder::new().with_delay_seconds(RETRY_DELAY_SECONDS).build(),
                    );
                    return Ok(());
                }
            }
        }
        if done {
            break;
        }
    }
    if dropped > 0 {
        worker::console_error!("clicks queue: {dropped} malformed message(s) or click(s) dropped");
    }
    batch.ack_all();
    Ok(())
}
