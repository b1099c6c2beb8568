//! The lists behind the email fraud rules (`refport_core::fraud::EmailFacts`): free-mail
//! providers and disposable-mail domains from npm packages, bundled by `src/email_lists.js` (the
//! lists stay out of the wasm; V8 holds them as Sets, built on first use).

use refport_core::fraud::EmailFacts;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/src/email_lists.js")]
extern "C" {
    #[wasm_bindgen(js_name = isFreeMailDomain)]
    fn is_free_mail_domain(domain: &str) -> bool;
    #[wasm_bindgen(js_name = isDisposableDomain)]
    fn is_disposable_domain(domain: &str) -> bool;
}

/// What the lists say about `email`'s domain (and its parents).
pub fn facts(email: Option<&str>) -> EmailFacts {
    EmailFacts::of(email, is_free_mail_domain, is_disposable_domain)
}
