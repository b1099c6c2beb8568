//! Clicks: which visits count, the attribution cookie, and what is kept of a visitor (hashes,
//! never a raw IP).

use crate::time::DAY_MS;

/// User-agent fragments of crawlers, link-preview fetchers and HTTP libraries. Matched
/// case-insensitively. A request whose UA matches is redirected but not counted and gets no cookie.
const BOT_MARKERS: &[&str] = &[
    "bot",
    "crawler",
    "spider",
    "slurp",
    "preview",
    "facebookexternalhit",
    "facebookcatalog",
    "embedly",
    "quora link",
    "outbrain",
    "pinterest",
    "vkshare",
    "w3c_validator",
    "whatsapp",
    "telegram",
    "skype",
    "slack",
    "discord",
    "linkedin",
    "twitter",
    "headlesschrome",
    "lighthouse",
    "pingdom",
    "uptime",
    "monitor",
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "go-http-client",
    "okhttp",
    "axios/",
    "node-fetch",
    "java/",
    "libwww",
    "httpclient",
    "scrapy",
    "ahrefs",
    "semrush",
    "mj12",
    "petalsearch",
    "yandex",
    "baidu",
    "bingpreview",
    "google-inspectiontool",
    "apis-google",
    "feedfetcher",
    "mediapartners",
    "iframely",
    "metauri",
    "snap url preview",
];

/// Whether a request should not count as a click: HEAD (and other non-GET) requests, missing
/// user agents, and known bots / preview fetchers / scripted clients.
pub fn is_bot(method_is_get: bool, user_agent: Option<&str>) -> bool {
    if !method_is_get {
        return true;
    }
    let Some(ua) = user_agent.map(str::trim).filter(|u| !u.is_empty()) else {
        return true;
    };
    let ua = ua.to_ascii_lowercase();
    BOT_MARKERS.iter().any(|m| ua.contains(m))
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

    #[test]
    fn bots() {
        assert!(!is_bot(true, Some(CHROME)));
        assert!(is_bot(false, Some(CHROME)), "HEAD is never a click");
        assert!(is_bot(true, None));
        assert!(is_bot(true, Some("  ")));
        for ua in [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "facebookexternalhit/1.1",
            "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
            "Twitterbot/1.0",
            "WhatsApp/2.23.20.0",
            "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
            "TelegramBot (like TwitterBot)",
            "LinkedInBot/1.0",
            "curl/8.5.0",
            "python-requests/2.32.3",
        ] {
            assert!(is_bot(true, Some(ua)), "{ua}");
        }
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
}
