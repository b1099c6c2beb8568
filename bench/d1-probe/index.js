// D1 probe: each request writes click rows shaped like Refport's (same table, ids of the same
// length, 64-hex-char hashes) in one of three ways:
//   GET /single?n=50     n one-row INSERTs as n separate queries, issued together: what n
//                        concurrent redirects' waitUntil writes do (50 = the free plan's
//                        queries per invocation)
//   GET /batch?n=100     db.batch() of n one-row INSERTs: one round trip, one transaction
//   GET /multi?n=100     multi-row INSERT ... VALUES (..),(..): 11 rows per statement (D1 allows
//                        100 bound parameters per query; a click has 9), in one db.batch()
// Answers {"rows": n} (/single adds D1's own rows_written). The driver counts rows in the D1 file to get rows/s.

const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const HASH = "0123456789abcdef".repeat(4);
const SQL = "INSERT INTO clicks (id, program_id, partner_id, link_id, created_at, country, referrer_host, ip_hash, ua_hash) VALUES ";
const ONE = "(?, ?, ?, ?, ?, ?, ?, ?, ?)";
let link;

function clickId() {
  const r = crypto.getRandomValues(new Uint8Array(26));
  let s = "clk_";
  for (const b of r) s += CROCKFORD[b & 31];
  return s;
}

function row(now) {
  return [clickId(), link.program_id, link.partner_id, link.id, now, "US", "example.com", HASH, HASH];
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    link ??= await env.DB.prepare("SELECT id, program_id, partner_id FROM links WHERE deleted_at IS NULL LIMIT 1").first();
    if (!link) return new Response("no link in this D1", { status: 500 });
    const n = Math.max(1, Math.min(1000, Number(url.searchParams.get("n") || 100)));
    const now = Date.now();
    if (url.pathname === "/single") {
      const stmt = env.DB.prepare(SQL + ONE);
      const rs = await Promise.all(Array.from({ length: n }, () => stmt.bind(...row(now)).run()));
      // D1's billing counter: rows written including index entries.
      return Response.json({ rows: n, rows_written: rs.reduce((a, r) => a + (r.meta?.rows_written ?? 0), 0) });
    }
    if (url.pathname === "/batch") {
      const stmt = env.DB.prepare(SQL + ONE);
      await env.DB.batch(Array.from({ length: n }, () => stmt.bind(...row(now))));
      return Response.json({ rows: n });
    }
    if (url.pathname === "/multi") {
      const stmts = [];
      for (let left = n; left > 0; left -= 11) {
        const k = Math.min(11, left);
        stmts.push(env.DB.prepare(SQL + Array(k).fill(ONE).join(", ")).bind(...Array.from({ length: k }, () => row(now)).flat()));
      }
      await env.DB.batch(stmts);
      return Response.json({ rows: n });
    }
    return new Response("ready", { status: 200 });
  },
};
