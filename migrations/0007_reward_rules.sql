-- Rewards the way real programs are run (issue 16): partner groups, per-partner minimum payout,
-- reward modifiers and caps (in the rewards JSON, no schema), coupon-free manual commissions
-- (`kind = 'bonus'`), the product of a sale and the country of a customer's click.
--
-- Every row survives: `commissions` is rebuilt with the same columns and all its rows (its kind
-- CHECK gains 'bonus', a `description` column is added last); the two rollup triggers that read
-- it are dropped first and created again unchanged (SQLite checks triggers on a table rename).
-- Foreign keys are checked at the end of the migration (D1 runs it as one transaction).
PRAGMA defer_foreign_keys = true;

-- 1. Partner groups: terms shared by a set of partners (partner override > group > program).
CREATE TABLE IF NOT EXISTS partner_groups (
  id          TEXT PRIMARY KEY,
  program_id  TEXT NOT NULL REFERENCES programs(id),
  name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  rewards     TEXT CHECK (rewards IS NULL OR json_valid(rewards)),
  min_payout  INTEGER CHECK (min_payout IS NULL OR min_payout >= 0),
  hold_days   INTEGER CHECK (hold_days IS NULL OR hold_days >= 0),
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS partner_groups_name ON partner_groups(program_id, lower(name));
CREATE INDEX IF NOT EXISTS partner_groups_program ON partner_groups(program_id, id);

ALTER TABLE partners ADD COLUMN group_id TEXT REFERENCES partner_groups(id);
ALTER TABLE partners ADD COLUMN min_payout INTEGER CHECK (min_payout IS NULL OR min_payout >= 0);
CREATE INDEX IF NOT EXISTS partners_group ON partners(group_id) WHERE group_id IS NOT NULL;

-- 2. What reward modifiers compare: the country of the click that brought the customer, the
--    product of a sale.
ALTER TABLE customers ADD COLUMN country TEXT;
ALTER TABLE events ADD COLUMN product_id TEXT;

-- 3. Commissions: a `bonus` kind (a manual commission, with its description).
DROP TRIGGER IF EXISTS daily_stats_commission_change;
DROP TRIGGER IF EXISTS daily_stats_commission_change_undo;

CREATE TABLE commissions_0007 (
  id              TEXT PRIMARY KEY,
  program_id      TEXT NOT NULL REFERENCES programs(id),
  partner_id      TEXT NOT NULL REFERENCES partners(id),
  customer_id     TEXT REFERENCES customers(id),
  event_id        TEXT REFERENCES events(id),
  parent_id       TEXT REFERENCES commissions(id),
  kind            TEXT NOT NULL CHECK (kind IN ('lead', 'sale', 'clawback', 'bonus')),
  invoice_id      TEXT,
  sale_amount     INTEGER NOT NULL DEFAULT 0 CHECK (sale_amount >= 0),
  original_amount INTEGER NOT NULL,
  amount          INTEGER NOT NULL,
  currency        TEXT NOT NULL,
  status          TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'paid', 'rejected')),
  reason          TEXT,
  refunded_amount INTEGER NOT NULL DEFAULT 0 CHECK (refunded_amount >= 0 AND refunded_amount <= sale_amount),
  clawed_back     INTEGER NOT NULL DEFAULT 0 CHECK (clawed_back >= 0),
  payout_id       TEXT REFERENCES payouts(id),
  created_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL,
  approved_at     INTEGER,
  paid_at         INTEGER,
  -- 0004: the fraud rules that held the commission for the merchant (JSON array of rule codes).
  hold_reasons    TEXT CHECK (hold_reasons IS NULL OR json_valid(hold_reasons)),
  -- 0007: a manual commission's description, and the Idempotency-Key it was created with.
  description     TEXT,
  idempotency_key TEXT,
  CHECK ((kind = 'clawback' AND amount <= 0 AND parent_id IS NOT NULL) OR (kind != 'clawback' AND amount >= 0)),
  CHECK (status != 'rejected' OR reason IS NOT NULL),
  CHECK (status != 'paid' OR payout_id IS NOT NULL)
);
INSERT INTO commissions_0007 (id, program_id, partner_id, customer_id, event_id, parent_id, kind, invoice_id, sale_amount, original_amount, amount, currency, status, reason, refunded_amount, clawed_back, payout_id, created_at, updated_at, approved_at, paid_at, hold_reasons)
  SELECT id, program_id, partner_id, customer_id, event_id, parent_id, kind, invoice_id, sale_amount, original_amount, amount, currency, status, reason, refunded_amount, clawed_back, payout_id, created_at, updated_at, approved_at, paid_at, hold_reasons FROM commissions;
DROP TABLE commissions;
ALTER TABLE commissions_0007 RENAME TO commissions;
-- One commission per event, ever.
CREATE UNIQUE INDEX IF NOT EXISTS commissions_event_once ON commissions(event_id) WHERE kind != 'clawback';
CREATE INDEX IF NOT EXISTS commissions_program ON commissions(program_id, id);
CREATE INDEX IF NOT EXISTS commissions_partner ON commissions(partner_id, status);
CREATE INDEX IF NOT EXISTS commissions_status ON commissions(status, created_at);
CREATE INDEX IF NOT EXISTS commissions_payout ON commissions(payout_id);
CREATE INDEX IF NOT EXISTS commissions_held ON commissions(program_id, id) WHERE status = 'pending' AND hold_reasons IS NOT NULL;
-- Approved, unclaimed commissions: "who is payable" per (program, partner, currency).
CREATE INDEX IF NOT EXISTS commissions_payable ON commissions(program_id, partner_id, currency)
  WHERE status = 'approved' AND payout_id IS NULL;
CREATE INDEX IF NOT EXISTS commissions_invoice ON commissions(program_id, invoice_id);
-- What one customer earned its partner (the sale reward's caps).
CREATE INDEX IF NOT EXISTS commissions_customer ON commissions(customer_id, partner_id) WHERE customer_id IS NOT NULL;
-- A manual commission is created once per Idempotency-Key.
CREATE UNIQUE INDEX IF NOT EXISTS commissions_idempotency ON commissions(program_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

CREATE TRIGGER IF NOT EXISTS daily_stats_commission_change AFTER INSERT ON commission_changes
BEGIN
  INSERT INTO daily_stats (program_id, partner_id, link_id, day, currency, pending, approved, paid, rejected)
    SELECT c.program_id, c.partner_id,
      COALESCE((SELECT e.link_id FROM events e WHERE e.id = COALESCE(c.event_id, (SELECT pc.event_id FROM commissions pc WHERE pc.id = c.parent_id))), ''),
      c.created_at / 86400000, c.currency,
      (CASE WHEN NEW.to_status = 'pending' THEN NEW.amount_after ELSE 0 END) - (CASE WHEN NEW.from_status = 'pending' THEN COALESCE(NEW.amount_before, 0) ELSE 0 END),
      (CASE WHEN NEW.to_status = 'approved' THEN NEW.amount_after ELSE 0 END) - (CASE WHEN NEW.from_status = 'approved' THEN COALESCE(NEW.amount_before, 0) ELSE 0 END),
      (CASE WHEN NEW.to_status = 'paid' THEN NEW.amount_after ELSE 0 END) - (CASE WHEN NEW.from_status = 'paid' THEN COALESCE(NEW.amount_before, 0) ELSE 0 END),
      (CASE WHEN NEW.to_status = 'rejected' THEN NEW.amount_after ELSE 0 END) - (CASE WHEN NEW.from_status = 'rejected' THEN COALESCE(NEW.amount_before, 0) ELSE 0 END)
    FROM commissions c WHERE c.id = NEW.commission_id
    ON CONFLICT DO UPDATE SET pending = pending + excluded.pending, approved = approved + excluded.approved,
      paid = paid + excluded.paid, rejected = rejected + excluded.rejected;
END;

-- A change taken back (a first-sale-only commission removed with its trail) is undone.
CREATE TRIGGER IF NOT EXISTS daily_stats_commission_change_undo AFTER DELETE ON commission_changes
BEGIN
  INSERT INTO daily_stats (program_id, partner_id, link_id, day, currency, pending, approved, paid, rejected)
    SELECT c.program_id, c.partner_id,
      COALESCE((SELECT e.link_id FROM events e WHERE e.id = COALESCE(c.event_id, (SELECT pc.event_id FROM commissions pc WHERE pc.id = c.parent_id))), ''),
      c.created_at / 86400000, c.currency,
      (CASE WHEN OLD.from_status = 'pending' THEN COALESCE(OLD.amount_before, 0) ELSE 0 END) - (CASE WHEN OLD.to_status = 'pending' THEN OLD.amount_after ELSE 0 END),
      (CASE WHEN OLD.from_status = 'approved' THEN COALESCE(OLD.amount_before, 0) ELSE 0 END) - (CASE WHEN OLD.to_status = 'approved' THEN OLD.amount_after ELSE 0 END),
      (CASE WHEN OLD.from_status = 'paid' THEN COALESCE(OLD.amount_before, 0) ELSE 0 END) - (CASE WHEN OLD.to_status = 'paid' THEN OLD.amount_after ELSE 0 END),
      (CASE WHEN OLD.from_status = 'rejected' THEN COALESCE(OLD.amount_before, 0) ELSE 0 END) - (CASE WHEN OLD.to_status = 'rejected' THEN OLD.amount_after ELSE 0 END)
    FROM commissions c WHERE c.id = OLD.commission_id
    ON CONFLICT DO UPDATE SET pending = pending + excluded.pending, approved = approved + excluded.approved,
      paid = paid + excluded.paid, rejected = rejected + excluded.rejected;
END;

PRAGMA defer_foreign_keys = false;
