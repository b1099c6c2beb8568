//! Baseline W: the floor of a Rust Worker. `fetch` is a plain `#[wasm_bindgen]` function, the
//! same entry Refport's redirect uses (no future, no promise), that builds a constant 302 through
//! web-sys: one call from JavaScript into the wasm and back out to construct the response. No
//! Rust Worker can answer a request with less, so Refport's ratio to baseline L cannot exceed
//! W's (`bench/README.md`).

use worker::wasm_bindgen::{self, prelude::wasm_bindgen, JsValue};
use worker::web_sys::{Headers, Response, ResponseInit};
use worker::{worker_sys, Env};

#[wasm_bindgen]
pub fn fetch(_req: worker::web_sys::Request, _env: Env, _ctx: worker_sys::Context) -> JsValue {
    let headers = Headers::new().ok();
    if let Some(h) = &headers {
        let _ = h.set("location", "https://bench.test/landing");
    }
    let init = ResponseInit::new();
    init.set_status(302);
    if let Some(h) = &headers {
        init.set_headers(h);
    }
    Response::new_with_opt_str_and_init(None, &init).map(JsValue::from).unwrap_or(JsValue::NULL)
}
