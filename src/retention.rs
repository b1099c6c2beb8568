//! Retention of raw click rows (run by the cron): clicks older than
//! `refport_core::click::retention_days` (the longest attribution window in use plus a margin,
//! or `CLICK_RETENTION_DAYS` when longer) are deleted, oldest first, in bounded batches. The
//! daily rollups keep counting them; signed click ids still attribute without their rows.

use crate::http::error::ApiResult;
use crate::metrics::{self, Counter};
use crate::state::AppState;
use crate::store::{clicks, programs};
use refport_core::click::retention_days;
use refport_core::click_id::cutoff_id;
use refport_core::time::DAY_MS;

/// Rows one DELETE removes (one subrequest; bounded so one statement stays short).
pub const ROWS_PER_DELETE: u32 = 1000;
/// DELETE statements per cron run: up to 5,000 clicks a run, 480,000 a day at one run every
/// 15 minutes. A backlog (the first run after an upgrade) drains over the following runs.
pub const DELETES_PER_RUN: usize = 5;

/// Deletes expired clicks; answers how many, and the D1 queries it made (the cron's budget).
pub async fn delete_expired_clicks(state: &AppState, now: i64) -> ApiResult<(usize, usize)> {
    let longest = programs::longest_attribution_window(&state.db).await?;
    let days = retention_days(longest, state.config.click_retention_days);
    let cutoff = cutoff_id(now - days as i64 * DAY_MS);
    let (mut deleted, mut queries) = (0, 1);
    for _ in 0..DELETES_PER_RUN {
        queries += 1;
        let n = clicks::delete_before(&state.db, &cutoff, ROWS_PER_DELETE).await?;
        deleted += n;
        if n < ROWS_PER_DELETE as usize {
            break;
        }
    }
    metrics::add(Counter::clicks_deleted, deleted as u64);
    Ok((deleted, queries))
}
