//! Stats and charts, read from the daily rollups (`daily_stats`, and `daily_sub_stats` by
//! sub-ID: see migrations/0008; kept by triggers in the same
//! transaction as every click, event and commission change: see migrations/0003). No query here
//! reads `clicks`, `events` or `commissions`: what a stats request costs grows with the days,
//! links and partners it covers, never with the number of clicks.

use super::{all, StoreResult};
use serde::Serialize;
use worker::D1Database;

/// Commissions by status, minor units of one currency.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Earnings {
    pub pending: i64,
    pub approved: i64,
    pub paid: i64,
    pub rejected: i64,
    /// pending + approved + paid: what the partner has earned and not lost.
    pub total: i64,
}

/// Sales and commissions in one currency.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Amounts {
    pub currency: String,
    /// The sales' commission base (the sale in the payout currency), minor units.
    pub sale_amount: i64,
    pub earnings: Earnings,
}

/// Counts and money of a group (a partner, a day, a link, a whole range).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub clicks: i64,
    pub leads: i64,
    pub sales: i64,
    /// One entry per currency that has sales or commissions, by currency code.
    pub amounts: Vec<Amounts>,
}

impl Totals {
    /// The amounts in `currency` (zeros when none).
    pub fn in_currency(&self, currency: &str) -> Amounts {
        self.amounts
            .iter()
            .find(|a| a.currency == currency)
            .cloned()
            .unwrap_or_else(|| Amounts { currency: currency.to_string(), ..Amounts::default() })
    }

    /// Adds another group's totals to these.
    pub fn merge(&mut self, other: &Totals) {
        self.clicks += other.clicks;
        self.leads += other.leads;
        self.sales += other.sales;
        for a in &other.amounts {
            let e = &a.earnings;
            self.add(&Row {
                k: None,
                currency: a.currency.clone(),
                clicks: 0,
                leads: 0,
                sales: 0,
                sale_amount: a.sale_amount,
                pending: e.pending,
                approved: e.approved,
                paid: e.paid,
                rejected: e.rejected,
            });
        }
    }

    fn add(&mut self, r: &Row) {
        self.clicks += r.clicks;
        self.leads += r.leads;
        self.sales += r.sales;
        if r.currency.is_empty() {
            return;
        }
        let i = match self.amounts.iter().position(|a| a.currency == r.currency) {
            Some(i) => i,
            None => {
                let at = self.amounts.partition_point(|a| a.currency < r.currency);
                self.amounts.insert(at, Amounts { currency: r.currency.clone(), ..Amounts::default() });
                at
            }
        };
        let a = &mut self.amounts[i];
        a.sale_amount += r.sale_amount;
        let e = &mut a.earnings;
        e.pending += r.pending;
        e.approved += r.approved;
        e.paid += r.paid;
        e.rejected += r.rejected;
        e.total = e.pending + e.approved + e.paid;
    }
}

/// One rollup sum: a group key (`k`), a currency ('' for the counts that have none) and sums.
struct Row {
    k: Option<serde_json::Value>,
    currency: String,
    clicks: i64,
    leads: i64,
    sales: i64,
    sale_amount: i64,
    pending: i64,
    approved: i64,
    paid: i64,
    rejected: i64,
}
from_row!(Row { k, currency, clicks, leads, sales, sale_amount, pending, approved, paid, rejected });

const SUMS: &str = "currency, SUM(clicks) AS clicks, SUM(leads) AS leads, SUM(sales) AS sales,
    SUM(sale_amount) AS sale_amount, SUM(pending) AS pending, SUM(approved) AS approved, SUM(paid) AS paid,
    SUM(rejected) AS rejected";

/// Everything a partner ever did (clicks past retention included).
pub async fn partner_totals(db: &D1Database, program_id: &str, partner_id: &str) -> StoreResult<Totals> {
    let rows: Vec<Row> = all(query!(
        db,
        &format!(
            "SELECT NULL AS k, {SUMS} FROM daily_stats WHERE program_id = ?1 AND partner_id = ?2 GROUP BY currency"
        ),
        program_id,
        partner_id
    )?)
    .await?;
    let mut t = Totals::default();
    rows.iter().for_each(|r| t.add(r));
    Ok(t)
}

/// How a program's stats are grouped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupBy {
    Day,
    Partner,
    Link,
    /// `sub1`, `sub2` or `sub3` (0, 1, 2).
    Sub(u8),
}

impl GroupBy {
    pub fn parse(s: &str) -> Option<GroupBy> {
        match s {
            "day" => Some(GroupBy::Day),
            "partner" => Some(GroupBy::Partner),
            "link" => Some(GroupBy::Link),
            "sub1" => Some(GroupBy::Sub(0)),
            "sub2" => Some(GroupBy::Sub(1)),
            "sub3" => Some(GroupBy::Sub(2)),
            _ => None,
        }
    }

    /// The `group_by` value, and the rollup column.
    pub fn name(self) -> &'static str {
        match self {
            GroupBy::Day => "day",
            GroupBy::Partner => "partner",
            GroupBy::Link => "link",
            GroupBy::Sub(i) => refport_core::click::SUB_ID_PARAMS[i as usize % 3],
        }
    }

    fn column(self) -> &'static str {
        match self {
            GroupBy::Partner => "partner_id",
            GroupBy::Link => "link_id",
            _ => self.name(),
        }
    }
}

/// A group of a program's stats: its key (a day number since the epoch, a partner id, a link
/// id, '' for conversions without a link, a sub-ID, '' for none) and its totals.
pub struct Group {
    pub key: serde_json::Value,
    pub totals: Totals,
}

/// A program's stats over UTC days `from..=to` (days since the epoch), grouped; an optional
/// partner narrows it to one partner. Groups in key order.
pub async fn program_groups(
    db: &D1Database,
    program_id: &str,
    partner_id: Option<&str>,
    from: i64,
    to: i64,
    by: GroupBy,
) -> StoreResult<Vec<Group>> {
    let col = by.column();
    let range = "program_id = ?1 AND day BETWEEN ?2 AND ?3 AND (?4 IS NULL OR partner_id = ?4)";
    let sql = match by {
        // The clicks and conversions with that sub-ID, from daily_sub_stats; the group without
        // one ('') is everything else: daily_stats minus the tagged rows of daily_sub_stats.
        // Commissions are not split by sub-ID: all of them are in the group without one.
        GroupBy::Sub(_) => format!(
            "SELECT k, {SUMS} FROM (
               SELECT {col} AS k, currency, clicks, leads, sales, sale_amount,
                 0 AS pending, 0 AS approved, 0 AS paid, 0 AS rejected
                 FROM daily_sub_stats WHERE {range} AND {col} != ''
               UNION ALL
               SELECT '', currency, -clicks, -leads, -sales, -sale_amount, 0, 0, 0, 0
                 FROM daily_sub_stats WHERE {range} AND {col} != ''
               UNION ALL
               SELECT '', currency, clicks, leads, sales, sale_amount, pending, approved, paid, rejected
                 FROM daily_stats WHERE {range})
             GROUP BY k, currency ORDER BY k"
        ),
        _ => {
            format!("SELECT {col} AS k, {SUMS} FROM daily_stats WHERE {range} GROUP BY {col}, currency ORDER BY {col}")
        }
    };
    let rows: Vec<Row> = all(query!(db, &sql, program_id, from, to, partner_id)?).await?;
    let mut out: Vec<Group> = Vec::new();
    // By a sub-ID: the remainder rows are zeros where every click carried it.
    let rows = rows.into_iter().filter(|r| {
        !matches!(by, GroupBy::Sub(_))
            || r.k.as_ref().and_then(|k| k.as_str()) != Some("")
            || [r.clicks, r.leads, r.sales, r.sale_amount, r.pending, r.approved, r.paid, r.rejected] != [0; 8]
    });
    for r in rows {
        let key = r.k.clone().unwrap_or(serde_json::Value::Null);
        match out.last_mut() {
            Some(g) if g.key == key => g.totals.add(&r),
            _ => {
                let mut totals = Totals::default();
                totals.add(&r);
                out.push(Group { key, totals });
            }
        }
    }
    Ok(out)
}

/// One UTC day of a series: `day` counts days since the epoch; days without activity are absent.
#[derive(Clone, Copy, Debug)]
pub struct DayCount {
    pub day: i64,
    pub n: i64,
}
from_row!(DayCount { day, n });

/// A partner's per-day series since day `since` (days since the epoch): clicks, leads, sales,
/// and earnings in `currency` (commissions not rejected).
pub struct Daily {
    pub clicks: Vec<DayCount>,
    pub leads: Vec<DayCount>,
    pub sales: Vec<DayCount>,
    pub earnings: Vec<DayCount>,
}

struct DayRow {
    day: i64,
    clicks: i64,
    leads: i64,
    sales: i64,
    earnings: i64,
}
from_row!(DayRow { day, clicks, leads, sales, earnings });

pub async fn partner_daily(
    db: &D1Database,
    program_id: &str,
    partner_id: &str,
    since_day: i64,
    currency: &str,
) -> StoreResult<Daily> {
    let rows: Vec<DayRow> = all(query!(
        db,
        "SELECT day, SUM(clicks) AS clicks, SUM(leads) AS leads, SUM(sales) AS sales,
             SUM(CASE WHEN currency = ?4 THEN pending + approved + paid ELSE 0 END) AS earnings
         FROM daily_stats WHERE program_id = ?1 AND partner_id = ?2 AND day >= ?3 GROUP BY day ORDER BY day",
        program_id,
        partner_id,
        since_day,
        currency
    )?)
    .await?;
    let series = |f: fn(&DayRow) -> i64| -> Vec<DayCount> {
        rows.iter().filter(|r| f(r) != 0).map(|r| DayCount { day: r.day, n: f(r) }).collect()
    };
    Ok(Daily {
        clicks: series(|r| r.clicks),
        leads: series(|r| r.leads),
        sales: series(|r| r.sales),
        earnings: series(|r| r.earnings),
    })
}

/// Sub-ID combinations a portal table lists at most (the busiest first).
pub const MAX_SUB_ID_ROWS: u32 = 50;

/// One combination of sub-IDs and its counts.
#[derive(Serialize)]
pub struct SubIdRow {
    pub sub1: Option<String>,
    pub sub2: Option<String>,
    pub sub3: Option<String>,
    pub clicks: i64,
    pub leads: i64,
    pub sales: i64,
}
from_row!(SubIdRow { sub1, sub2, sub3, clicks, leads, sales });

/// A partner's clicks and conversions that carried sub-IDs since day `since`, per combination
/// of sub-IDs: the busiest [`MAX_SUB_ID_ROWS`] by clicks, then sales. Each row as the portal
/// answers it: `{sub1, sub2, sub3, clicks, leads, sales}` (a sub-ID null when absent).
pub async fn partner_sub_ids(
    db: &D1Database,
    program_id: &str,
    partner_id: &str,
    since_day: i64,
) -> StoreResult<Vec<SubIdRow>> {
    all(query!(
        db,
        "SELECT NULLIF(sub1, '') AS sub1, NULLIF(sub2, '') AS sub2, NULLIF(sub3, '') AS sub3,
             SUM(clicks) AS clicks, SUM(leads) AS leads, SUM(sales) AS sales
         FROM daily_sub_stats WHERE program_id = ?1 AND partner_id = ?2 AND day >= ?3
         GROUP BY sub1, sub2, sub3 ORDER BY 4 DESC, 6 DESC, sub1, sub2, sub3 LIMIT ?4",
        program_id,
        partner_id,
        since_day,
        MAX_SUB_ID_ROWS
    )?)
    .await
}
