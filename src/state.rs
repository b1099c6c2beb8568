//! Every binding, variable and secret the Worker uses, in typed fields (`AppState::load`).
//! Handlers never look a binding up by name. Secrets and variables are read from `Env` once per
//! isolate: they only change with a deployment, which starts new isolates.

use std::cell::OnceCell;
use std::fmt;
use std::rc::Rc;
use worker::kv::KvStore;
use worker::{D1Database, Env, Fetcher, Result};

/// A secret's value: never printed (`Debug` shows `***`), compared only by its owners.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The Worker's secrets (`wrangler secret put`, or `.dev.vars` locally); `None` when unset.
#[derive(Clone, Debug, Default)]
pub struct Secrets {
    /// The admin API key (`REFPORT_ADMIN_KEY`): every permission, every program.
    pub admin_key: Option<Secret>,
    /// HMAC key of embed tokens (`EMBED_TOKEN_SECRET`).
    pub embed_token: Option<Secret>,
    /// Key from which outgoing webhook endpoints' signing secrets are derived (`WEBHOOK_SIGNING_KEY`).
    pub webhook_signing: Option<Secret>,
    /// Salt of the click's IP and user-agent hashes (`IP_HASH_SALT`).
    pub ip_hash_salt: Option<Secret>,
    /// Stripe API key (`STRIPE_SECRET_KEY`).
    pub stripe_key: Option<Secret>,
    /// Signing secrets of the platform Stripe webhook endpoint (`STRIPE_WEBHOOK_SECRET`,
    /// comma-separated during a rotation).
    pub stripe_webhook: Vec<Secret>,
    /// Signing secrets of the Connect Stripe webhook endpoint (`STRIPE_CONNECT_WEBHOOK_SECRET`).
    pub stripe_connect_webhook: Vec<Secret>,
    /// Bearer token of the email API (`EMAIL_API_KEY`).
    pub email_api_key: Option<Secret>,
    /// The MAC key of signed click ids, derived from `IP_HASH_SALT` once.
    click_key: Option<[u8; 32]>,
}

impl Secrets {
    /// The MAC key of signed click ids (`refport_core::click_id`), derived from `IP_HASH_SALT`;
    /// `None` when the salt is unset (click ids are then unsigned, looked up by their row).
    pub fn click_key(&self) -> Option<[u8; 32]> {
        self.click_key
    }
}

/// Plain configuration (`[vars]` in wrangler.toml).
#[derive(Clone, Debug)]
pub struct Config {
    /// `STRIPE_API_BASE`, default `https://api.stripe.com` (the tests point it at a local fake).
    pub stripe_api_base: String,
    /// `EMAIL_API_URL`; unset: no email is sent.
    pub email_api_url: Option<String>,
    /// `PAYOUT_RECONCILE_AFTER_SECONDS` (default 300): how old a payout's last transfer attempt
    /// must be before the cron looks it up by `transfer_group`. Never less than the Stripe
    /// timeout plus 3 seconds: a request still in flight could otherwise create its transfer
    /// after the lookup found none, and the resend would pay twice.
    pub reconcile_after_ms: i64,
    /// `STRIPE_TIMEOUT_SECONDS` (default 15): how long a Stripe request may take.
    pub stripe_timeout_ms: i64,
    /// `PAYOUT_PAUSE_MAX_SECONDS` (default a day): the longest pause after an account-wide
    /// Stripe refusal (tests shorten it).
    pub pause_max_ms: i64,
    /// `WORKERS_PLAN` (`free`, the default, or `paid`): the subrequests one invocation may make
    /// (`refport_core::payout::SUBREQUESTS_FREE` / `SUBREQUESTS_PAID`), which bounds what a queue
    /// consumer or the cron does per invocation.
    pub subrequest_budget: usize,
    /// `CLICK_RETENTION_DAYS`: how long raw click rows are kept. Never less than the longest
    /// attribution window in use plus a margin (see `refport_core::click::retention_days`);
    /// `None`: exactly that.
    pub click_retention_days: Option<u32>,
    /// `REFPORT_TEST_HOOKS=1` (the end-to-end tests only): enables `POST /api/v1/_test/click-batch`,
    /// which runs the clicks consumer's batch write on given clicks, so a test can deliver the
    /// same clicks twice as an at-least-once queue may. Admin key only; off unless set.
    pub test_hooks: bool,
}

pub struct AppState {
    pub db: D1Database,
    /// KV namespace of resolved links (`LINKS`).
    pub links: KvStore,
    pub secrets: Rc<Secrets>,
    pub config: Rc<Config>,
    env: Env,
}

/// A secret or, in local dev, a `.dev.vars` entry (which wrangler exposes as a var); empty is unset.
fn read(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .map(|s| s.to_string())
        .or_else(|_| env.var(name).map(|v| v.to_string()))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn secret(env: &Env, name: &str) -> Option<Secret> {
    read(env, name).map(Secret)
}

/// A comma-separated list of secrets (two during a rotation).
fn secret_list(env: &Env, name: &str) -> Vec<Secret> {
    read(env, name)
        .map(|s| s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(|p| Secret(p.to_string())).collect())
        .unwrap_or_default()
}

thread_local! {
    /// The isolate's secrets and variables, read on first use.
    static SETTINGS: OnceCell<(Rc<Secrets>, Rc<Config>)> = const { OnceCell::new() };
    /// Whether the `ANALYTICS` binding exists, learnt on first use (bindings only change with a
    /// deployment): an unbound name costs an error object per lookup.
    static ANALYTICS_BOUND: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
}

/// The isolate's secrets and variables (read from `env` once): what a path that needs no
/// binding (a warm redirect) uses instead of a whole [`AppState`].
pub fn settings(env: &Env) -> (Rc<Secrets>, Rc<Config>) {
    SETTINGS.with(|cell| cell.get_or_init(|| read_settings(env)).clone())
}

/// The optional Workers Analytics Engine dataset (`ANALYTICS`); `None` when not bound.
pub fn analytics(env: &Env) -> Option<worker::AnalyticsEngineDataset> {
    if ANALYTICS_BOUND.with(|b| b.get()) == Some(false) {
        return None;
    }
    // An unbound name is `undefined`, which `get_binding` answers with an error.
    let found = env.analytics_engine("ANALYTICS").ok();
    ANALYTICS_BOUND.with(|b| b.set(Some(found.is_some())));
    found
}

/// Runs `work` with a fresh state after the response is sent (`ctx.wait_until`).
pub fn background<F, Fut>(env: &Env, ctx: &worker::Context, work: F)
where
    F: FnOnce(AppState) -> Fut + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let env = env.clone();
    ctx.wait_until(async move {
        match AppState::load(&env) {
            Ok(state) => work(state).await,
            Err(e) => worker::console_error!("background work: {e}"),
        }
    });
}

fn read_settings(env: &Env) -> (Rc<Secrets>, Rc<Config>) {
    let seconds =
        |name: &str, max: i64| read(env, name).and_then(|v| v.parse::<i64>().ok()).map(|s| s.clamp(0, max) * 1000);
    let stripe_timeout_ms = seconds("STRIPE_TIMEOUT_SECONDS", 60).unwrap_or(15_000).max(1000);
    let ip_hash_salt = secret(env, "IP_HASH_SALT");
    let secrets = Secrets {
        admin_key: secret(env, "REFPORT_ADMIN_KEY"),
        embed_token: secret(env, "EMBED_TOKEN_SECRET"),
        webhook_signing: secret(env, "WEBHOOK_SIGNING_KEY"),
        click_key: ip_hash_salt.as_ref().map(|s| refport_core::click_id::derive_key(s.bytes())),
        ip_hash_salt,
        stripe_key: secret(env, "STRIPE_SECRET_KEY"),
        stripe_webhook: secret_list(env, "STRIPE_WEBHOOK_SECRET"),
        stripe_connect_webhook: secret_list(env, "STRIPE_CONNECT_WEBHOOK_SECRET"),
        email_api_key: secret(env, "EMAIL_API_KEY"),
    };
    let config = Config {
        stripe_api_base: read(env, "STRIPE_API_BASE").unwrap_or_else(|| "https://api.stripe.com".into()),
        email_api_url: read(env, "EMAIL_API_URL"),
        reconcile_after_ms: seconds("PAYOUT_RECONCILE_AFTER_SECONDS", 86_400)
            .unwrap_or(refport_core::transfer::RECONCILE_AFTER_MS)
            .max(stripe_timeout_ms + 3000),
        stripe_timeout_ms,
        pause_max_ms: seconds("PAYOUT_PAUSE_MAX_SECONDS", 86_400).unwrap_or(86_400_000),
        subrequest_budget: match read(env, "WORKERS_PLAN").as_deref() {
            Some("paid") => refport_core::payout::SUBREQUESTS_PAID,
            _ => refport_core::payout::SUBREQUESTS_FREE,
        },
        click_retention_days: read(env, "CLICK_RETENTION_DAYS").and_then(|v| v.parse().ok()),
        test_hooks: read(env, "REFPORT_TEST_HOOKS").as_deref() == Some("1"),
    };
    (Rc::new(secrets), Rc::new(config))
}

impl AppState {
    pub fn load(env: &Env) -> Result<AppState> {
        let (secrets, config) = settings(env);
        Ok(AppState { db: env.d1("DB")?, links: env.kv("LINKS")?, secrets, config, env: env.clone() })
    }

    /// The static assets (`ASSETS`): pages, bundles and the OpenAPI document.
    pub fn assets(&self) -> Result<Fetcher> {
        self.env.assets("ASSETS")
    }

    /// The clicks queue (`CLICKS`): the redirect's producer.
    pub fn clicks_queue(&self) -> Result<worker::Queue> {
        self.env.queue("CLICKS")
    }

    /// The payouts queue (`PAYOUTS`): the cron's producer.
    pub fn payouts_queue(&self) -> Result<worker::Queue> {
        self.env.queue("PAYOUTS")
    }

    /// The optional Workers Analytics Engine dataset (`ANALYTICS`); `None` when not bound.
    pub fn analytics(&self) -> Option<worker::AnalyticsEngineDataset> {
        analytics(&self.env)
    }

    /// Runs `work` with a fresh state after the response is sent (`ctx.wait_until`).
    pub fn in_background<F, Fut>(&self, ctx: &worker::Context, work: F)
    where
        F: FnOnce(AppState) -> Fut + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        background(&self.env, ctx, work)
    }
}

/// Milliseconds since the epoch, UTC, from the JS clock (SystemTime panics on wasm32).
pub fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

/// The platform's random source failed: whatever needed the bytes must not be built.
#[derive(Debug, Clone, Copy)]
pub struct RandomUnavailable;

impl fmt::Display for RandomUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the random source (crypto.getRandomValues) failed")
    }
}

impl From<RandomUnavailable> for worker::Error {
    fn from(e: RandomUnavailable) -> Self {
        worker::Error::RustError(e.to_string())
    }
}

/// Cryptographically random bytes (crypto.getRandomValues via getrandom). Fails closed: an
/// error, never zeros, so no id, token or key is ever built from a failed source.
pub fn random<const N: usize>() -> std::result::Result<[u8; N], RandomUnavailable> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|_| RandomUnavailable)?;
    Ok(b)
}

/// A new prefixed, time-ordered id (`clk_...`), or an error if the random source failed.
pub fn new_id(prefix: &str, now: i64) -> std::result::Result<String, RandomUnavailable> {
    Ok(refport_core::ids::new_id(prefix, now, random::<10>()?))
}
