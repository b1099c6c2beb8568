-- Clicks at Cloudflare scale (issue 13). Clicks arrive through a queue and are written in
-- batches; a lead can be attributed before its click's row exists (signed click ids) and after
-- retention deleted it; stats read daily rollups instead of counting rows.
--
-- Every row survives: `clicks` and `customers` are rebuilt with the same columns and all their
-- rows (only constraints and indexes change); `events` gains a column, backfilled; the rollups
-- are built from the rows already there. Foreign keys are checked at the end of the migration
-- (D1 runs it as one transaction), not in the middle of a rebuild.
PRAGMA defer_foreign_keys = true;

-- 1. The link a conversion came through, fixed when the event is written: the rollups credit
--    that link for good, even if the customer's attribution moves later.
ALTER TABLE events ADD COLUMN link_id TEXT;
UPDATE events SET link_id = (SELECT c.link_id FROM clicks c WHERE c.id = events.click_id)
  WHERE click_id IS NOT NULL;
UPDATE events SET link_id = (SELECT cu.link_id FROM customers cu WHERE cu.id = events.customer_id AND cu.partner_id = events.partner_id)
  WHERE link_id IS NULL AND partner_id IS NOT NULL;

-- 2. Customers no longer reference a click row: the click of a lead may still be in the queue,
--    or already deleted by retention. Same columns, same rows.
CREATE TABLE customers_0003 (
  id            TEXT PRIMARY KEY,
  program_id    TEXT NOT NULL REFERENCES programs(id),
  external_id   TEXT NOT NULL CHECK (length(external_id) BETWEEN 1 AND 255),
  email         TEXT,
  name          TEXT,
  partner_id    TEXT REFERENCES partners(id),
  link_id       TEXT REFERENCES links(id),
  click_id      TEXT,
  clicked_at    INTEGER,
  first_sale_at INTEGER,
  created_at    INTEGER NOT NULL,
  updated_at    INTEGER NOT NULL,
  UNIQUE (program_id, external_id)
);
INSERT INTO customers_0003 (id, program_id, external_id, email, name, partner_id, link_id, click_id, clicked_at,
    first_sale_at, created_at, updated_at)
  SELECT id, program_id, external_id, email, name, partner_id, link_id, click_id, clicked_at,
    first_sale_at, created_at, updated_at FROM customers;
DROP TABLE customers;
ALTER TABLE customers_0003 RENAME TO customers;
CREATE INDEX IF NOT EXISTS customers_partner ON customers(partner_id);

-- 3. Clicks: one row per click and nothing else. A WITHOUT ROWID table keyed by the click id is
--    one b-tree (1 row written per click, where the old table wrote 5: the row, its key and
--    three indexes the rollups replace). No foreign keys: a late batch must never fail on one.
CREATE TABLE clicks_0003 (
  id            TEXT PRIMARY KEY,
  program_id    TEXT NOT NULL,
  partner_id    TEXT NOT NULL,
  link_id       TEXT NOT NULL,
  created_at    INTEGER NOT NULL,
  country       TEXT CHECK (country IS NULL OR length(country) = 2),
  referrer_host TEXT,
  ip_hash       TEXT,
  ua_hash       TEXT
) WITHOUT ROWID;
INSERT INTO clicks_0003 (id, program_id, partner_id, link_id, created_at, country, referrer_host, ip_hash, ua_hash)
  SELECT id, program_id, partner_id, link_id, created_at, country, referrer_host, ip_hash, ua_hash FROM clicks;
DROP TABLE clicks;
ALTER TABLE clicks_0003 RENAME TO clicks;

-- 4. Daily rollups per (program, partner, link, UTC day, currency): what stats and charts read.
--    Counts without a currency (clicks, leads) live on the row whose currency is ''; a sale's
--    count and amount (its commission base, in the payout currency) and commissions by status
--    live on their currency's row. `link_id` is '' for a conversion that came without a link.
--    Clicks are counted by the clicks queue's consumer in the same atomic batch that inserts them
--    (it counts only the clicks of the batch not yet stored, so a redelivered click is counted
--    once: src/store/clicks.rs); events and commission changes by the triggers below, in the
--    same transaction as the write they count. Neither can miss nor double-count one.
CREATE TABLE IF NOT EXISTS daily_stats (
  program_id  TEXT NOT NULL,
  partner_id  TEXT NOT NULL,
  link_id     TEXT NOT NULL,
  day         INTEGER NOT NULL,
  currency    TEXT NOT NULL,
  clicks      INTEGER NOT NULL DEFAULT 0,
  leads       INTEGER NOT NULL DEFAULT 0,
  sales       INTEGER NOT NULL DEFAULT 0,
  sale_amount INTEGER NOT NULL DEFAULT 0,
  pending     INTEGER NOT NULL DEFAULT 0,
  approved    INTEGER NOT NULL DEFAULT 0,
  paid        INTEGER NOT NULL DEFAULT 0,
  rejected    INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (program_id, partner_id, link_id, day, currency)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS daily_stats_day ON daily_stats(program_id, day);

-- Backfill from the rows already there (the table is new and empty).
INSERT INTO daily_stats (program_id, partner_id, link_id, day, currency, clicks)
  SELECT program_id, partner_id, link_id, created_at / 86400000, '', COUNT(*) FROM clicks WHERE 1
  GROUP BY program_id, partner_id, link_id, created_at / 86400000;
INSERT INTO daily_stats (program_id, partner_id, link_id, day, currency, leads)
  SELECT program_id, partner_id, COALESCE(link_id, ''), created_at / 86400000, '', COUNT(*) FROM events
  WHERE kind = 'lead' AND partner_id IS NOT NULL
  GROUP BY program_id, partner_id, COALESCE(link_id, ''), created_at / 86400000
  ON CONFLICT DO UPDATE SET leads = leads + excluded.leads;
INSERT INTO daily_stats (program_id, partner_id, link_id, day, currency, sales, sale_amount)
  SELECT e.program_id, e.partner_id, COALESCE(e.link_id, ''), e.created_at / 86400000,
    CASE WHEN e.payout_amount IS NOT NULL THEN p.payout_currency ELSE COALESCE(e.currency, '') END,
    COUNT(*), SUM(COALESCE(e.payout_amount, e.amount, 0))
  FROM events e JOIN programs p ON p.id = e.program_id
  WHERE e.kind = 'sale' AND e.partner_id IS NOT NULL
  GROUP BY 1, 2, 3, 4, 5
  ON CONFLICT DO UPDATE SET sales = sales + excluded.sales, sale_amount = sale_amount + excluded.sale_amount;
INSERT INTO daily_stats (program_id, partner_id, link_id, day, currency, pending, approved, paid, rejected)
  SELECT c.program_id, c.partner_id,
    COALESCE((SELECT e.link_id FROM events e WHERE e.id = COALESCE(c.event_id, (SELECT pc.event_id FROM commissions pc WHERE pc.id = c.parent_id))), ''),
    c.created_at / 86400000, c.currency,
    SUM(CASE WHEN c.status = 'pending' THEN c.amount ELSE 0 END),
    SUM(CASE WHEN c.status = 'approved' THEN c.amount ELSE 0 END),
    SUM(CASE WHEN c.status = 'paid' THEN c.amount ELSE 0 END),
    SUM(CASE WHEN c.status = 'rejected' THEN c.amount ELSE 0 END)
  FROM commissions c WHERE 1
  GROUP BY 1, 2, 3, 4, 5
  ON CONFLICT DO UPDATE SET pending = pending + excluded.pending, approved = approved + excluded.approved,
    paid = paid + excluded.paid, rejected = rejected + excluded.rejected;

-- The triggers that keep the rollups from now on.
CREATE TRIGGER IF NOT EXISTS daily_stats_event AFTER INSERT ON events WHEN NEW.partner_id IS NOT NULL
BEGIN
  INSERT INTO daily_stats (program_id, partner_id, link_id, day, currency, leads, sales, sale_amount)
    VALUES (NEW.program_id, NEW.partner_id, COALESCE(NEW.link_id, ''), NEW.created_at / 86400000,
      CASE WHEN NEW.kind != 'sale' THEN ''
           WHEN NEW.payout_amount IS NOT NULL THEN COALESCE((SELECT payout_currency FROM programs WHERE id = NEW.program_id), '')
           ELSE COALESCE(NEW.currency, '') END,
      NEW.kind = 'lead', NEW.kind = 'sale',
      CASE WHEN NEW.kind = 'sale' THEN COALESCE(NEW.payout_amount, NEW.amount, 0) ELSE 0 END)
    ON CONFLICT DO UPDATE SET leads = leads + excluded.leads, sales = sales + excluded.sales,
      sale_amount = sale_amount + excluded.sale_amount;
END;

-- Commissions are counted through their audit trail: every change of a commission's status or
-- amount (its creation included) writes one `commission_changes` row, in the same batch, with the
-- amounts before and after, so the rollups move the change's amount between statuses. (A
-- trigger on `commissions` itself would add its writes to the changed-row counts of the
-- conditional UPDATEs that exactly-once relies on.)
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
