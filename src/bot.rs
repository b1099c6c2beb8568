//! The bot filter's outside sources, for `refport_core::click::classify`: the npm `isbot`
//! package's pattern list (`src/bot_filter.js`, bundled at build time and run by V8's regex
//! engine) and Cloudflare's own verdict where the zone's plan has Bot Management.

use wasm_bindgen::prelude::*;
use worker::Request;

#[wasm_bindgen(module = "/src/bot_filter.js")]
extern "C" {
    #[wasm_bindgen(js_name = userAgentIsBot)]
    fn user_agent_is_bot(user_agent: &str) -> bool;
}

/// Whether the user agent is on the bot list.
pub fn on_bot_list(user_agent: &str) -> bool {
    user_agent_is_bot(user_agent)
}

/// `request.cf.botManagement.verifiedBot`: absent without Bot Management (and locally).
pub fn verified_bot(req: &Request) -> Option<bool> {
    let bm = req.cf()?.bot_management()?;
    js_sys::Reflect::get(bm.as_ref(), &JsValue::from_str("verifiedBot")).ok()?.as_bool()
}
