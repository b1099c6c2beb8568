//! Links: `{domain}/{key}` -> destination. Key rules, destination rules (never an open
//! redirect), and the redirect target with `refport_id` appended.

use crate::click::{SubIds, SUB_ID_PARAMS};
use crate::error::Invalid;
use crate::weburl::{HttpUrl, ParseError};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Paths the Worker serves itself on every host: a link key may never shadow them.
pub const RESERVED_KEYS: &[&str] = &[
    "api",
    "embed",
    "dashboard",
    "portal",
    "cdn-cgi",
    "__scheduled",
    "favicon.ico",
    "robots.txt",
    "refport.js",
    "health",
    "assets",
    "static",
    "_next",
    "admin",
    "login",
    "invite",
    "invites",
    "well-known",
    ".well-known",
];

pub const MAX_KEY_LEN: usize = 64;
pub const MAX_URL_LEN: usize = 2048;
/// Length of a generated key: 62^7 ~ 3.5e12 keys per domain.
pub const GENERATED_KEY_LEN: usize = 7;

/// A link key: 1-64 of `[A-Za-z0-9_-]`, not a reserved path (case-insensitive).
pub fn parse_key(key: &str) -> Result<String, Invalid> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(Invalid::new("key", "invalid_key", format!("key must be 1 to {MAX_KEY_LEN} characters")));
    }
    if !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(Invalid::new("key", "invalid_key", "key may contain only letters, digits, '-' and '_'"));
    }
    let lower = key.to_ascii_lowercase();
    if RESERVED_KEYS.contains(&lower.as_str()) || lower.starts_with("__") {
        return Err(Invalid::new("key", "reserved_key", format!("`{key}` is reserved for Refport's own paths")));
    }
    Ok(key.to_string())
}

/// A hostname as Refport stores it: lower-case ASCII (IDNs in punycode), at least two labels,
/// labels of 1-63 letters/digits/hyphens not starting or ending with a hyphen, no port.
pub fn parse_hostname(field: &str, s: &str) -> Result<String, Invalid> {
    let h = s.trim().trim_end_matches('.').to_ascii_lowercase();
    let bad =
        || Invalid::new(field, "invalid_hostname", format!("`{s}` is not a valid hostname (like go.example.com)"));
    if h.is_empty() || h.len() > 253 || !h.contains('.') {
        return Err(bad());
    }
    for label in h.split('.') {
        if label.is_empty()
            || label.len() > 63
            || label.starts_with('-')
            || label.ends_with('-')
            || !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(bad());
        }
    }
    Ok(h)
}

/// A destination URL: absolute http(s), no credentials, host among the program's allowed hosts.
pub fn parse_destination(s: &str, allowed_hosts: &[String]) -> Result<HttpUrl, Invalid> {
    if s.len() > MAX_URL_LEN {
        return Err(Invalid::new("url", "invalid_url", format!("url must be at most {MAX_URL_LEN} characters")));
    }
    let u = match HttpUrl::parse(s) {
        Ok(u) => u,
        Err(ParseError::NotHttp) => return Err(Invalid::new("url", "invalid_url", "url must use http or https")),
        Err(e) => {
            return Err(Invalid::new("url", "invalid_url", format!("url is not a valid absolute URL ({e})")));
        }
    };
    if u.has_credentials() {
        return Err(Invalid::new("url", "invalid_url", "url must not contain credentials"));
    }
    let host = u.host();
    if !allowed_hosts.iter().any(|h| h == host) {
        return Err(Invalid::new(
            "url",
            "host_not_allowed",
            format!("`{host}` is not among the program's allowed hosts ({})", allowed_hosts.join(", ")),
        ));
    }
    Ok(u)
}

/// The redirect target: the destination with the click's sub-IDs (`sub1`..`sub3`, those it
/// carries) and `refport_id={click_id}` (when there is one) in its query, each replacing a
/// parameter of that name already there; other parameters and the fragment preserved as they
/// were. Without either, the destination as stored.
pub fn redirect_location(destination: &str, click_id: Option<&str>, subs: &SubIds) -> String {
    let mut add: Vec<(&str, String)> = Vec::new();
    for (name, v) in SUB_ID_PARAMS.iter().zip(subs) {
        if let Some(v) = v {
            add.push((name, utf8_percent_encode(v, QUERY_VALUE).to_string()));
        }
    }
    if let Some(id) = click_id {
        add.push(("refport_id", id.to_string()));
    }
    if add.is_empty() {
        return destination.to_string();
    }
    let Some(u) = parsed(destination) else {
        return destination.to_string();
    };
    let replaced = |p: &str| add.iter().any(|(n, _)| p.split_once('=').map_or(p, |(k, _)| k) == *n);
    let mut q: Vec<String> =
        u.query().unwrap_or("").split('&').filter(|p| !p.is_empty() && !replaced(p)).map(str::to_string).collect();
    q.extend(add.iter().map(|(n, v)| format!("{n}={v}")));
    u.with_query(&q.join("&"))
}

/// Destinations the thread has parsed, most recent last: a redirect serves the same few links
/// again and again, and parsing the destination was a tenth of the redirect's own work in
/// `make bench`'s profile. Parsing is a pure function of the text, so a kept parse is the parse.
const PARSED_KEPT: usize = 64;

fn parsed(destination: &str) -> Option<std::rc::Rc<HttpUrl>> {
    use std::cell::RefCell;
    use std::rc::Rc;
    thread_local! {
        static PARSED: RefCell<Vec<(String, Rc<HttpUrl>)>> = const { RefCell::new(Vec::new()) };
    }
    PARSED.with(|kept| {
        let mut kept = kept.borrow_mut();
        if let Some((_, u)) = kept.iter().rev().find(|(d, _)| d == destination) {
            return Some(u.clone());
        }
        let u = Rc::new(HttpUrl::parse(destination).ok()?);
        if kept.len() >= PARSED_KEPT {
            kept.remove(0);
        }
        kept.push((destination.to_string(), u.clone()));
        Some(u)
    })
}

/// What a sub-ID's value is escaped with in a query: everything but RFC 3986's unreserved.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `https://{domain}/{key}`
pub fn short_url(domain: &str, key: &str) -> String {
    format!("https://{domain}/{key}")
}

/// The path and the query (without `?`) of an absolute request URL as the runtime gives it
/// (`https://host/path?query#fragment`), without a URL parser: what the redirect's hot path
/// reads (the path stays percent-encoded, as the runtime sent it).
pub fn split_url(url: &str) -> (&str, Option<&str>) {
    let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
    let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
    match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts() -> Vec<String> {
        vec!["acme.com".into(), "www.acme.com".into()]
    }

    #[test]
    fn keys() {
        assert_eq!(parse_key("jane-doe_2").unwrap(), "jane-doe_2");
        assert_eq!(parse_key("api").unwrap_err().code, "reserved_key");
        assert_eq!(parse_key("API").unwrap_err().code, "reserved_key");
        assert_eq!(parse_key("dashboard").unwrap_err().code, "reserved_key");
        assert_eq!(parse_key("__x").unwrap_err().code, "reserved_key");
        assert_eq!(parse_key("").unwrap_err().code, "invalid_key");
        assert_eq!(parse_key("a/b").unwrap_err().code, "invalid_key");
        assert_eq!(parse_key("a.b").unwrap_err().code, "invalid_key");
        assert_eq!(parse_key(&"a".repeat(65)).unwrap_err().code, "invalid_key");
    }

    #[test]
    fn hostnames() {
        assert_eq!(parse_hostname("d", "Go.Acme.com").unwrap(), "go.acme.com");
        assert_eq!(split_url("https://go.acme.com/ann?gclid=1&x=2#f"), ("/ann", Some("gclid=1&x=2")));
        assert_eq!(split_url("https://go.acme.com/ann"), ("/ann", None));
        assert_eq!(split_url("https://go.acme.com"), ("/", None));
        assert_eq!(split_url("https://go.acme.com/?q"), ("/", Some("q")));
        assert_eq!(split_url("http://127.0.0.1:8787/a%20b?"), ("/a%20b", Some("")));
        assert!(parse_hostname("d", "localhost").is_err());
        assert!(parse_hostname("d", "go.acme.com:8080").is_err());
        assert!(parse_hostname("d", "-a.com").is_err());
        assert!(parse_hostname("d", "a..com").is_err());
        assert!(parse_hostname("d", "https://a.com").is_err());
    }

    #[test]
    fn destinations() {
        assert!(parse_destination("https://acme.com/pricing?a=1#x", &hosts()).is_ok());
        assert!(parse_destination("http://www.acme.com", &hosts()).is_ok());
        assert_eq!(parse_destination("https://evil.com/", &hosts()).unwrap_err().code, "host_not_allowed");
        assert_eq!(parse_destination("https://acme.com.evil.com/", &hosts()).unwrap_err().code, "host_not_allowed");
        assert_eq!(parse_destination("javascript:alert(1)", &hosts()).unwrap_err().code, "invalid_url");
        assert_eq!(parse_destination("ftp://acme.com/", &hosts()).unwrap_err().code, "invalid_url");
        assert_eq!(parse_destination("/relative", &hosts()).unwrap_err().code, "invalid_url");
        assert_eq!(parse_destination("https://u:p@acme.com/", &hosts()).unwrap_err().code, "invalid_url");
    }

    #[test]
    fn location_keeps_query_and_fragment() {
        let none: SubIds = [None, None, None];
        let loc = |d: &str, id: &str| redirect_location(d, Some(id), &none);
        assert_eq!(loc("https://acme.com/p", "clk_1"), "https://acme.com/p?refport_id=clk_1");
        assert_eq!(
            loc("https://acme.com/p?a=1&b=x%20y#frag", "clk_1"),
            "https://acme.com/p?a=1&b=x%20y&refport_id=clk_1#frag"
        );
        assert_eq!(loc("https://acme.com/?refport_id=old&a=1", "clk_2"), "https://acme.com/?a=1&refport_id=clk_2");
        assert_eq!(loc("https://acme.com/?", "clk_3"), "https://acme.com/?refport_id=clk_3");
        assert_eq!(loc("https://acme.com/?refport_idx=1", "clk_4"), "https://acme.com/?refport_idx=1&refport_id=clk_4");
    }

    #[test]
    fn location_forwards_sub_ids() {
        let subs: SubIds = [Some("tiktok".into()), None, Some("a b/é&=?#".into())];
        assert_eq!(
            redirect_location("https://acme.com/p?sub1=merchant&sub2=kept&a=1#f", Some("clk_1"), &subs),
            "https://acme.com/p?sub2=kept&a=1&sub1=tiktok&sub3=a%20b%2F%C3%A9%26%3D%3F%23&refport_id=clk_1#f"
        );
        // Not a click (a bot): the sub-IDs without a click id; nothing to add: the destination as stored.
        assert_eq!(
            redirect_location("https://acme.com/p", None, &[None, Some("x-1_2.~".into()), None]),
            "https://acme.com/p?sub2=x-1_2.~"
        );
        assert_eq!(
            redirect_location("https://acme.com/p?sub1=m", None, &[None, None, None]),
            "https://acme.com/p?sub1=m"
        );
        // What the redirect forwards is what it reads back.
        let back = crate::click::sub_ids(
            redirect_location("https://acme.com/", None, &subs).split_once('?').map(|(_, q)| q).unwrap_or(""),
        );
        assert_eq!(back, subs);
    }
}
