-- Payout review (issue 17): a program in `payout_mode` "review" (in its settings JSON, no
-- schema) has its due payouts prepared as `awaiting_approval` (commissions claimed, nothing
-- sent); the merchant approves each one (then `processing`, paid as usual) or cancels it
-- (`canceled`, its commissions released).
--
-- Every row survives: `payouts` is rebuilt with the same columns and all its rows, only its
-- status CHECK gains the two statuses. No trigger reads `payouts`; `commissions.payout_id`
-- references it by name, and foreign keys are checked at the end of the migration (D1 runs it
-- as one transaction). The one-in-flight index now also covers a payout awaiting approval, so a
-- partner has at most one payout prepared or in flight, and overlapping runs cannot both claim.
PRAGMA defer_foreign_keys = true;

CREATE TABLE payouts_0010 (
  id                 TEXT PRIMARY KEY,
  program_id         TEXT NOT NULL REFERENCES programs(id),
  partner_id         TEXT NOT NULL REFERENCES partners(id),
  amount             INTEGER NOT NULL CHECK (amount >= 0),
  currency           TEXT NOT NULL,
  status             TEXT NOT NULL CHECK (status IN ('processing', 'paid', 'failed', 'awaiting_approval', 'canceled')),
  stripe_transfer_id TEXT UNIQUE,
  failure_message    TEXT,
  commission_count   INTEGER NOT NULL DEFAULT 0,
  attempts           INTEGER NOT NULL DEFAULT 0,
  created_at         INTEGER NOT NULL,
  updated_at         INTEGER NOT NULL,
  paid_at            INTEGER,
  -- 0002: transfer attempt number (its Idempotency-Key derives from it), amount Stripe reversed.
  transfer_attempt INTEGER NOT NULL DEFAULT 1,
  reversed_amount INTEGER NOT NULL DEFAULT 0
);
INSERT INTO payouts_0010 (id, program_id, partner_id, amount, currency, status, stripe_transfer_id, failure_message, commission_count, attempts, created_at, updated_at, paid_at, transfer_attempt, reversed_amount)
  SELECT id, program_id, partner_id, amount, currency, status, stripe_transfer_id, failure_message, commission_count, attempts, created_at, updated_at, paid_at, transfer_attempt, reversed_amount FROM payouts;
DROP TABLE payouts;
ALTER TABLE payouts_0010 RENAME TO payouts;
-- At most one payout prepared or in flight per partner: two overlapping cron runs cannot both claim.
CREATE UNIQUE INDEX IF NOT EXISTS payouts_one_processing ON payouts(partner_id) WHERE status IN ('processing', 'awaiting_approval');
CREATE INDEX IF NOT EXISTS payouts_partner ON payouts(partner_id, id);
CREATE INDEX IF NOT EXISTS payouts_status ON payouts(status, id);

PRAGMA defer_foreign_keys = false;
