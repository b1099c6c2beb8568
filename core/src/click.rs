//! Clicks: which visits count, the attribution cookie, and what is kept of a visitor (hashes,
//! never a raw IP).

use crate::time::DAY_MS;

/// What the edge knows about a request, for deciding whether it is a click.
#[derive(Clone, Copy, Debug)]
pub struct Visit<'a> {
    pub method_is_get: bool,
    pub user_agent: Option<&'a str>,
    /// Cloudflare's verdict (`request.cf.botManagement.verifiedBot`), on plans that have it.
    pub verified_bot: Option<bool>,
}

/// Why a visit is not a click. A visit that is not one is redirected, not counted, no cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotAClick {
    /// HEAD and other methods: prefetchers and link checkers, never a person following a link.
    NotGet,
    /// No user agent at all: a script.
    NoUserAgent,
    /// Cloudflare verified it as a bot (a search engine, a monitor, a preview fetcher).
    VerifiedBot,
    /// Its user agent is on the bot list (crawlers, link-preview fetchers, HTTP libraries).
    BotList,
}

/// Whether a visit counts as a click. `on_bot_list` matches the user agent against the list of
/// known bots; the shell runs it with the npm `isbot` package's patterns (see `src/bot.rs`),
/// which tell real in-app browsers (Instagram, TikTok, LinkedIn...) from those apps' preview
/// fetchers. It is asked only when the cheaper checks have not decided.
pub fn classify(visit: Visit<'_>, on_bot_list: impl FnOnce(&str) -> bool) -> Result<(), NotAClick> {
    if !visit.method_is_get {
        return Err(NotAClick::NotGet);
    }
    let Some(ua) = visit.user_agent.map(str::trim).filter(|u| !u.is_empty()) else {
        return Err(NotAClick::NoUserAgent);
    };
    if visit.verified_bot == Some(true) {
        return Err(NotAClick::VerifiedBot);
    }
    if on_bot_list(ua) {
        return Err(NotAClick::BotList);
    }
    Ok(())
}

/// Query parameters with which ad platforms tag the clicks they bill for: Google Ads (`gclid`,
/// and `gbraid` / `wbraid` on iOS), Microsoft Ads (`msclkid`), TikTok (`ttclid`), X (`twclid`),
/// LinkedIn (`li_fat_id`). Not Meta's `fbclid`, which Facebook and Instagram also add to organic
/// (unpaid) links.
pub const AD_CLICK_PARAMS: [&str; 7] = ["gclid", "gbraid", "wbraid", "msclkid", "ttclid", "twclid", "li_fat_id"];

/// Whether a request's query string (without or with its leading `?`) carries an ad platform's
/// click id: one of [`AD_CLICK_PARAMS`], named exactly as the platforms send it (names are
/// case-sensitive, not percent-decoded), with a non-empty value.
pub fn has_ad_click_id(query: &str) -> bool {
    let query = query.strip_prefix('?').unwrap_or(query);
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    query.split('&').any(|pair| match pair.split_once('=') {
        Some((name, value)) => !value.is_empty() && AD_CLICK_PARAMS.contains(&name),
        None => false,
    })
}

/// The sub-ID query parameters a partner may tag a branded link's click with
/// (`https://go.acme.com/jane?sub1=tiktok&sub2=bio`): stored on the click, forwarded to the
/// destination under the same names, and what stats can be grouped by. Other parameters of the
/// click URL are neither stored nor forwarded.
pub const SUB_ID_PARAMS: [&str; 3] = ["sub1", "sub2", "sub3"];

/// The longest sub-ID, in characters (Unicode scalar values) after decoding.
pub const MAX_SUB_ID_CHARS: usize = 64;

/// A click's sub-IDs: `sub1`, `sub2`, `sub3`, each absent or valid ([`is_sub_id`]).
pub type SubIds = [Option<String>; 3];

/// The sub-IDs of a request's query string (without or with its leading `?`). Names are
/// case-sensitive and exact; the first occurrence of a name is the one read. A value is
/// form-decoded (`%XX` escapes, `+` as a space) and trimmed; it is kept only if it is then a
/// valid sub-ID ([`is_sub_id`]): an invalid one (empty, too long, not UTF-8, a control or
/// invisible character) is ignored, neither stored nor forwarded.
pub fn sub_ids(query: &str) -> SubIds {
    let mut out: SubIds = [None, None, None];
    let query = query.strip_prefix('?').unwrap_or(query);
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    let mut seen = [false; 3];
    for pair in query.split('&') {
        let (name, raw) = pair.split_once('=').unwrap_or((pair, ""));
        let Some(i) = SUB_ID_PARAMS.iter().position(|p| *p == name) else { continue };
        if seen[i] {
            continue;
        }
        seen[i] = true;
        out[i] = decode_sub_id(raw);
    }
    out
}

/// A form-encoded value, decoded, trimmed and checked: `None` unless it is a valid sub-ID.
fn decode_sub_id(raw: &str) -> Option<String> {
    if raw.len() > MAX_SUB_ID_CHARS * 12 {
        return None; // longer than 64 characters however they are escaped
    }
    let spaced = raw.replace('+', " ");
    let decoded = percent_encoding::percent_decode_str(&spaced).decode_utf8().ok()?;
    let v = decoded.trim();
    is_sub_id(v).then(|| v.to_string())
}

/// Whether `v` is a valid sub-ID: 1 to [`MAX_SUB_ID_CHARS`] printable characters. Any Unicode
/// letter, digit, mark, punctuation, symbol or space is printable (a campaign name may be
/// `été-2026` or `日本`); control characters (C0, DEL, C1) and the invisible format characters
/// that can disguise a value (zero-width, bidirectional overrides, the BOM) are not. A value
/// is stored as given, without surrounding whitespace (a value that is only whitespace is empty).
pub fn is_sub_id(v: &str) -> bool {
    let n = v.chars().count();
    (1..=MAX_SUB_ID_CHARS).contains(&n)
        && v.trim().len() == v.len()
        && !v.chars().any(|c| {
            c.is_control()
                || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
                    | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
        })
}

/// Days a raw click row is kept past the longest attribution window in use: room for late
/// leads (clock skew, a queue backlog), listing and support questions.
pub const RETENTION_MARGIN_DAYS: u32 = 30;

/// How long raw click rows are kept: the longest attribution window in use plus
/// [`RETENTION_MARGIN_DAYS`], or `CLICK_RETENTION_DAYS` when that is longer (a merchant may
/// keep clicks longer, never shorter than attribution needs). Rollups are kept forever.
pub fn retention_days(longest_window_days: u32, configured: Option<u32>) -> u32 {
    let floor = longest_window_days.saturating_add(RETENTION_MARGIN_DAYS);
    configured.map_or(floor, |c| c.max(floor))
}

/// The `Set-Cookie` value of the attribution cookie.
pub fn attribution_cookie(click_id: &str, window_days: u32, cookie_domain: Option<&str>) -> String {
    let max_age = window_days as i64 * (DAY_MS / 1000);
    match cookie_domain {
        Some(d) if !d.is_empty() => {
            format!("refport_id={click_id}; Max-Age={max_age}; Domain={d}; Path=/; Secure; SameSite=Lax")
        }
        _ => format!("refport_id={click_id}; Max-Age={max_age}; Path=/; Secure; SameSite=Lax"),
    }
}

/// The host of a `Referer` header, lower-case, if it is an absolute http(s) URL.
pub fn referrer_host(referer: Option<&str>) -> Option<String> {
    // Other schemes are refused by the parser.
    crate::weburl::HttpUrl::parse(referer?).ok().map(|u| u.host().to_string())
}

/// A two-letter country code from Cloudflare's `CF-IPCountry` / `request.cf.country`.
pub fn country(raw: Option<&str>) -> Option<String> {
    let c = raw?.trim();
    (c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()) && c != "XX").then(|| c.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME: &str =
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36";

    fn visit(method_is_get: bool, user_agent: Option<&str>, verified_bot: Option<bool>) -> Visit<'_> {
        Visit { method_is_get, user_agent, verified_bot }
    }

    #[test]
    fn bots() {
        let never = |_: &str| -> bool { panic!("the list is asked only when the cheap checks pass") };
        assert_eq!(classify(visit(false, Some(CHROME), None), never), Err(NotAClick::NotGet));
        assert_eq!(classify(visit(true, None, None), never), Err(NotAClick::NoUserAgent));
        assert_eq!(classify(visit(true, Some("  "), Some(false)), never), Err(NotAClick::NoUserAgent));
        assert_eq!(classify(visit(true, Some(CHROME), Some(true)), never), Err(NotAClick::VerifiedBot));
        // The list sees the trimmed user agent and decides the rest.
        let seen = std::cell::RefCell::new(String::new());
        let list = |ua: &str| {
            *seen.borrow_mut() = ua.to_string();
            ua.contains("Googlebot")
        };
        assert_eq!(classify(visit(true, Some(" Googlebot/2.1 "), Some(false)), list), Err(NotAClick::BotList));
        assert_eq!(*seen.borrow(), "Googlebot/2.1");
        assert_eq!(classify(visit(true, Some(CHROME), Some(false)), list), Ok(()));
        assert_eq!(classify(visit(true, Some(CHROME), None), list), Ok(()));
    }

    #[test]
    fn retention() {
        assert_eq!(retention_days(90, None), 120);
        assert_eq!(retention_days(90, Some(30)), 120, "never shorter than attribution needs");
        assert_eq!(retention_days(90, Some(400)), 400);
        assert_eq!(retention_days(u32::MAX, None), u32::MAX);
    }

    #[test]
    fn cookie() {
        assert_eq!(
            attribution_cookie("clk_1", 90, Some("acme.com")),
            "refport_id=clk_1; Max-Age=7776000; Domain=acme.com; Path=/; Secure; SameSite=Lax"
        );
        assert_eq!(
            attribution_cookie("clk_1", 1, None),
            "refport_id=clk_1; Max-Age=86400; Path=/; Secure; SameSite=Lax"
        );
    }

    #[test]
    fn referrer_and_country() {
        assert_eq!(
            referrer_host(Some("https://News.ycombinator.com/item?id=1")).as_deref(),
            Some("news.ycombinator.com")
        );
        assert_eq!(referrer_host(Some("android-app://x")), None);
        assert_eq!(referrer_host(Some("not a url")), None);
        assert_eq!(referrer_host(None), None);
        assert_eq!(country(Some("de")).as_deref(), Some("DE"));
        assert_eq!(country(Some("XX")), None);
        assert_eq!(country(Some("T1x")), None);
    }

    #[test]
    fn ad_click_ids() {
        for p in AD_CLICK_PARAMS {
            assert!(has_ad_click_id(&format!("{p}=abc")), "{p}");
            assert!(has_ad_click_id(&format!("?utm_source=x&{p}=Cj0K-_x&b=2")), "{p}");
            assert!(!has_ad_click_id(&format!("{p}=")), "{p}: empty value");
            assert!(!has_ad_click_id(p), "{p}: no value");
            assert!(!has_ad_click_id(&format!("{}=abc", p.to_ascii_uppercase())), "{p}: names are case-sensitive");
            assert!(!has_ad_click_id(&format!("x{p}=abc")), "{p}: a longer name");
            assert!(!has_ad_click_id(&format!("{p}x=abc")), "{p}: a longer name");
        }
        assert!(!has_ad_click_id("fbclid=IwAR0abc"), "Meta tags organic links too");
        assert!(!has_ad_click_id(""));
        assert!(!has_ad_click_id("?"));
        assert!(!has_ad_click_id("utm_medium=cpc&utm_source=google"));
        assert!(!has_ad_click_id("q=gclid%3Dx"), "a value that mentions one");
        assert!(!has_ad_click_id("a=1#gclid=x"), "a fragment is not the query");
        assert!(has_ad_click_id("gclid=a=b"));
        assert!(has_ad_click_id("&&gclid=x&"));
    }

    #[test]
    fn sub_id_params() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(sub_ids("sub1=tiktok&sub2=bio&sub3=42"), [s("tiktok"), s("bio"), s("42")]);
        assert_eq!(sub_ids("?utm_source=x&sub2=a%20b&gclid=1"), [None, s("a b"), None]);
        assert_eq!(sub_ids("sub1=a+b%2Bc"), [s("a b+c"), None, None], "form-decoded: + is a space");
        assert_eq!(sub_ids("sub1=%C3%A9t%C3%A9"), [s("été"), None, None], "UTF-8, non-ASCII printable");
        assert_eq!(sub_ids("sub1=%20%20x%20"), [s("x"), None, None], "trimmed");
        assert_eq!(sub_ids("sub1=first&sub1=second"), [s("first"), None, None], "the first occurrence");
        assert_eq!(sub_ids("sub1=&sub1=second"), [None, None, None], "the first occurrence, even invalid");
        assert_eq!(sub_ids("SUB1=x&sub4=y&sub=z&xsub1=w"), [None, None, None], "exact names only");
        assert_eq!(sub_ids("a=1#sub1=x"), [None, None, None], "a fragment is not the query");
        assert_eq!(sub_ids(""), [None, None, None]);
        // invalid: ignored
        for bad in [
            "sub1",
            "sub1=",
            "sub1=%20%20",
            "sub1=+",
            "sub1=a%00b",
            "sub1=a%0Ab",
            "sub1=%7F",
            "sub1=a%C2%85b",
            "sub1=%FF",
            "sub1=%E2%80%8Bx",
            "sub1=a%E2%80%AEb",
            "sub1=%EF%BB%BFx",
        ] {
            assert_eq!(sub_ids(bad), [None, None, None], "{bad}");
        }
        let max = "a".repeat(64);
        assert_eq!(sub_ids(&format!("sub3={max}")), [None, None, Some(max.clone())]);
        assert_eq!(sub_ids(&format!("sub3={max}a")), [None, None, None], "65 characters");
        let wide = "日".repeat(64);
        let escaped: String =
            percent_encoding::utf8_percent_encode(&wide, percent_encoding::NON_ALPHANUMERIC).to_string();
        assert_eq!(sub_ids(&format!("sub1={escaped}")), [Some(wide.clone()), None, None], "64 characters, 192 bytes");
        assert_eq!(sub_ids(&format!("sub1={escaped}%E6%97%A5")), [None, None, None]);
        assert!(is_sub_id("Black Friday / 50% off!"));
        assert!(!is_sub_id(" x"), "stored trimmed");
        assert!(!is_sub_id(""));
    }
}
