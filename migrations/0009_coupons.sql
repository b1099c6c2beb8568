-- Coupon codes (issue 16): a code attributes the conversions that carry it to its partner.
--
-- coupons: a partner's codes, unique per program without regard to case among live coupons
-- (`code_key` is the lower-case code; `code` is kept as entered, for display). Deleted coupons
-- keep their row (the events they attributed name them) with `deleted_at` set.
--
-- events.coupon_code: the code the conversion carried, as sent (trimmed); events.coupon_id: the
-- live coupon it named when it was tracked (NULL: no code, or an unknown one).
--
-- Additive: no row is rewritten, and no money row is touched.
CREATE TABLE IF NOT EXISTS coupons (
  id          TEXT PRIMARY KEY,
  program_id  TEXT NOT NULL REFERENCES programs(id),
  partner_id  TEXT NOT NULL REFERENCES partners(id),
  code        TEXT NOT NULL CHECK (length(code) BETWEEN 3 AND 40),
  code_key    TEXT NOT NULL CHECK (code_key = lower(code)),
  created_at  INTEGER NOT NULL,
  deleted_at  INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS coupons_code ON coupons(program_id, code_key) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS coupons_partner ON coupons(partner_id, id);

ALTER TABLE events ADD COLUMN coupon_code TEXT;
ALTER TABLE events ADD COLUMN coupon_id TEXT;
