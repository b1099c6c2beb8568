//! Refport's domain core: every business rule of the product, with no I/O, no clock and no
//! `worker` types. The Worker shell (`src/`) loads data, calls into this crate to decide, and
//! writes the result. Everything here is synchronous and takes `now` (UTC milliseconds since
//! the Unix epoch) and secrets as arguments, so it is unit-tested natively with `cargo test`.
//!
//! Where is X decided?
//! - a commission amount:            [`rules`]
//! - which click gets the credit:    [`attribution`]
//! - status changes, refunds:        [`commission`]
//! - what a lead / sale / refund writes (parse, then decide from the loaded facts): [`conversion`]
//! - who gets paid, and when:        [`payout`]
//! - click ids a lead can verify without a row: [`click_id`]
//! - embed tokens, webhook signatures, key hashing: [`token`], [`crypto`]
//! - program / link / partner input: [`program`], [`link`], [`partner`]
//! - parsing http(s) URLs:           [`weburl`]
//! - what a Stripe event tracks:     [`stripe_tracking`]
//! - coupon codes and what they attribute: [`coupon`]
//! - CSV (exports, the partner import) and what an import row does: [`csv`], [`import`]

pub mod attribution;
pub mod click;
pub mod click_id;
pub mod click_message;
pub mod commission;
pub mod conversion;
pub mod coupon;
pub mod crypto;
pub mod csv;
pub mod error;
pub mod fraud;
pub mod group;
pub mod ids;
pub mod import;
pub mod link;
pub mod modifiers;
pub mod money;
pub mod partner;
pub mod payout;
pub mod program;
pub mod rules;
pub mod stats;
pub mod stripe_tracking;
pub mod time;
pub mod token;
pub mod transfer;
pub mod weburl;
pub mod wire;

/// For tests that check wrangler.toml against the constants its numbers come from.
#[cfg(test)]
pub(crate) mod wrangler_toml {
    /// A number in the `[[queues.consumers]]` block of `queue`.
    pub fn consumer_value(queue: &str, key: &str) -> usize {
        let toml = include_str!("../../wrangler.toml");
        let block = toml
            .split("[[queues.consumers]]")
            .skip(1)
            .find(|s| s.contains(&format!("queue = \"{queue}\"")))
            .unwrap_or_else(|| panic!("no {queue} consumer in wrangler.toml"));
        let line = block.lines().find(|l| l.trim_start().starts_with(key)).unwrap_or_else(|| panic!("{key}"));
        line.split('=').nth(1).and_then(|v| v.split('#').next()).unwrap().trim().parse().unwrap()
    }
}
