//! The partner import (`POST /api/v1/programs/{id}/partners/import`): what each CSV row does,
//! decided from the rows and what the program already has. Idempotent by email: a row whose
//! email is a partner of the program updates it (name, and country or group when given) and
//! adds only the link and coupon it lacks; running the same file twice creates nothing twice.
//! A bad row is reported with its field and never stops the others.

use crate::coupon::CouponCode;
use crate::error::Invalid;
use crate::link::{parse_destination, parse_key};
use crate::partner::{parse_country, parse_email, parse_name, PartnerStatus};
use std::collections::{HashMap, HashSet};

/// Data rows one request imports at most.
pub const MAX_ROWS: usize = 10_000;

/// The columns, by their header name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Col {
    Email,
    Name,
    LinkKey,
    LinkUrl,
    GroupId,
    CouponCode,
    Country,
}

const NAMES: [(&str, Col); 7] = [
    ("email", Col::Email),
    ("name", Col::Name),
    ("link_key", Col::LinkKey),
    ("link_url", Col::LinkUrl),
    ("group_id", Col::GroupId),
    ("coupon_code", Col::CouponCode),
    ("country", Col::Country),
];

/// The header row: known column names in any order and case, each once, `email` and `name`
/// required.
pub fn header(cells: &[String]) -> Result<Vec<Col>, Invalid> {
    let mut cols = Vec::with_capacity(cells.len());
    for c in cells {
        let name = c.trim().to_ascii_lowercase();
        let Some(&(_, col)) = NAMES.iter().find(|(n, _)| *n == name) else {
            return Err(Invalid::new(
                "header",
                "unknown_column",
                format!(
                    "unknown column `{}` (the columns are email, name, link_key, link_url, group_id, coupon_code, country)",
                    c.trim()
                ),
            ));
        };
        if cols.contains(&col) {
            return Err(Invalid::new("header", "duplicate_column", format!("column `{name}` appears twice")));
        }
        cols.push(col);
    }
    for (name, col) in &NAMES[..2] {
        if !cols.contains(col) {
            return Err(Invalid::new("header", "missing_column", format!("the header needs a `{name}` column")));
        }
    }
    Ok(cols)
}

/// A valid row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub email: String,
    pub name: String,
    pub link_key: Option<String>,
    /// Normalised destination; with a key and no URL, the program's first allowed host.
    pub link_url: Option<String>,
    pub group_id: Option<String>,
    pub coupon: Option<CouponCode>,
    pub country: Option<String>,
}

fn renamed(mut e: Invalid, field: &str) -> Invalid {
    e.field = field.to_string();
    e
}

/// The email cell of a record as written (for the report of a row that is not valid).
pub fn raw_email(cols: &[Col], cells: &[String]) -> String {
    cols.iter()
        .position(|c| *c == Col::Email)
        .and_then(|i| cells.get(i))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Validates one record with the rules of the partner and link APIs. Empty optional cells are
/// absent; missing trailing cells are empty.
pub fn row(cols: &[Col], cells: &[String], allowed_hosts: &[String]) -> Result<Row, Invalid> {
    if cells.len() > cols.len() {
        return Err(Invalid::new(
            "",
            "too_many_fields",
            format!("the row has {} fields, the header {}", cells.len(), cols.len()),
        ));
    }
    let get = |col: Col| {
        cols.iter().position(|c| *c == col).and_then(|i| cells.get(i)).map(|s| s.trim()).filter(|s| !s.is_empty())
    };
    let email = parse_email("email", get(Col::Email).unwrap_or(""))?;
    let name = parse_name(get(Col::Name).unwrap_or(""))?;
    let link_key = get(Col::LinkKey).map(parse_key).transpose().map_err(|e| renamed(e, "link_key"))?;
    let link_url = match get(Col::LinkUrl) {
        Some(u) => Some(parse_destination(u, allowed_hosts).map_err(|e| renamed(e, "link_url"))?.to_string()),
        None if link_key.is_some() => match allowed_hosts.first() {
            Some(h) => Some(format!("https://{h}/")),
            None => return Err(Invalid::new("link_url", "invalid_url", "the program has no allowed host")),
        },
        None => None,
    };
    let group_id = match get(Col::GroupId) {
        Some(g) if !crate::ids::is_valid(crate::ids::GROUP, g) => {
            return Err(Invalid::new("group_id", "invalid_group", format!("`{g}` is not a group id")))
        }
        g => g.map(str::to_string),
    };
    Ok(Row {
        email,
        name,
        link_key,
        link_url,
        group_id,
        coupon: get(Col::CouponCode).map(|c| CouponCode::parse("coupon_code", c)).transpose()?,
        country: get(Col::Country).map(|c| parse_country("country", c)).transpose()?,
    })
}

/// A partner of the program the import names by email.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Existing {
    pub id: String,
    pub name: String,
    pub country: Option<String>,
    pub group_id: Option<String>,
    pub status: PartnerStatus,
}

/// What the program already has that the rows name.
#[derive(Default)]
pub struct Known {
    /// Partners by (lower-case) email.
    pub partners: HashMap<String, Existing>,
    /// Live links on the import's domain by key: their partner id.
    pub link_keys: HashMap<String, String>,
    /// (partner id, destination) of the live links of the partners named.
    pub link_urls: HashSet<(String, String)>,
    /// Live coupons by lower-case code: their partner id.
    pub coupons: HashMap<String, String>,
    /// The program's group ids.
    pub groups: HashSet<String>,
}

/// What a valid row changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// `None`: a new partner; `Some(id)`: the existing one.
    pub partner_id: Option<String>,
    /// An existing partner's fields to write (name, country, group), when any differs.
    pub update: bool,
    /// A link to add: (key, or `None` for a generated one; destination).
    pub link: Option<(Option<String>, String)>,
    pub coupon: Option<CouponCode>,
    /// What changes, for the report: `name`, `country`, `group_id`, `link`, `coupon_code`.
    pub changes: Vec<&'static str>,
}

/// Decides rows in file order against `known`; within the file, the first row of an email, a
/// link key or a coupon code wins and a later one is an error naming it.
pub struct Planner<'a> {
    known: &'a Known,
    emails: HashMap<String, usize>,
    keys: HashMap<String, usize>,
    codes: HashMap<String, usize>,
}

fn dup(field: &str, code: &'static str, what: &str, first: usize) -> Invalid {
    Invalid::new(field, code, format!("{what} is already on row {first} of this file"))
}

impl<'a> Planner<'a> {
    pub fn new(known: &'a Known) -> Planner<'a> {
        Planner { known, emails: HashMap::new(), keys: HashMap::new(), codes: HashMap::new() }
    }

    /// What row number `n` (valid as `r`) does.
    pub fn plan(&mut self, n: usize, r: &Row) -> Result<Plan, Invalid> {
        if let Some(first) = self.emails.get(&r.email) {
            return Err(dup("email", "duplicate_email", "this email", *first));
        }
        if let Some(k) = &r.link_key {
            if let Some(first) = self.keys.get(k) {
                return Err(dup("link_key", "duplicate_link_key", "this link key", *first));
            }
        }
        if let Some(c) = &r.coupon {
            if let Some(first) = self.codes.get(&c.key) {
                return Err(dup("coupon_code", "duplicate_coupon_code", "this coupon code", *first));
            }
        }
        let existing = self.known.partners.get(&r.email);
        let id = existing.map(|p| p.id.as_str());
        if let Some(g) = &r.group_id {
            if !self.known.groups.contains(g) {
                return Err(Invalid::new("group_id", "invalid_group", format!("`{g}` is not a group of this program")));
            }
        }
        let mut changes = Vec::new();
        let link = match (&r.link_key, &r.link_url) {
            (Some(k), Some(url)) => match self.known.link_keys.get(k) {
                Some(owner) if Some(owner.as_str()) == id => None,
                Some(_) => {
                    return Err(Invalid::new(
                        "link_key",
                        "key_taken",
                        format!("the link key `{k}` is another partner's"),
                    ))
                }
                None => Some((Some(k.clone()), url.clone())),
            },
            (None, Some(url)) => match id {
                Some(id) if self.known.link_urls.contains(&(id.to_string(), url.clone())) => None,
                _ => Some((None, url.clone())),
            },
            _ => None,
        };
        let coupon = match &r.coupon {
            Some(c) => match self.known.coupons.get(&c.key) {
                Some(owner) if Some(owner.as_str()) == id => None,
                Some(_) => {
                    return Err(Invalid::new(
                        "coupon_code",
                        "coupon_code_taken",
                        format!("the program already has the coupon code `{}` (codes ignore case)", c.code),
                    ))
                }
                None => Some(c.clone()),
            },
            None => None,
        };
        let mut update = false;
        if let Some(p) = existing {
            if p.status == PartnerStatus::Banned && (link.is_some() || coupon.is_some()) {
                return Err(Invalid::new(
                    "email",
                    "partner_banned",
                    "a banned partner cannot get new links or coupon codes",
                ));
            }
            for (field, differs) in [
                ("name", p.name != r.name),
                ("country", r.country.is_some() && r.country != p.country),
                ("group_id", r.group_id.is_some() && r.group_id != p.group_id),
            ] {
                if differs {
                    update = true;
                    changes.push(field);
                }
            }
        }
        if link.is_some() {
            changes.push("link");
        }
        if coupon.is_some() {
            changes.push("coupon_code");
        }
        self.emails.insert(r.email.clone(), n);
        if let Some(k) = &r.link_key {
            self.keys.insert(k.clone(), n);
        }
        if let Some(c) = &r.coupon {
            self.codes.insert(c.key.clone(), n);
        }
        Ok(Plan { partner_id: id.map(str::to_string), update, link, coupon, changes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(s: &[&str]) -> Vec<String> {
        s.iter().map(|c| c.to_string()).collect()
    }

    fn hosts() -> Vec<String> {
        vec!["acme.com".into()]
    }

    #[test]
    fn headers() {
        let cols = header(&cells(&["Name", " email ", "coupon_code"])).unwrap();
        assert_eq!(cols, vec![Col::Name, Col::Email, Col::CouponCode]);
        assert_eq!(header(&cells(&["email", "name", "phone"])).unwrap_err().code, "unknown_column");
        assert_eq!(header(&cells(&["email", "name", "email"])).unwrap_err().code, "duplicate_column");
        assert_eq!(header(&cells(&["email"])).unwrap_err().code, "missing_column");
    }

    #[test]
    fn rows_use_the_api_rules() {
        let cols =
            header(&cells(&["email", "name", "link_key", "link_url", "group_id", "coupon_code", "country"])).unwrap();
        let r = row(&cols, &cells(&[" Ann@X.com ", " Ann ", "ann", "", "", "ANN10", "de"]), &hosts()).unwrap();
        assert_eq!(r.email, "ann@x.com");
        assert_eq!(r.name, "Ann");
        assert_eq!(r.link_url.as_deref(), Some("https://acme.com/"));
        assert_eq!(r.coupon.as_ref().map(|c| c.key.as_str()), Some("ann10"));
        assert_eq!(r.country.as_deref(), Some("DE"));
        let short = row(&cols, &cells(&["b@x.com", "B"]), &hosts()).unwrap();
        assert_eq!((short.link_key, short.link_url, short.coupon), (None, None, None));
        let err = |c: &[&str]| row(&cols, &cells(c), &hosts()).unwrap_err();
        assert_eq!(err(&["nope", "A"]).field, "email");
        assert_eq!(err(&["a@x.com", ""]).field, "name");
        let e = err(&["a@x.com", "A", "api"]);
        assert_eq!((e.field.as_str(), e.code), ("link_key", "reserved_key"));
        let e = err(&["a@x.com", "A", "", "https://evil.com/"]);
        assert_eq!((e.field.as_str(), e.code), ("link_url", "host_not_allowed"));
        assert_eq!(err(&["a@x.com", "A", "", "", "grp"]).field, "group_id");
        assert_eq!(err(&["a@x.com", "A", "", "", "", "x"]).field, "coupon_code");
        assert_eq!(err(&["a@x.com", "A", "", "", "", "", "Narnia"]).field, "country");
        assert_eq!(err(&["a@x.com", "A", "", "", "", "", "", "extra"]).code, "too_many_fields");
    }

    #[test]
    fn plans_are_idempotent_by_email() {
        let cols = header(&cells(&["email", "name", "link_key", "coupon_code", "group_id", "link_url"])).unwrap();
        let r = |c: &[&str]| row(&cols, &cells(c), &hosts()).unwrap();
        let mut known = Known::default();
        known.groups.insert("grp_1".into());
        known.partners.insert(
            "old@x.com".into(),
            Existing {
                id: "pn_1".into(),
                name: "Old".into(),
                country: None,
                group_id: None,
                status: PartnerStatus::Active,
            },
        );
        known.link_keys.insert("old".into(), "pn_1".into());
        known.link_keys.insert("taken".into(), "pn_9".into());
        known.coupons.insert("old10".into(), "pn_1".into());
        known.coupons.insert("other10".into(), "pn_9".into());
        known.link_urls.insert(("pn_1".into(), "https://acme.com/a".into()));
        let mut p = Planner::new(&known);
        let new = p.plan(2, &r(&["new@x.com", "New", "new", "NEW10", "grp_1"])).unwrap();
        assert_eq!(new.partner_id, None);
        assert_eq!(new.link, Some((Some("new".into()), "https://acme.com/".into())));
        assert_eq!(new.changes, vec!["link", "coupon_code"]);
        // The same partner again: nothing left to do.
        let same = p.plan(3, &r(&["old@x.com", "Old", "old", "OLD10", "", "https://acme.com/a"])).unwrap();
        assert_eq!(
            (same.partner_id.as_deref(), same.update, same.link, same.coupon),
            (Some("pn_1"), false, None, None)
        );
        assert!(same.changes.is_empty());
        let e = p.plan(4, &r(&["NEW@x.com", "Again"])).unwrap_err();
        assert_eq!((e.code, e.message.as_str()), ("duplicate_email", "this email is already on row 2 of this file"));
        assert_eq!(p.plan(5, &r(&["c@x.com", "C", "taken"])).unwrap_err().code, "key_taken");
        assert_eq!(p.plan(6, &r(&["d@x.com", "D", "new"])).unwrap_err().code, "duplicate_link_key");
        assert_eq!(p.plan(7, &r(&["e@x.com", "E", "", "Other10"])).unwrap_err().code, "coupon_code_taken");
        assert_eq!(p.plan(7, &r(&["e@x.com", "E", "", "old10"])).unwrap_err().code, "duplicate_coupon_code");
        assert_eq!(p.plan(8, &r(&["f@x.com", "F", "", "", "grp_2"])).unwrap_err().code, "invalid_group");
        // A failed row claims nothing: its email may come again.
        assert!(p.plan(9, &r(&["c@x.com", "C"])).is_ok());
        let mut known2 = Known::default();
        known2.partners.insert(
            "old@x.com".into(),
            Existing {
                id: "pn_1".into(),
                name: "Old".into(),
                country: None,
                group_id: None,
                status: PartnerStatus::Banned,
            },
        );
        let mut p = Planner::new(&known2);
        let renamed = p.plan(2, &r(&["old@x.com", "Renamed"])).unwrap();
        assert_eq!((renamed.update, renamed.changes), (true, vec!["name"]));
        assert_eq!(Planner::new(&known2).plan(2, &r(&["old@x.com", "Old", "k"])).unwrap_err().code, "partner_banned");
    }
}
