-- Fraud holds (issue 14). Every column is added (existing rows keep NULL: not held, no signal,
-- no fingerprint, never reviewed), so no row changes and no money row is rewritten.

-- A commission held for the merchant by the program's fraud rules: a JSON array of rule codes
-- (`["paid_traffic","click_spam"]`), set when the commission is created `pending`; the cron never
-- approves a pending commission that has them. Kept after the merchant's decision (the audit of
-- why it was held). NULL: never held.
ALTER TABLE commissions ADD COLUMN hold_reasons TEXT CHECK (hold_reasons IS NULL OR json_valid(hold_reasons));
-- "Needs review": the held, still pending commissions of a program.
CREATE INDEX IF NOT EXISTS commissions_held ON commissions(program_id, id)
  WHERE status = 'pending' AND hold_reasons IS NOT NULL;

-- What the click that brought a customer said to the fraud rules (comma-separated rule codes:
-- paid_traffic, click_spam, banned_referrer), kept with the customer's attribution so its later
-- sales are judged on it.
ALTER TABLE customers ADD COLUMN click_signals TEXT;

-- duplicate_payout_account: the fingerprint of the bank account Stripe pays the partner's
-- connected account out to (from the account's external accounts), and when the merchant
-- approved this partner's payouts despite a shared account.
ALTER TABLE partners ADD COLUMN bank_fingerprint TEXT;
ALTER TABLE partners ADD COLUMN payout_account_approved_at INTEGER;
CREATE INDEX IF NOT EXISTS partners_bank_fingerprint ON partners(bank_fingerprint) WHERE bank_fingerprint IS NOT NULL;
