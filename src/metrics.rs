//! Isolate-local counters of what the hot paths and the queue consumers did: D1 queries and KV
//! reads per redirect, clicks queued and written, D1 rows written per click, payout invocations
//! and the most subrequests one invocation made. `GET /api/v1/metrics` (admin) answers them;
//! the benchmark reads them (`wrangler dev` runs one isolate, so they cover the whole run). In
//! production each isolate counts its own share: they are a measuring tool, not a ledger.
//!
//! A counter is a `Cell` in a thread-local: no allocation, no lock, no log line on the hot path.

use std::cell::Cell;

macro_rules! counters {
    ($($name:ident),* $(,)?) => {
        /// Every counter, by name.
        #[derive(Clone, Copy, Debug)]
        #[allow(non_camel_case_types)]
        pub enum Counter { $($name),* }
        const NAMES: &[&str] = &[$(stringify!($name)),*];
    };
}

counters!(
    // Every D1 round trip (`store` helpers) and KV read, whoever made it.
    d1_calls,
    kv_reads,
    // The redirect.
    redirects,
    redirect_kv_reads,
    redirect_d1_queries,
    redirect_isolate_cache_hits,
    clicks_queued,
    // Queue calls (`sendBatch`) that carried them, and their messages (clicks packed).
    click_sends,
    click_messages_sent,
    click_queue_failures,
    // The clicks consumer.
    click_batches,
    click_batch_failures,
    click_messages,
    // Clicks in the messages (several per message since they are packed).
    click_messages_clicks,
    clicks_inserted,
    click_rows_written,
    // The cron and the payouts consumer.
    cron_runs,
    payouts_enqueued,
    payout_batches,
    payout_messages,
    // Messages settled by the consumer: acknowledged (paid, failed, stale...) or retried later;
    // the queue has drained when every enqueued message was acknowledged.
    payout_messages_acked,
    payout_messages_retried,
    transfers_sent,
    max_invocation_subrequests,
    // Retention.
    clicks_deleted,
);

const N: usize = NAMES.len();

thread_local! {
    static VALUES: [Cell<u64>; N] = const { [const { Cell::new(0) }; N] };
}

/// Adds `n` to a counter.
pub fn add(c: Counter, n: u64) {
    VALUES.with(|v| {
        let cell = &v[c as usize];
        cell.set(cell.get().saturating_add(n));
    });
}

/// Raises a counter to `n` if it is below (a maximum).
pub fn max(c: Counter, n: u64) {
    VALUES.with(|v| {
        let cell = &v[c as usize];
        cell.set(cell.get().max(n));
    });
}

/// Every counter with its name, in declaration order.
pub fn snapshot() -> Vec<(&'static str, u64)> {
    VALUES.with(|v| NAMES.iter().zip(v.iter()).map(|(n, c)| (*n, c.get())).collect())
}
