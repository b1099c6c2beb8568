//! The redirect's clicks leave the isolate in batches: each click joins an isolate-local buffer,
//! and the request that starts a buffer also carries its flush (`ctx.wait_until`, which keeps the
//! isolate alive until it has run): after `FLUSH_AFTER_MS`, or at once when the buffer holds
//! `MAX_SEND` clicks, everything buffered goes to the clicks queue in one call, packed into as
//! few messages as fit in 64 KB each (`refport_core::click_message`: one message per flush in
//! practice, where there was one per click). One queue call per batch instead of one per click
//! was the redirect's largest cost after the response (the profile of `make bench` put
//! `Queue.send` at ~10% of the isolate's CPU, plus the broker's own work on each call); one
//! message per batch cuts the queue's billed operations by the clicks per flush, and the work
//! of the broker and the consumer with them. Each message goes as JSON text: one string across
//! the wasm boundary, where an object was built field by field.
//!
//! Nothing is dropped for want of a queue: a failed send, or a deployment without the `CLICKS`
//! binding, writes the batch to D1 directly (`store::clicks::insert_batch`, idempotent on the
//! click id like the consumer). A click waits at most `FLUSH_AFTER_MS` in memory; a flush that
//! starts takes the whole buffer, so the next click starts a new one.
//!
//! The visitor hashes (salted HMACs of the IP and the user agent) are computed at flush time:
//! nothing in the response depends on them.

use crate::metrics::{self, Counter};
use crate::state::{self, AppState};
use crate::store::clicks::{self, NewClick};
use refport_core::click_message;
use refport_core::crypto::hmac_sha256_hex;
use std::cell::RefCell;
use std::time::Duration;
use wasm_bindgen::JsValue;
use worker::{BatchMessageBuilder, Context, Env, Queue, QueueContentType, RawMessageBuilder, SendMessage};

/// How long a click may wait for others before its batch is sent (milliseconds).
pub const FLUSH_AFTER_MS: u64 = 20;

/// The most clicks in one flush: a full buffer is sent at once. Cloudflare Queues takes up to
/// 100 messages and 256 KB per `sendBatch`; at most 100 clicks of under 2 KB each (ids of at most
/// 200 bytes, sub-IDs of at most 100) make at most 4 messages of 64 KB.
pub const MAX_SEND: usize = click_message::MAX_CLICKS_PER_MESSAGE;

/// A click waiting for its batch, with what its hashes are computed from.
pub struct Pending {
    pub click: NewClick,
    pub ip: Option<String>,
    pub ua: Option<String>,
}

thread_local! {
    static BUFFER: RefCell<Vec<Pending>> = const { RefCell::new(Vec::new()) };
}

/// A buffer whose first click is this old (milliseconds) lost its flush (its request's
/// background work could not start): the next click schedules another.
const STALE_MS: i64 = 1_000;

/// Buffers a counted click. The first click of a buffer schedules its flush after
/// `FLUSH_AFTER_MS` (and so does a click finding the buffer stale); a full buffer is flushed at
/// once (in this request's `wait_until`).
pub fn push(env: &Env, ctx: &Context, p: Pending) {
    let at = p.click.at;
    let (len, oldest) = BUFFER.with(|b| {
        let mut b = b.borrow_mut();
        b.push(p);
        (b.len(), b.first().map_or(at, |f| f.click.at))
    });
    if len == 1 || at - oldest > STALE_MS {
        state::background(env, ctx, |s| async move {
            worker::Delay::from(Duration::from_millis(FLUSH_AFTER_MS)).await;
            flush(&s).await
        });
    } else if len >= MAX_SEND {
        state::background(env, ctx, |s| async move { flush(&s).await });
    }
}

/// Sends everything buffered, `MAX_SEND` clicks per queue call.
async fn flush(state: &AppState) {
    let taken = BUFFER.with(|b| std::mem::take(&mut *b.borrow_mut()));
    if taken.is_empty() {
        return; // an earlier flush (a full buffer) took them
    }
    let salt = state.secrets.ip_hash_salt.as_ref().map(|k| k.bytes()).unwrap_or_default();
    let hashed: Vec<NewClick> = taken
        .into_iter()
        .map(|Pending { mut click, ip, ua }| {
            click.ip_hash = ip.map(|ip| visitor_hash(salt, &ip));
            click.ua_hash = ua.map(|ua| ua_hash(salt, ua));
            click
        })
        .collect();
    for chunk in hashed.chunks(MAX_SEND) {
        send(state, chunk).await;
    }
}

/// One batch to the clicks queue, packed; D1 directly if the queue is missing or refuses it.
async fn send(state: &AppState, batch: &[NewClick]) {
    let sent = match state.clicks_queue() {
        Ok(q) => send_packed(&q, batch).await,
        Err(e) => Err(e),
    };
    let n = batch.len() as u64;
    match sent {
        Ok(messages) => {
            metrics::add(Counter::click_sends, 1);
            metrics::add(Counter::click_messages_sent, messages);
            metrics::add(Counter::clicks_queued, n);
        }
        Err(_) => {
            metrics::add(Counter::click_queue_failures, n);
            let key = state.secrets.click_key();
            if let Err(e) = clicks::insert_batch(&state.db, key.as_ref(), batch).await {
                worker::console_error!("{n} clicks not recorded: {e}");
            }
        }
    }
}

/// The clicks as packed text messages, in one `sendBatch`; the number of messages sent.
async fn send_packed(q: &Queue, batch: &[NewClick]) -> worker::Result<u64> {
    let texts = batch
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<Vec<String>, _>>()
        .map_err(|e| worker::Error::RustError(e.to_string()))?;
    let messages: Vec<SendMessage<JsValue>> = click_message::pack(&texts)
        .into_iter()
        .map(|m| RawMessageBuilder::new(JsValue::from_str(&m)).build_with_content_type(QueueContentType::Text))
        .collect();
    let n = messages.len() as u64;
    q.send_raw_batch(BatchMessageBuilder::new().messages(messages).build()).await?;
    Ok(n)
}

/// User agents whose hash the isolate keeps: visitors share a few browser strings (an address
/// is nearly always new, so IP hashes are not kept).
const UA_HASHES_KEPT: usize = 256;

/// The salt the kept hashes were made with, and the hashes by user agent.
type UaHashes = (Vec<u8>, std::collections::HashMap<String, String>);

thread_local! {
    static UA_HASHES: RefCell<UaHashes> = RefCell::new((Vec::new(), std::collections::HashMap::new()));
}

/// [`visitor_hash`] of a user agent, kept per isolate (bounded: a full map starts over, and so
/// does a new salt).
fn ua_hash(salt: &[u8], ua: String) -> String {
    UA_HASHES.with(|kept| {
        let (kept_salt, hashes) = &mut *kept.borrow_mut();
        if kept_salt.as_slice() != salt {
            *kept_salt = salt.to_vec();
            hashes.clear();
        }
        if let Some(h) = hashes.get(&ua) {
            return h.clone();
        }
        let h = visitor_hash(salt, &ua);
        if hashes.len() >= UA_HASHES_KEPT {
            hashes.clear();
        }
        hashes.insert(ua, h.clone());
        h
    })
}

/// A salted visitor hash (IP or user agent): HMAC-SHA256, the first 128 bits in hex.
fn visitor_hash(salt: &[u8], value: &str) -> String {
    let mut h = hmac_sha256_hex(salt, value.as_bytes());
    h.truncate(32);
    h
}
