//! A partner's activity counts for the stats endpoint and the portal: click totals and per-UTC-day
//! series. (Lead, sale and earning totals are `commissions::partner_stats`.)

use super::{all, first, Count, StoreResult};
use serde::Deserialize;
use worker::{query, D1Database};

/// Every click on the partner's links.
pub async fn partner_clicks(db: &D1Database, partner_id: &str) -> StoreResult<i64> {
    let n: Option<Count> =
        first(query!(db, "SELECT COUNT(*) AS n FROM clicks WHERE partner_id = ?1", partner_id)?).await?;
    Ok(n.map(|c| c.n).unwrap_or(0))
}

/// One UTC day of a series: `day` counts days since the epoch; days without activity are absent.
#[derive(Clone, Copy, Debug, Deserialize)]
pub struct DayCount {
    pub day: i64,
    pub n: i64,
}

/// Per-day series since `since` (ms): clicks, leads, sales, and earnings (commission amounts in
/// minor units, rejected ones excluded).
pub struct Daily {
    pub clicks: Vec<DayCount>,
    pub leads: Vec<DayCount>,
    pub sales: Vec<DayCount>,
    pub earnings: Vec<DayCount>,
}

async fn series(db: &D1Database, sql: &str, partner_id: &str, since: i64) -> StoreResult<Vec<DayCount>> {
    all(query!(db, sql, partner_id, since)?).await
}

pub async fn partner_daily(db: &D1Database, partner_id: &str, since: i64) -> StoreResult<Daily> {
    Ok(Daily {
        clicks: series(db, "SELECT created_at / 86400000 AS day, COUNT(*) AS n FROM clicks WHERE partner_id = ?1 AND created_at >= ?2 GROUP BY day", partner_id, since).await?,
        leads: series(db, "SELECT created_at / 86400000 AS day, COUNT(*) AS n FROM events WHERE partner_id = ?1 AND kind = 'lead' AND created_at >= ?2 GROUP BY day", partner_id, since).await?,
        sales: series(db, "SELECT created_at / 86400000 AS day, COUNT(*) AS n FROM events WHERE partner_id = ?1 AND kind = 'sale' AND created_at >= ?2 GROUP BY day", partner_id, since).await?,
        earnings: series(db, "SELECT created_at / 86400000 AS day, SUM(amount) AS n FROM commissions WHERE partner_id = ?1 AND status != 'rejected' AND created_at >= ?2 GROUP BY day", partner_id, since).await?,
    })
}
