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
}
