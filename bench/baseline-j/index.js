// Baseline J: the redirect as a user would write it in plain JavaScript, doing the same work
// as Refport's hot path (src/redirect.rs) on a KV hit: read `link:{host}/{key}` (the record
// Refport itself cached, copied by bench/run.sh), skip bots, mint a click id, append
// `refport_id` to the destination, set the attribution cookie, answer 302. With RECORD_CLICKS
// set it also writes the click row to D1 after the response (waitUntil), with the same salted
// HMAC-SHA256 hashes of IP and user agent and the same INSERT as Refport.

const BOTS = new RegExp(
  [
    "bot", "crawler", "spider", "slurp", "preview", "facebookexternalhit", "facebookcatalog",
    "embedly", "quora link", "outbrain", "pinterest", "vkshare", "w3c_validator", "whatsapp",
    "telegram", "skype", "slack", "discord", "linkedin", "twitter", "headlesschrome",
    "lighthouse", "pingdom", "uptime", "monitor", "curl/", "wget/", "python-requests",
    "python-urllib", "go-http-client", "okhttp", "axios/", "node-fetch", "java/", "libwww",
    "httpclient", "scrapy", "ahrefs", "semrush", "mj12", "petalsearch", "yandex", "baidu",
    "bingpreview", "google-inspectiontool", "apis-google", "feedfetcher", "mediapartners",
    "iframely", "metauri", "snap url preview",
  ].map((m) => m.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")).join("|"),
  "i",
);
const KEY = /^[A-Za-z0-9_-]{1,64}$/;
const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

function clickId(now) {
  // clk_ + 10 time chars + 16 random chars (Crockford base32), like Refport's ids.
  let out = "clk_";
  let t = BigInt(now);
  const time = [];
  for (let i = 0; i < 10; i++) { time.push(CROCKFORD[Number(t & 31n)]); t >>= 5n; }
  out += time.reverse().join("");
  const r = crypto.getRandomValues(new Uint8Array(16));
  for (const b of r) out += CROCKFORD[b & 31];
  return out;
}

let hmacKey;
async function hmacHex(salt, text) {
  hmacKey ??= await crypto.subtle.importKey("raw", new TextEncoder().encode(salt), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const sig = new Uint8Array(await crypto.subtle.sign("HMAC", hmacKey, new TextEncoder().encode(text)));
  return Array.from(sig, (b) => b.toString(16).padStart(2, "0")).join("");
}

function referrerHost(referer) {
  try {
    const u = new URL(referer);
    return u.protocol === "http:" || u.protocol === "https:" ? u.hostname.toLowerCase() : null;
  } catch {
    return null;
  }
}

export default {
  async fetch(request, env, ctx) {
    if (request.method !== "GET" && request.method !== "HEAD") return new Response("Method not allowed", { status: 405 });
    const url = new URL(request.url);
    const key = url.pathname.slice(1);
    const host = (request.headers.get("host") || "").split(":")[0].toLowerCase();
    if (!KEY.test(key) || !host) return new Response("Link not found", { status: 404 });
    const link = await env.LINKS.get(`link:${host}/${key}`, { type: "json" });
    if (!link) return new Response("Link not found", { status: 404 });

    const headers = new Headers({ "cache-control": "private, no-store", "referrer-policy": "no-referrer-when-downgrade" });
    const ua = request.headers.get("user-agent");
    if (request.method !== "GET" || !ua || !ua.trim() || BOTS.test(ua) || !link.attributable) {
      headers.set("location", link.url);
      return new Response(null, { status: 302, headers });
    }
    const now = Date.now();
    const id = clickId(now);
    const dest = new URL(link.url);
    dest.searchParams.delete("refport_id");
    dest.searchParams.append("refport_id", id);
    headers.set("location", dest.toString());
    const maxAge = link.window_days * 86400;
    headers.set("set-cookie", `refport_id=${id}; Max-Age=${maxAge}; ${link.cookie_domain ? `Domain=${link.cookie_domain}; ` : ""}Path=/; Secure; SameSite=Lax`);

    if (env.RECORD_CLICKS) {
      const ip = request.headers.get("cf-connecting-ip");
      const country = request.cf?.country ?? request.headers.get("cf-ipcountry");
      const referer = request.headers.get("referer");
      ctx.waitUntil((async () => {
        const salt = env.IP_HASH_SALT || "";
        try {
          await env.DB.prepare(
            `INSERT INTO clicks (id, program_id, partner_id, link_id, created_at, country, referrer_host, ip_hash, ua_hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)`,
          ).bind(
            id, link.program_id, link.partner_id, link.link_id, now,
            country && /^[A-Za-z]{2}$/.test(country) && country !== "XX" ? country.toUpperCase() : null,
            referer ? referrerHost(referer) : null,
            ip ? await hmacHex(salt, ip) : null,
            await hmacHex(salt, ua),
          ).run();
        } catch (e) {
          console.error(`click ${id} not recorded: ${e}`);
        }
      })());
    }
    return new Response(null, { status: 302, headers });
  },
};
