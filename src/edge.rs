//! The redirect's reads of the request and its 302, one call into `src/edge.js` each: a header
//! read from Rust is a call across the wasm boundary with its strings copied both ways, and the
//! redirect's seven reads and four header writes were most of its time outside the wasm. The
//! values arrive as one string, a value per line (the format is documented in `edge.js`), and
//! are parsed here into types at once. The bot filter's outside sources are read here too: the
//! npm `isbot` package's patterns (bundled at build time, run by V8's regex engine) and
//! Cloudflare's own verdict where the zone's plan has Bot Management.

use wasm_bindgen::prelude::*;
use worker::web_sys;

#[wasm_bindgen(module = "/src/edge.js")]
extern "C" {
    #[wasm_bindgen(js_name = requestTarget)]
    fn request_target(request: &web_sys::Request) -> String;
    #[wasm_bindgen(js_name = requestVisit)]
    fn request_visit(request: &web_sys::Request) -> String;
    #[wasm_bindgen(js_name = redirectResponse)]
    fn redirect_response(location: &str, cookie: &str) -> JsValue;
}

/// The request's method as the redirect tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    /// Anything else, including methods workers-rs does not know (QUERY, TRACE...).
    Other,
}

/// What decides whether a request is a redirect, and of which link.
pub struct Target {
    pub method: Method,
    /// The URL as the runtime serialized it.
    pub url: String,
    /// The `Host` header, lowercase, without its port; empty when missing.
    pub host: String,
}

impl Target {
    pub fn read(request: &web_sys::Request) -> Target {
        let text = request_target(request);
        let [method, url, host] = fields(&text);
        Target {
            method: match method {
                "GET" => Method::Get,
                "HEAD" => Method::Head,
                _ => Method::Other,
            },
            url: url.to_string(),
            host: host.split(':').next().unwrap_or("").to_ascii_lowercase(),
        }
    }

    /// The URL's path (`/` at least), without query or fragment.
    pub fn path(&self) -> &str {
        refport_core::link::split_url(&self.url).0
    }

    /// The URL's query, without its `?`.
    pub fn query(&self) -> Option<&str> {
        refport_core::link::split_url(&self.url).1
    }
}

/// The visit behind a redirect: who asked, from where, and the bot filter's outside verdicts.
/// An empty header reads as a missing one.
pub struct Visit {
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub referer: Option<String>,
    /// `request.cf.country`, else the `CF-IPCountry` header; not yet checked as a country code.
    pub country: Option<String>,
    /// `request.cf.botManagement.verifiedBot`: absent without Bot Management (and locally).
    pub verified_bot: Option<bool>,
    /// Whether the trimmed user agent is on the `isbot` list.
    pub on_bot_list: bool,
}

impl Visit {
    pub fn read(request: &web_sys::Request) -> Visit {
        let text = request_visit(request);
        let [ua, ip, referer, country, verified, bot] = fields(&text);
        Visit {
            user_agent: present(ua),
            ip: present(ip),
            referer: present(referer),
            country: present(country),
            verified_bot: match verified {
                "1" => Some(true),
                "0" => Some(false),
                _ => None,
            },
            on_bot_list: bot == "1",
        }
    }
}

/// The redirect's 302 to `location`, with the attribution cookie when the visit is a click.
pub fn redirect(location: &str, cookie: Option<&str>) -> JsValue {
    redirect_response(location, cookie.unwrap_or(""))
}

/// The first `N` lines of `text`; missing ones are empty.
fn fields<const N: usize>(text: &str) -> [&str; N] {
    let mut lines = text.split('\n');
    std::array::from_fn(|_| lines.next().unwrap_or(""))
}

fn present(v: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.to_string())
}
