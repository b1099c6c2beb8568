-- One click per visitor (issue 14): the same visitor (salted IP and user agent) on the same link
-- within an hour is one click. Its click id is the same within an hour bucket (v2 click ids,
-- core/src/click_id.rs), so its repeated visits fold into one row: `hits` counts them (a fraud
-- signal), the row and the rollups count one click (src/store/clicks.rs).
--
-- Additive: every row stays, with every value; a click stored before counts one visit. SQLite
-- keeps the default in the schema, so adding the column rewrites no row.
ALTER TABLE clicks ADD COLUMN hits INTEGER NOT NULL DEFAULT 1;
