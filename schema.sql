-- Refport schema (D1 / SQLite): the full schema in one readable file. Databases are created and
-- changed by the D1 migrations in migrations/ (`wrangler d1 migrations apply DB --local|--remote`),
-- never from this file. A migration changes this file too (new columns last among the table's
-- columns): tests/test_migrations.py checks that both give the same schema.
--
-- Conventions: ids are prefixed, time-ordered strings (see core/src/ids.rs); times are INTEGER
-- milliseconds since the Unix epoch, UTC; money is INTEGER minor units with a currency column.
-- Exactly-once is enforced here, by unique indexes and CHECK constraints, never by the caller
-- reading before writing.

-- Programs. `settings` is the validated ProgramSettings JSON (core/src/program.rs) and the
-- single source of truth; the generated columns expose what SQL filters and sums on.
CREATE TABLE IF NOT EXISTS programs (
  id          TEXT PRIMARY KEY,
  settings    TEXT NOT NULL CHECK (json_valid(settings)),
  name            TEXT    GENERATED ALWAYS AS (json_extract(settings, '$.name')) VIRTUAL,
  payout_currency TEXT    GENERATED ALWAYS AS (json_extract(settings, '$.payout_currency')) VIRTUAL,
  min_payout      INTEGER GENERATED ALWAYS AS (json_extract(settings, '$.min_payout')) VIRTUAL,
  hold_days       INTEGER GENERATED ALWAYS AS (json_extract(settings, '$.hold_days')) VIRTUAL,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL
);

-- A branded domain belongs to exactly one program (the redirect routes on the Host header).
CREATE TABLE IF NOT EXISTS program_domains (
  domain      TEXT PRIMARY KEY,
  program_id  TEXT NOT NULL REFERENCES programs(id)
);
CREATE INDEX IF NOT EXISTS program_domains_program ON program_domains(program_id);

-- API keys: only the SHA-256 of the secret is stored. A key may be bound to one program.
CREATE TABLE IF NOT EXISTS api_keys (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL,
  key_hash    TEXT NOT NULL UNIQUE CHECK (length(key_hash) = 64),
  key_hint    TEXT NOT NULL,
  program_id  TEXT REFERENCES programs(id),
  permissions TEXT NOT NULL CHECK (json_valid(permissions)),
  created_at  INTEGER NOT NULL,
  revoked_at  INTEGER
);

CREATE TABLE IF NOT EXISTS partners (
  id                TEXT PRIMARY KEY,
  program_id        TEXT NOT NULL REFERENCES programs(id),
  email             TEXT NOT NULL,
  name              TEXT NOT NULL,
  status            TEXT NOT NULL CHECK (status IN ('invited', 'active', 'banned')),
  rewards           TEXT CHECK (rewards IS NULL OR json_valid(rewards)),
  stripe_account_id TEXT,
  payouts_enabled   INTEGER NOT NULL DEFAULT 0 CHECK (payouts_enabled IN (0, 1)),
  created_at        INTEGER NOT NULL,
  updated_at        INTEGER NOT NULL,
  -- 0002: ISO 3166-1 alpha-2 country; why payouts are disabled (a Stripe refusal, deauthorized).
  country TEXT,
  payouts_disabled_reason TEXT,
  -- 0004: the bank account fingerprint Stripe pays out to; when the merchant approved payouts
  -- despite an account shared with another partner (duplicate_payout_account).
  bank_fingerprint TEXT,
  payout_account_approved_at INTEGER,
  -- 0007: the partner's group (its terms sit between the program's and the partner's override)
  -- and its own minimum payout (overrides the group's and the program's).
  group_id TEXT REFERENCES partner_groups(id),
  min_payout INTEGER CHECK (min_payout IS NULL OR min_payout >= 0),
  UNIQUE (program_id, email)
);
CREATE INDEX IF NOT EXISTS partners_program ON partners(program_id, id);
CREATE INDEX IF NOT EXISTS partners_stripe_account ON partners(stripe_account_id);
CREATE INDEX IF NOT EXISTS partners_bank_fingerprint ON partners(bank_fingerprint) WHERE bank_fingerprint IS NOT NULL;
CREATE INDEX IF NOT EXISTS partners_group ON partners(group_id) WHERE group_id IS NOT NULL;

-- Partner groups (0007): terms shared by a set of partners; per field, a partner's own override
-- wins over its group's, the group's over the program's.
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

-- Links are soft-deleted (clicks keep pointing at them); a key is unique per domain among live links.
CREATE TABLE IF NOT EXISTS links (
  id          TEXT PRIMARY KEY,
  program_id  TEXT NOT NULL REFERENCES programs(id),
  partner_id  TEXT NOT NULL REFERENCES partners(id),
  domain      TEXT NOT NULL REFERENCES program_domains(domain),
  key         TEXT NOT NULL CHECK (length(key) BETWEEN 1 AND 64),
  url         TEXT NOT NULL CHECK (url LIKE 'http://%' OR url LIKE 'https://%'),
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL,
  deleted_at  INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS links_domain_key ON links(domain, key) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS links_partner ON links(partner_id, id);

-- 0009: coupon codes, unique per program without regard to case among live coupons (`code_key`
-- is the lower-case code); soft-deleted, as the events they attributed name them.
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

-- One row per counted (non-bot) visit, written in batches by the clicks queue's consumer. No raw
-- IP or user agent: salted hashes only. One b-tree (WITHOUT ROWID, keyed by the time-ordered
-- id): 1 row written per click; stats come from daily_stats, not from these rows. No foreign
-- keys (a late batch must never fail on one). Rows older than the retention period
-- (CLICK_RETENTION_DAYS, at least the longest attribution window) are deleted by the cron.
CREATE TABLE IF NOT EXISTS clicks (
  id            TEXT PRIMARY KEY,
  program_id    TEXT NOT NULL,
  partner_id    TEXT NOT NULL,
  link_id       TEXT NOT NULL,
  created_at    INTEGER NOT NULL,
  country       TEXT CHECK (country IS NULL OR length(country) = 2),
  referrer_host TEXT,
  ip_hash       TEXT,
  ua_hash       TEXT,
  -- visits of the same visitor folded into this click (one click per visitor, link and hour)
  hits          INTEGER NOT NULL DEFAULT 1,
  -- 0008: the partner's sub-IDs from the click URL (refport_core::click::sub_ids), NULL if absent
  sub1          TEXT,
  sub2          TEXT,
  sub3          TEXT
) WITHOUT ROWID;

-- The merchant's users, attributed to a partner through a click (`click_id` names the click
-- without a foreign key: its row may still be in the queue, or deleted by retention).
CREATE TABLE IF NOT EXISTS customers (
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
  -- 0004: what the click that brought the customer said to the fraud rules.
  click_signals TEXT,
  -- 0006: the Stripe customer the lead came from (zero-code Stripe tracking).
  stripe_customer_id TEXT,
  -- 0007: the country of the click that brought the customer (reward modifiers).
  country TEXT,
  UNIQUE (program_id, external_id)
);
CREATE INDEX IF NOT EXISTS customers_partner ON customers(partner_id);
CREATE INDEX IF NOT EXISTS customers_stripe ON customers(stripe_customer_id) WHERE stripe_customer_id IS NOT NULL;

-- Every conversion event received (attributed or not): the idempotency ledger of the track API.
CREATE TABLE IF NOT EXISTS events (
  id             TEXT PRIMARY KEY,
  program_id     TEXT NOT NULL REFERENCES programs(id),
  customer_id    TEXT NOT NULL REFERENCES customers(id),
  kind           TEXT NOT NULL CHECK (kind IN ('lead', 'sale')),
  event_name     TEXT NOT NULL,
  invoice_id     TEXT,
  amount         INTEGER CHECK (amount IS NULL OR amount >= 0),
  currency       TEXT,
  payout_amount  INTEGER CHECK (payout_amount IS NULL OR payout_amount >= 0),
  partner_id     TEXT REFERENCES partners(id),
  click_id       TEXT,
  attribution    TEXT NOT NULL,
  metadata       TEXT CHECK (metadata IS NULL OR json_valid(metadata)),
  created_at     INTEGER NOT NULL,
  -- 0003: the link the conversion came through ('' in the rollups when none).
  link_id TEXT,
  -- 0007: the product sold (reward modifiers).
  product_id TEXT,
  -- 0009: the coupon code the conversion carried (as sent) and the live coupon it named.
  coupon_code TEXT,
  coupon_id TEXT,
  CHECK (kind = 'lead' OR invoice_id IS NOT NULL)
);
CREATE UNIQUE INDEX IF NOT EXISTS events_lead_once ON events(program_id, customer_id, event_name) WHERE kind = 'lead';
CREATE UNIQUE INDEX IF NOT EXISTS events_sale_once ON events(program_id, invoice_id) WHERE kind = 'sale';
CREATE INDEX IF NOT EXISTS events_customer ON events(customer_id, created_at);

CREATE TABLE IF NOT EXISTS payouts (
  id                 TEXT PRIMARY KEY,
  program_id         TEXT NOT NULL REFERENCES programs(id),
  partner_id         TEXT NOT NULL REFERENCES partners(id),
  amount             INTEGER NOT NULL CHECK (amount >= 0),
  currency           TEXT NOT NULL,
  -- 0010: awaiting_approval (a program in payout review mode), canceled (the merchant declined).
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
-- At most one payout prepared or in flight per partner: two overlapping cron runs cannot both claim.
CREATE UNIQUE INDEX IF NOT EXISTS payouts_one_processing ON payouts(partner_id) WHERE status IN ('processing', 'awaiting_approval');
CREATE INDEX IF NOT EXISTS payouts_partner ON payouts(partner_id, id);
CREATE INDEX IF NOT EXISTS payouts_status ON payouts(status, id);

-- Commissions. `amount` is the current commission (negative only for clawbacks),
-- `original_amount` what the rules first computed; `refunded_amount` is the part of the sale
-- refunded so far and `clawed_back` the positive sum of this sale's clawbacks.
CREATE TABLE IF NOT EXISTS commissions (
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

-- Audit trail of every commission change (status or amount).
CREATE TABLE IF NOT EXISTS commission_changes (
  id             INTEGER PRIMARY KEY AUTOINCREMENT,
  commission_id  TEXT NOT NULL REFERENCES commissions(id),
  from_status    TEXT,
  to_status      TEXT NOT NULL,
  amount_before  INTEGER,
  amount_after   INTEGER NOT NULL,
  reason         TEXT,
  created_at     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS commission_changes_commission ON commission_changes(commission_id, id);

-- Refunds received through the track API (idempotent per Idempotency-Key when one is sent).
CREATE TABLE IF NOT EXISTS refunds (
  id              TEXT PRIMARY KEY,
  program_id      TEXT NOT NULL REFERENCES programs(id),
  invoice_id      TEXT NOT NULL,
  amount          INTEGER NOT NULL CHECK (amount > 0),
  idempotency_key TEXT,
  commission_id   TEXT REFERENCES commissions(id),
  -- The amount of the sale already refunded when this refund was planned: two refunds planned
  -- against the same state cannot both land (the loser's batch rolls back and re-plans).
  refunded_before INTEGER NOT NULL,
  effect          TEXT NOT NULL,
  clawback_id     TEXT REFERENCES commissions(id),
  created_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS refunds_idempotency ON refunds(program_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS refunds_sequential ON refunds(program_id, invoice_id, refunded_before);

-- Stripe webhook events already processed (a replayed event id changes nothing).
CREATE TABLE IF NOT EXISTS stripe_events (
  id          TEXT PRIMARY KEY,
  type        TEXT NOT NULL,
  token       TEXT NOT NULL,
  received_at INTEGER NOT NULL,
  -- 0006: what the event did, for the Integrations page (NULL before it).
  endpoint TEXT,
  outcome TEXT,
  effect TEXT,
  reason TEXT,
  program_id TEXT,
  partner_id TEXT,
  stripe_customer_id TEXT,
  object_id TEXT,
  amount INTEGER,
  currency TEXT,
  payment_intent TEXT
);
CREATE INDEX IF NOT EXISTS stripe_events_received ON stripe_events(received_at);
CREATE INDEX IF NOT EXISTS stripe_events_unreferred ON stripe_events(stripe_customer_id, received_at)
  WHERE reason = 'not_referred';
CREATE INDEX IF NOT EXISTS stripe_events_unmatched_refunds ON stripe_events(payment_intent, received_at)
  WHERE reason = 'sale_not_found';
CREATE INDEX IF NOT EXISTS stripe_events_unmatched_recent ON stripe_events(received_at)
  WHERE reason = 'sale_not_found';

-- Link-cache refreshes left for the cron: a program or partner change rewrites its links' KV
-- entries a page at a time (a request does the first page, the cron the rest).
CREATE TABLE IF NOT EXISTS cache_refresh_jobs (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  program_id    TEXT NOT NULL REFERENCES programs(id),
  partner_id    TEXT REFERENCES partners(id),
  after_link_id TEXT NOT NULL,
  created_at    INTEGER NOT NULL
);

-- Partner invitations: single-use, expiring; only the SHA-256 of the token is stored.
CREATE TABLE IF NOT EXISTS invitations (
  id          TEXT PRIMARY KEY,
  program_id  TEXT NOT NULL REFERENCES programs(id),
  partner_id  TEXT NOT NULL REFERENCES partners(id),
  token_hash  TEXT NOT NULL UNIQUE,
  expires_at  INTEGER NOT NULL,
  used_at     INTEGER,
  created_at  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS invitations_partner ON invitations(partner_id);

-- Outgoing webhooks to the merchant. The signing secret is never stored: it is derived from the
-- WEBHOOK_SIGNING_KEY secret and the endpoint id (src/webhook_delivery.rs).
CREATE TABLE IF NOT EXISTS webhook_endpoints (
  id          TEXT PRIMARY KEY,
  url         TEXT NOT NULL CHECK (url LIKE 'https://%' OR url LIKE 'http://%'),
  events      TEXT NOT NULL CHECK (json_valid(events)),
  description TEXT,
  created_at  INTEGER NOT NULL,
  deleted_at  INTEGER,
  -- 0002: the program of the key that made it (NULL: an admin endpoint, receives every program).
  program_id TEXT REFERENCES programs(id)
);

-- The outbox: written in the same batch as the change it describes, so it is never lost.
CREATE TABLE IF NOT EXISTS webhook_events (
  id          TEXT PRIMARY KEY,
  type        TEXT NOT NULL,
  subject_id  TEXT NOT NULL,
  payload     TEXT NOT NULL CHECK (json_valid(payload)),
  fanned_out  INTEGER NOT NULL DEFAULT 0,
  created_at  INTEGER NOT NULL
);
-- Events that happen once per subject are emitted once, however often the change is retried.
CREATE UNIQUE INDEX IF NOT EXISTS webhook_events_once ON webhook_events(type, subject_id)
  WHERE type IN ('lead.created', 'commission.created', 'payout.paid', 'payout.failed');
CREATE INDEX IF NOT EXISTS webhook_events_fanout ON webhook_events(fanned_out) WHERE fanned_out = 0;

-- One delivery per (event, endpoint), retried with backoff by the cron; the delivery log.
CREATE TABLE IF NOT EXISTS webhook_deliveries (
  id              TEXT PRIMARY KEY,
  event_id        TEXT NOT NULL REFERENCES webhook_events(id),
  endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints(id),
  status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts        INTEGER NOT NULL DEFAULT 0,
  last_status     INTEGER,
  last_error      TEXT,
  next_attempt_at INTEGER,
  delivered_at    INTEGER,
  created_at      INTEGER NOT NULL,
  UNIQUE (event_id, endpoint_id)
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries(status, next_attempt_at);
CREATE INDEX IF NOT EXISTS webhook_deliveries_endpoint ON webhook_deliveries(endpoint_id, id);

-- Platform-wide payout pause after an account-wide Stripe refusal (rate limit, revoked key,
-- platform balance too low) until `until_ms`, or a `balance.available` event.
CREATE TABLE IF NOT EXISTS payout_pause (
  id         INTEGER PRIMARY KEY CHECK (id = 1),
  cause      TEXT NOT NULL,
  message    TEXT,
  until_ms   INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);

-- Daily rollups per (program, partner, link, UTC day, currency): what stats and charts read.
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

-- The triggers that keep the rollups.
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
