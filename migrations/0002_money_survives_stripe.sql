-- Payouts that survive real Stripe (issue 12). Adds columns and tables only: no money row is
-- rewritten, so an existing deployment upgrades with `wrangler d1 migrations apply` as is.

-- A payout's transfer attempt number: the Idempotency-Key of attempt n is derived from it
-- (attempt 1 = the payout id, what earlier versions sent). A resend after reconciliation found
-- no transfer claims the next number with a conditional UPDATE.
ALTER TABLE payouts ADD COLUMN transfer_attempt INTEGER NOT NULL DEFAULT 1;
-- What Stripe reversed of the payout's transfer (cumulative `amount_reversed`).
ALTER TABLE payouts ADD COLUMN reversed_amount INTEGER NOT NULL DEFAULT 0;

-- The partner's country (ISO 3166-1 alpha-2): cross-border partners get Stripe's `recipient`
-- service agreement. Why payouts were disabled (a Stripe refusal, a deauthorization).
ALTER TABLE partners ADD COLUMN country TEXT;
ALTER TABLE partners ADD COLUMN payouts_disabled_reason TEXT;

-- An outgoing webhook endpoint made by a program-bound key receives only that program's events.
ALTER TABLE webhook_endpoints ADD COLUMN program_id TEXT REFERENCES programs(id);

-- Approved, unclaimed commissions: answers "who is payable" per (program, partner, currency)
-- without scanning the rest of the table.
CREATE INDEX IF NOT EXISTS commissions_payable ON commissions(program_id, partner_id, currency)
  WHERE status = 'approved' AND payout_id IS NULL;

-- Platform-wide payout state: a pause after an account-wide Stripe refusal (rate limit, revoked
-- key, platform balance too low) until `until_ms`, or a `balance.available` event.
CREATE TABLE IF NOT EXISTS payout_pause (
  id         INTEGER PRIMARY KEY CHECK (id = 1),
  cause      TEXT NOT NULL,
  message    TEXT,
  until_ms   INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
