//! The redirect's clicks leave the isolate in batches: each click joins an isolate-local buffer,
//! and the request that starts a buffer also carries its flush (`ctx.wait_until`, which keeps the
//! isolate alive until it has run): after `FLUSH_AFTER_MS`, or at once when the buffer holds
//! `MAX_SEND` clicks, everything buffered goes to the clicks queue as one `sendBatch` (one message
//! per click, the consumer's format unchanged). One queue call per batch instead of one per click:
//! under load the redirect's largest cost after the response (the profile of `make bench` put
//! `Queue.send` at ~10% of the isolate's CPU, plus the broker's own work on each call).
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
use refport_core::crypto::hmac_sha256_hex;
use std::cell::RefCell;
use std::time::Duration;
use worker::{Context, Env};

/// How long a click may wait for others before its batch is sent (milliseconds).
pub const FLUSH_AFTER_MS: u64 = 20;

/// The most clicks in one send: Cloudflare Queues takes up to 100 messages (and 256 KB; a click
/// message is under 1 KB) per `sendBatch`.
pub const MAX_SEND: usize = 100;

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
            click.ua_hash = ua.map(|ua| visitor_hash(salt, &ua));
            click
        })
        .collect();
    for chunk in hashed.chunks(MAX_SEND) {
        send(state, chunk).await;
    }
}

/// One batch to the clicks queue; D1 directly if the queue is missing or refuses it.
async fn send(state: &AppState, batch: &[NewClick]) {
    let sent = match state.clicks_queue() {
        Ok(q) => q.send_batch(batch.to_vec()).await,
        Err(e) => Err(e),
    };
    let n = batch.len() as u64;
    match sent {
        Ok(()) => {
            metrics::add(Counter::click_sends, 1);
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

/// A salted visitor hash (IP or user agent): HMAC-SHA256, the first 128 bits in hex.
fn visitor_hash(salt: &[u8], value: &str) -> String {
    let mut h = hmac_sha256_hex(salt, value.as_bytes());
    h.truncate(32);
    h
}
