//! Every binding and secret the Worker uses, read from `Env` in one place.

use worker::{D1Database, Env, Result};

pub struct AppState {
    pub env: Env,
    pub db: D1Database,
}

impl AppState {
    pub fn load(env: &Env) -> Result<AppState> {
        Ok(AppState { db: env.d1("DB")?, env: env.clone() })
    }

    pub fn kv(&self) -> Result<worker::kv::KvStore> {
        self.env.kv("LINKS")
    }

    /// A secret (or, in local dev, a `.dev.vars` entry); `None` when unset or empty.
    pub fn secret(&self, name: &str) -> Option<String> {
        self.env
            .secret(name)
            .map(|s| s.to_string())
            .or_else(|_| self.env.var(name).map(|v| v.to_string()))
            .ok()
            .filter(|s| !s.is_empty())
    }
}

/// Milliseconds since the epoch, UTC, from the JS clock (SystemTime panics on wasm32).
pub fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

/// Cryptographically random bytes (crypto.getRandomValues via getrandom).
pub fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // getrandom on wasm32 + wasm_js only fails if crypto is missing, which workerd always has.
    if getrandom::fill(&mut b).is_err() {
        worker::console_error!("getrandom failed");
    }
    b
}

pub fn new_id(prefix: &str, now: i64) -> String {
    refport_core::ids::new_id(prefix, now, random::<10>())
}
