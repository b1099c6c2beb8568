-- Sub-IDs (issue 16): a branded-link click may carry `sub1`, `sub2`, `sub3` (each 1 to 64
-- printable characters, see refport_core::click::sub_ids). They are stored on the click and
-- counted in `daily_sub_stats`, which stats grouped by a sub-ID read (never `clicks`).
--
-- Additive: no row is rewritten. Clicks stored before have no sub-IDs (NULL) and count, as
-- every click without one, only in `daily_stats`: stats by sub-ID answer them in the group
-- without one (daily_stats minus daily_sub_stats, src/store/stats.rs).
ALTER TABLE clicks ADD COLUMN sub1 TEXT;
ALTER TABLE clicks ADD COLUMN sub2 TEXT;
ALTER TABLE clicks ADD COLUMN sub3 TEXT;

-- Daily rollups per (program, partner, link, UTC day, sub1, sub2, sub3, currency) of the clicks
-- and conversions that carry at least one sub-ID ('' for an absent one): nothing is written
-- here for the others. Clicks are counted by the clicks queue's consumer in the batch that
-- inserts them, as in daily_stats; leads and sales by the trigger below, under the sub-IDs of
-- the event's click (the customer's click for a sale) when its row is stored then (a click
-- still in the queue, or deleted by retention, leaves the event in the group without one).
-- Commissions are not split by sub-ID.
CREATE TABLE IF NOT EXISTS daily_sub_stats (
  program_id  TEXT NOT NULL,
  partner_id  TEXT NOT NULL,
  link_id     TEXT NOT NULL,
  day         INTEGER NOT NULL,
  sub1        TEXT NOT NULL,
  sub2        TEXT NOT NULL,
  sub3        TEXT NOT NULL,
  currency    TEXT NOT NULL,
  clicks      INTEGER NOT NULL DEFAULT 0,
  leads       INTEGER NOT NULL DEFAULT 0,
  sales       INTEGER NOT NULL DEFAULT 0,
  sale_amount INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (program_id, partner_id, link_id, day, sub1, sub2, sub3, currency)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS daily_sub_stats_day ON daily_sub_stats(program_id, day);

CREATE TRIGGER IF NOT EXISTS daily_sub_stats_event AFTER INSERT ON events WHEN NEW.partner_id IS NOT NULL
BEGIN
  INSERT INTO daily_sub_stats (program_id, partner_id, link_id, day, sub1, sub2, sub3, currency, leads, sales, sale_amount)
    SELECT NEW.program_id, NEW.partner_id, COALESCE(NEW.link_id, ''), NEW.created_at / 86400000,
      COALESCE(c.sub1, ''), COALESCE(c.sub2, ''), COALESCE(c.sub3, ''),
      CASE WHEN NEW.kind != 'sale' THEN ''
           WHEN NEW.payout_amount IS NOT NULL THEN COALESCE((SELECT payout_currency FROM programs WHERE id = NEW.program_id), '')
           ELSE COALESCE(NEW.currency, '') END,
      NEW.kind = 'lead', NEW.kind = 'sale',
      CASE WHEN NEW.kind = 'sale' THEN COALESCE(NEW.payout_amount, NEW.amount, 0) ELSE 0 END
    FROM clicks c
    WHERE c.id = COALESCE(NEW.click_id,
        (SELECT cu.click_id FROM customers cu WHERE cu.id = NEW.customer_id AND cu.partner_id = NEW.partner_id))
      AND c.partner_id = NEW.partner_id
      AND (c.sub1 IS NOT NULL OR c.sub2 IS NOT NULL OR c.sub3 IS NOT NULL)
    ON CONFLICT DO UPDATE SET leads = leads + excluded.leads, sales = sales + excluded.sales,
      sale_amount = sale_amount + excluded.sale_amount;
END;
