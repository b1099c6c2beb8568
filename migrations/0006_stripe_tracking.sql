-- Zero-code tracking from the merchant's Stripe (issue 15).
--
-- customers.stripe_customer_id: the Stripe customer a lead came from (checkout or customer
-- events), so its invoices find it whatever external id the merchant chose.
--
-- stripe_events gains what the Integrations page shows of each event received: the endpoint it
-- came to, its outcome (attributed, unattributed, ignored, applied), what it did (`effect`) or
-- why not (`reason`), and the program, partner, Stripe customer, object, amount and (refunds)
-- payment intent involved.
-- Events received before this migration keep their row, with these columns NULL.
--
-- Additive: no row is rewritten, and no money row is touched.
ALTER TABLE customers ADD COLUMN stripe_customer_id TEXT;
CREATE INDEX IF NOT EXISTS customers_stripe ON customers(stripe_customer_id) WHERE stripe_customer_id IS NOT NULL;

ALTER TABLE stripe_events ADD COLUMN endpoint TEXT;
ALTER TABLE stripe_events ADD COLUMN outcome TEXT;
ALTER TABLE stripe_events ADD COLUMN effect TEXT;
ALTER TABLE stripe_events ADD COLUMN reason TEXT;
ALTER TABLE stripe_events ADD COLUMN program_id TEXT;
ALTER TABLE stripe_events ADD COLUMN partner_id TEXT;
ALTER TABLE stripe_events ADD COLUMN stripe_customer_id TEXT;
ALTER TABLE stripe_events ADD COLUMN object_id TEXT;
ALTER TABLE stripe_events ADD COLUMN amount INTEGER;
ALTER TABLE stripe_events ADD COLUMN currency TEXT;
ALTER TABLE stripe_events ADD COLUMN payment_intent TEXT;
CREATE INDEX IF NOT EXISTS stripe_events_received ON stripe_events(received_at);
-- Invoices paid before their customer's referral arrived (Stripe does not order events), found
-- again when it does.
CREATE INDEX IF NOT EXISTS stripe_events_unreferred ON stripe_events(stripe_customer_id, received_at)
  WHERE reason = 'not_referred';
-- Likewise refunds that arrived before the sale they refund.
CREATE INDEX IF NOT EXISTS stripe_events_unmatched_refunds ON stripe_events(payment_intent, received_at)
  WHERE reason = 'sale_not_found';
CREATE INDEX IF NOT EXISTS stripe_events_unmatched_recent ON stripe_events(received_at)
  WHERE reason = 'sale_not_found';
