//! The clicks queue's message format. Cloudflare Queues bills every 64 KB of a message written,
//! read and deleted as one operation each (<https://developers.cloudflare.com/queues/platform/pricing/>;
//! the Workers Free plan includes 10,000 operations a day): one message per click spent three
//! operations on every click, so a free-plan deployment ran out after 3,333 clicks a day. A
//! message now carries every click of an isolate's flush that fits in one 64 KB unit:
//! `{"clicks":[click, ...]}` as JSON text, each click the object the redirect recorded. Messages
//! of the versions before (one click object each) are still read, so a deployment upgrades with
//! clicks in flight.

use serde_json::Value;

/// The most clicks in one message: an isolate sends at most this many per flush.
pub const MAX_CLICKS_PER_MESSAGE: usize = 100;

/// `max_batch_size` of the clicks consumer (wrangler.toml): messages per consumer invocation.
pub const CONSUMER_BATCH_MESSAGES: usize = 40;

/// The most clicks the consumer writes in one D1 batch: the size of a consumer batch before
/// clicks were packed, so a chunk holds the isolate's event loop no longer than a batch did then
/// (the redirects the isolate serves meanwhile wait for it).
pub const CLICKS_PER_WRITE: usize = 100;

/// D1 batches one consumer invocation makes at most: within the free plan's 50 subrequests
/// (`crate::payout::SUBREQUESTS_FREE`).
pub const MAX_WRITES_PER_INVOCATION: usize = CONSUMER_BATCH_MESSAGES * MAX_CLICKS_PER_MESSAGE / CLICKS_PER_WRITE;

/// The largest message text (bytes): one billing unit of 64 KB, less room for the message's
/// metadata (content type, id, timestamps).
pub const MESSAGE_BYTES: usize = 63 * 1024;

const OPEN: &str = "{\"clicks\":[";
const CLOSE: &str = "]}";

/// The messages for clicks already serialized as JSON objects, in order: as many clicks per
/// message as fit in `MESSAGE_BYTES`, at most `MAX_CLICKS_PER_MESSAGE` (a click larger than
/// that alone, still one message).
pub fn pack(clicks: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut count = 0;
    for c in clicks {
        let full = count == MAX_CLICKS_PER_MESSAGE || current.len() + 1 + c.len() + CLOSE.len() > MESSAGE_BYTES;
        if !current.is_empty() && full {
            current.push_str(CLOSE);
            out.push(std::mem::take(&mut current));
            count = 0;
        }
        count += 1;
        if current.is_empty() {
            current.push_str(OPEN);
        } else {
            current.push(',');
        }
        current.push_str(c);
    }
    if !current.is_empty() {
        current.push_str(CLOSE);
        out.push(current);
    }
    out
}

/// The clicks in a message's body: a packed message's `clicks`, or the body itself (one click,
/// the format before). Whether each is a valid click is the reader's question.
pub fn unpack(body: Value) -> Vec<Value> {
    match body {
        Value::Object(mut m) if !m.contains_key("id") => match m.remove("clicks") {
            Some(Value::Array(clicks)) => clicks,
            _ => Vec::new(),
        },
        one => vec![one],
    }
}

/// `unpack` for a message sent as text: unreadable text holds no click.
pub fn unpack_text(text: &str) -> Vec<Value> {
    serde_json::from_slice(text.as_bytes()).map(unpack).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn click(i: usize, pad: usize) -> Value {
        json!({"id": format!("clk_{i}"), "program_id": "prg_1", "partner_id": "pn_1", "link_id": "lnk_1",
               "at": 1_700_000_000_000i64 + i as i64, "country": null, "referrer_host": "x".repeat(pad)})
    }

    #[test]
    fn the_format_before_is_one_click_per_message() {
        let one = click(1, 3);
        assert_eq!(unpack(one.clone()), vec![one.clone()]);
        assert_eq!(unpack_text(&one.to_string()), vec![one]);
        assert!(unpack_text("not json").is_empty());
        assert!(unpack(json!({"clicks": "nope"})).is_empty());
        assert_eq!(unpack(json!("a string")), vec![json!("a string")], "the reader refuses it as a click");
    }

    #[test]
    fn a_flush_of_typical_clicks_is_one_message() {
        let clicks: Vec<String> = (0..250).map(|i| click(i, 40).to_string()).collect();
        let msgs = pack(&clicks[..100]);
        assert_eq!(msgs.len(), 1);
        assert_eq!(unpack_text(&msgs[0]).len(), 100);
        let counts: Vec<usize> = pack(&clicks).iter().map(|m| unpack_text(m).len()).collect();
        assert_eq!(counts, [100, 100, 50]);
        assert!(pack(&[]).is_empty());
    }

    #[test]
    fn a_consumer_invocation_stays_within_the_free_plan() {
        assert!(MAX_WRITES_PER_INVOCATION < crate::payout::SUBREQUESTS_FREE);
        assert_eq!(crate::wrangler_toml::consumer_value("refport-clicks", "max_batch_size"), CONSUMER_BATCH_MESSAGES);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Every click arrives once, in order; no message passes the billing unit unless it
        /// holds a single click that alone does.
        #[test]
        fn packing_loses_and_reorders_nothing(pads in prop::collection::vec(prop_oneof![0usize..300, 0usize..30_000], 0..250)) {
            let clicks: Vec<Value> = pads.iter().enumerate().map(|(i, p)| click(i, *p)).collect();
            let texts: Vec<String> = clicks.iter().map(Value::to_string).collect();
            let msgs = pack(&texts);
            let mut back = Vec::new();
            for m in &msgs {
                let got = unpack_text(m);
                prop_assert!(m.len() <= MESSAGE_BYTES || got.len() == 1, "{} bytes, {} clicks", m.len(), got.len());
                prop_assert!(got.len() <= MAX_CLICKS_PER_MESSAGE);
                prop_assert!(!got.is_empty());
                back.extend(got);
            }
            prop_assert_eq!(back, clicks);
            // Greedy: a message ends full, by count or because the next click did not fit.
            for w in msgs.windows(2) {
                let (n, next) = (unpack_text(&w[0]).len(), unpack_text(&w[1])[0].to_string());
                prop_assert!(n == MAX_CLICKS_PER_MESSAGE || w[0].len() + 1 + next.len() > MESSAGE_BYTES);
            }
        }
    }
}
