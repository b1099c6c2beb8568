-- Demo data for `make dev` (idempotent). The program's settings are the JSON shape of
-- ProgramSettings (core/src/program.rs); branded domain go.example.test.
INSERT OR IGNORE INTO programs (id, settings, created_at, updated_at) VALUES (
  'prog_demo',
  '{"name":"Example Partners","description":"Earn 20% of every sale for a year, and $5 per signup.","logo_url":null,"brand_color":"#4f46e5","domains":["go.example.test"],"allowed_hosts":["example.test","www.example.test"],"cookie_domain":"example.test","payout_currency":"usd","min_payout":5000,"payout_schedule":{"every":"month","day":1},"attribution_window_days":90,"attribution_model":"last_click","hold_days":30,"rewards":{"lead":{"type":"flat","amount":500},"sale":{"type":"percentage","amount":2000,"duration_months":12}}}',
  strftime('%s','now') * 1000, strftime('%s','now') * 1000);
INSERT OR IGNORE INTO program_domains (domain, program_id) VALUES ('go.example.test', 'prog_demo');
INSERT OR IGNORE INTO partners (id, program_id, email, name, status, payouts_enabled, created_at, updated_at)
  VALUES ('pn_demo', 'prog_demo', 'jane@partner.test', 'Jane Partner', 'active', 0, strftime('%s','now') * 1000, strftime('%s','now') * 1000);
INSERT OR IGNORE INTO links (id, program_id, partner_id, domain, key, url, created_at, updated_at)
  VALUES ('link_demo', 'prog_demo', 'pn_demo', 'go.example.test', 'demo', 'https://example.test/pricing', strftime('%s','now') * 1000, strftime('%s','now') * 1000);
