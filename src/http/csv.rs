//! CSV export of commissions, payouts and partners (the lists' filters, every matching row in
//! pages of [`PAGE_ROWS`], at most [`MAX_EXPORT_ROWS`] per response) and the partner import
//! (`POST /api/v1/programs/{id}/partners/import`). The CSV itself and what each import row does
//! are `refport_core::csv` and `refport_core::import`'s.

use super::auth::Perm;
use super::error::{ApiError, ApiResult};
use super::{commissions, headers, json_response, ok, payouts, programs, respond, Call};
use crate::state::new_id;
use crate::store::bulk::{self, Writes};
use crate::store::Filter;
use refport_core::csv::{self, Writer};
use refport_core::error::Invalid;
use refport_core::ids::{self, random_chars, BASE62};
use refport_core::import::{self, Col, Planner};
use refport_core::link::GENERATED_KEY_LEN;
use refport_core::money::Currency;
use refport_core::partner::PartnerStatus;
use refport_core::time::rfc3339;
use serde_json::{json, Value};
use worker::{Request, Response};

/// Rows per D1 query of an export.
pub const PAGE_ROWS: u32 = 1_000;
/// Rows per export response (so at most 100 D1 queries); past it the response names the cursor
/// to continue from in `Refport-Next-Cursor`.
pub const MAX_EXPORT_ROWS: usize = 100_000;

/// How a column's value is written.
#[derive(Clone, Copy)]
enum K {
    Text,
    Int,
    /// Milliseconds, written as RFC 3339.
    Time,
    /// 0 or 1, written as `false` / `true`.
    Bool,
    /// Minor units of the row's `currency`, then a `<name>_decimal` column.
    Money,
}

fn num(v: &Value) -> Option<i64> {
    v.as_i64()
}

/// Fetches pages until no page is left or `MAX_EXPORT_ROWS` were written, each row as `cols`.
async fn export(c: &Call, name: &str, src: bulk::Source<'_>, cols: &[(&str, K)]) -> ApiResult<Response> {
    let mut w = Writer::new();
    for (col, k) in cols {
        w.text(col);
        if let K::Money = k {
            w.text(&format!("{col}_decimal"));
        }
    }
    w.end();
    let mut before = match c.query.get("cursor") {
        Some(s) if !s.is_empty() && s.len() <= 100 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => {
            s.clone()
        }
        Some(_) => return Err(ApiError::bad_request("invalid_query", "malformed cursor")),
        None => "~".to_string(),
    };
    let mut written = 0;
    let next = loop {
        let mut rows = bulk::page(&c.state.db, &src, &before, PAGE_ROWS).await?;
        let more = rows.len() > PAGE_ROWS as usize;
        rows.truncate(PAGE_ROWS as usize);
        for r in &rows {
            for (col, k) in cols {
                let v = &r[*col];
                match k {
                    K::Text => w.opt(v.as_str()),
                    K::Int => match num(v) {
                        Some(n) => w.int(n),
                        None => w.text(""),
                    },
                    K::Time => w.text(&num(v).map(rfc3339).unwrap_or_default()),
                    K::Bool => w.text(match num(v) {
                        Some(0) => "false",
                        Some(_) => "true",
                        None => "",
                    }),
                    K::Money => {
                        let m = num(v).unwrap_or(0);
                        let currency = r["currency"].as_str().and_then(Currency::parse);
                        w.int(m).text(&currency.map(|c| c.decimal(m)).unwrap_or_default())
                    }
                };
            }
            w.end();
        }
        written += rows.len();
        match rows.last().and_then(|r| r["id"].as_str()) {
            Some(last) if more => before = last.to_string(),
            _ => break None,
        }
        if written >= MAX_EXPORT_ROWS {
            break Some(before);
        }
    };
    let day = rfc3339(c.now);
    let disposition = format!("attachment; filename=\"{name}-{}.csv\"", day.get(..10).unwrap_or("export"));
    let h = headers(&[
        ("content-type", "text/csv; charset=utf-8"),
        ("content-disposition", &disposition),
        ("cache-control", "no-store"),
    ]);
    if let Some(next) = next {
        let _ = h.set("refport-next-cursor", &next);
    }
    Ok(respond(200, h, w.finish()))
}

const COMMISSION_COLS: &[(&str, K)] = &[
    ("id", K::Text),
    ("created_at", K::Time),
    ("program_id", K::Text),
    ("partner_id", K::Text),
    ("partner_email", K::Text),
    ("partner_name", K::Text),
    ("kind", K::Text),
    ("status", K::Text),
    ("held", K::Bool),
    ("hold_reasons", K::Text),
    ("currency", K::Text),
    ("amount", K::Money),
    ("sale_amount", K::Money),
    ("refunded_amount", K::Int),
    ("clawed_back", K::Int),
    ("invoice_id", K::Text),
    ("payout_id", K::Text),
    ("reason", K::Text),
    ("description", K::Text),
    ("approved_at", K::Time),
    ("paid_at", K::Time),
];

const PAYOUT_COLS: &[(&str, K)] = &[
    ("id", K::Text),
    ("created_at", K::Time),
    ("program_id", K::Text),
    ("partner_id", K::Text),
    ("partner_email", K::Text),
    ("partner_name", K::Text),
    ("status", K::Text),
    ("currency", K::Text),
    ("amount", K::Money),
    ("reversed_amount", K::Int),
    ("commission_count", K::Int),
    ("stripe_transfer_id", K::Text),
    ("failure_message", K::Text),
    ("paid_at", K::Time),
];

const PARTNER_COLS: &[(&str, K)] = &[
    ("id", K::Text),
    ("created_at", K::Time),
    ("program_id", K::Text),
    ("email", K::Text),
    ("name", K::Text),
    ("status", K::Text),
    ("country", K::Text),
    ("group_id", K::Text),
    ("group_name", K::Text),
    ("link_key", K::Text),
    ("link_url", K::Text),
    ("short_url", K::Text),
    ("coupon_code", K::Text),
    ("payouts_enabled", K::Bool),
];

/// `GET /api/v1/commissions/export`: the filters of `GET /api/v1/commissions`.
pub async fn commissions(c: &Call) -> ApiResult<Response> {
    c.who.require(Perm::Read)?;
    let q = commissions::Query::parse(c)?;
    export(c, "commissions", bulk::Source::Commissions(q.filter(), q.held), COMMISSION_COLS).await
}

/// `GET /api/v1/payouts/export`: the filters of `GET /api/v1/payouts`.
pub async fn payouts(c: &Call) -> ApiResult<Response> {
    c.who.require(Perm::Read)?;
    let (program_id, partner_id, status) = payouts::query(c)?;
    let f = Filter { program_id: program_id.as_deref(), partner_id: partner_id.as_deref(), status };
    export(c, "payouts", bulk::Source::Payouts(f), PAYOUT_COLS).await
}

/// `GET /api/v1/partners/export?program_id=&status=`: a program's partners (every program's for
/// a key bound to none), with their group, first link and first coupon code.
pub async fn partners(c: &Call) -> ApiResult<Response> {
    c.who.require(Perm::Read)?;
    let program_id = c.program_filter()?;
    let status = match c.query.get("status") {
        None => None,
        Some(s) => Some(
            PartnerStatus::parse(s)
                .ok_or_else(|| ApiError::bad_request("invalid_query", "status must be invited, active or banned"))?
                .as_str(),
        ),
    };
    export(c, "partners", bulk::Source::Partners(program_id.as_deref(), status), PARTNER_COLS).await
}

// ---------------------------------------------------------------------------------------------
// Import

/// Largest import body (10,000 rows of about 500 bytes).
pub const MAX_IMPORT_BODY: usize = 5 * 1024 * 1024;
/// New partners one `invite=true` import invites at most (each is an email sent now).
pub const MAX_INVITES: usize = 100;

fn too_large(code: &str, message: String) -> Response {
    json_response(413, &json!({"error": {"code": code, "message": message}}))
}

fn flag(c: &Call, name: &str) -> ApiResult<bool> {
    match c.query.get(name).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::bad_request("invalid_query", format!("{name} must be true or false"))),
    }
}

fn error_json(e: &Invalid) -> Value {
    json!({"code": e.code, "message": e.message, "field": e.field})
}

/// `POST /api/v1/programs/{id}/partners/import[?dry_run=true][&invite=true]` with a CSV body.
pub async fn import(req: &mut Request, c: &Call, program_id: &str) -> ApiResult<Response> {
    c.who.require(Perm::Write)?;
    let program = programs::load(c, program_id).await?;
    let (dry_run, invite) = (flag(c, "dry_run")?, flag(c, "invite")?);
    let long = format!("the CSV may have at most {} data rows and {MAX_IMPORT_BODY} bytes", import::MAX_ROWS);
    if let Ok(Some(len)) = req.headers().get("content-length") {
        if len.parse::<usize>().map(|l| l > MAX_IMPORT_BODY).unwrap_or(false) {
            return Ok(too_large("payload_too_large", long));
        }
    }
    let bytes =
        req.bytes().await.map_err(|_| ApiError::bad_request("invalid_body", "could not read the request body"))?;
    if bytes.len() > MAX_IMPORT_BODY {
        return Ok(too_large("payload_too_large", long));
    }
    let text =
        std::str::from_utf8(&bytes).map_err(|_| ApiError::bad_request("invalid_csv", "the CSV must be UTF-8"))?;
    let records = match csv::parse(text, import::MAX_ROWS + 1) {
        Ok(r) => r,
        Err(csv::ParseError::TooManyRows { .. }) => return Ok(too_large("too_many_rows", long)),
        Err(e) => return Err(ApiError::bad_request("invalid_csv", e.message())),
    };
    let mut records = records.into_iter();
    let Some((_, head)) = records.next() else {
        return Err(ApiError::bad_request("invalid_csv", "the CSV needs a header row (email, name, ...)"));
    };
    let cols: Vec<Col> = import::header(&head).map_err(|e| ApiError::bad_request(e.code, e.message))?;
    let hosts = &program.settings.allowed_hosts;
    let rows: Vec<(usize, String, Result<import::Row, Invalid>)> =
        records.map(|(n, cells)| (n, import::raw_email(&cols, &cells), import::row(&cols, &cells, hosts))).collect();
    if invite && rows.len() > MAX_INVITES {
        return Err(ApiError::bad_request(
            "too_many_invites",
            format!("invite=true imports at most {MAX_INVITES} rows; import more without invite"),
        ));
    }

    // What the program has that the rows name: a few batched reads.
    let domain = program.settings.domains.first().map(String::as_str);
    let valid = || rows.iter().filter_map(|(_, _, r)| r.as_ref().ok());
    let emails: Vec<String> = valid().map(|r| r.email.clone()).collect();
    let keys: Vec<String> = valid().filter_map(|r| r.link_key.clone()).collect();
    let codes: Vec<String> = valid().filter_map(|r| r.coupon.as_ref().map(|c| c.key.clone())).collect();
    let db = &c.state.db;
    let loaded = bulk::load(db, &program.id, domain, &emails, &keys, &codes).await?;
    let mut known = import::Known::default();
    for p in loaded.partners {
        let status = PartnerStatus::parse(&p.status).unwrap_or(PartnerStatus::Banned);
        let e = import::Existing { id: p.id, name: p.name, country: p.country, group_id: p.group_id, status };
        known.partners.insert(p.email, e);
    }
    for o in loaded.link_keys {
        known.link_keys.insert(o.v, o.partner_id.unwrap_or_default());
    }
    for o in loaded.link_urls {
        known.link_urls.insert((o.partner_id.unwrap_or_default(), o.v));
    }
    for o in loaded.coupons {
        known.coupons.insert(o.v, o.partner_id.unwrap_or_default());
    }
    known.groups = loaded.groups.into_iter().map(|o| o.v).collect();

    // What each row does.
    let mut planner = Planner::new(&known);
    let mut w = Writes::default();
    let mut report = Vec::with_capacity(rows.len());
    let mut invites: Vec<(String, String, String, String)> = Vec::new(); // (invitation id, email, name, token)
    let (mut created, mut updated, mut errors) = (0, 0, 0);
    for (n, raw, r) in &rows {
        let plan = r.as_ref().map_err(Clone::clone).and_then(|r| {
            let p = planner.plan(*n, r)?;
            if p.link.is_some() && domain.is_none() {
                return Err(Invalid::new("link_key", "no_domain", "the program has no domain for links"));
            }
            Ok((r, p))
        });
        let (r, p) = match plan {
            Ok(x) => x,
            Err(e) => {
                errors += 1;
                report.push(json!({"row": n, "email": raw, "result": "error", "error": error_json(&e)}));
                continue;
            }
        };
        let partner_id = match &p.partner_id {
            Some(id) => {
                updated += 1;
                if p.update {
                    w.updates.push(json!({"id": id, "name": r.name, "country": r.country, "group_id": r.group_id}));
                }
                Some(id.clone())
            }
            None => {
                created += 1;
                let id = new_id(ids::PARTNER, c.now)?;
                w.partners.push(
                    json!({"id": id, "email": r.email, "name": r.name, "country": r.country, "group_id": r.group_id}),
                );
                if invite {
                    let (token, hash) = super::invites::token()?;
                    let inv = new_id("inv", c.now)?;
                    w.invitations.push(json!({"id": inv, "partner_id": id, "hash": hash}));
                    invites.push((inv, r.email.clone(), r.name.clone(), token));
                }
                (!dry_run).then_some(id)
            }
        };
        if let Some((key, url)) = &p.link {
            let key = match key {
                Some(k) => k.clone(),
                None => random_chars(BASE62, &crate::state::random::<GENERATED_KEY_LEN>()?),
            };
            w.links.push(json!({"id": new_id(ids::LINK, c.now)?, "email": r.email, "key": key, "url": url}));
        }
        if let Some(code) = &p.coupon {
            w.coupons
                .push(json!({"id": new_id(ids::COUPON, c.now)?, "email": r.email, "code": code.code, "key": code.key}));
        }
        let result = if p.partner_id.is_some() { "updated" } else { "created" };
        let mut line = json!({"row": n, "email": r.email, "result": result, "changes": p.changes});
        if let Some(id) = partner_id {
            line["partner_id"] = id.into();
        }
        report.push(line);
    }

    if !dry_run {
        let status = if invite { PartnerStatus::Invited } else { PartnerStatus::Active };
        let expires_at = c.now + super::invites::INVITE_TTL_MS;
        let invited = bulk::write(db, &program.id, domain, status.as_str(), expires_at, c.now, &w).await?;
        let origin = refport_core::weburl::HttpUrl::parse(&req.inner().url()).map(|u| u.origin()).unwrap_or_default();
        let mut sent = 0;
        for (inv, email, name, token) in &invites {
            if invited.contains(inv) {
                let url = format!("{origin}/invite?token={token}");
                sent += super::invites::send(&c.state, &url, &program, email, name, expires_at).await as usize;
            }
        }
        return ok(&json!({"dry_run": false, "summary": {"created": created, "updated": updated, "errors": errors,
            "invited": invited.len(), "emails_sent": sent}, "rows": report}));
    }
    ok(&json!({"dry_run": true, "summary": {"created": created, "updated": updated, "errors": errors}, "rows": report}))
}
