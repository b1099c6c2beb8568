// Builds web/ into public/: one minified JS and CSS bundle per page (content-hashed names under
// /assets/), the page HTML with those names filled in, and _headers. Prints each page's weight.
import * as esbuild from "esbuild";
import { gzipSync } from "node:zlib";
import fs from "node:fs";
import path from "node:path";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const out = path.join(root, "public");

const pages = [
  { name: "dashboard", html: "web/dashboard/index.html", dest: "dashboard/index.html", js: "web/dashboard/main.ts", css: "web/dashboard/dashboard.css" },
  { name: "portal", html: "web/portal/referrals.html", dest: "embed/referrals.html", js: "web/portal/main.ts", css: "web/portal/portal.css" },
  { name: "invite", html: "web/invite/index.html", dest: "invite/index.html", js: "web/invite/main.ts", css: "web/invite/invite.css" },
];

// Empty public/ in place (a running `wrangler dev` keeps watching the same directory).
fs.mkdirSync(out, { recursive: true });
for (const entry of fs.readdirSync(out)) fs.rmSync(path.join(out, entry), { recursive: true, force: true });
fs.mkdirSync(path.join(out, "assets"), { recursive: true });

const entryPoints = {};
for (const p of pages) {
  entryPoints[p.name] = path.join(root, p.js);
  entryPoints[`${p.name}-style`] = path.join(root, p.css);
}

const result = await esbuild.build({
  entryPoints,
  outdir: path.join(out, "assets"),
  entryNames: "[name]-[hash]",
  bundle: true,
  minify: true,
  format: "iife",
  target: "es2022",
  legalComments: "none",
  metafile: true,
  logLevel: "warning",
});

// entry point (relative to root) -> public URL of its output
const urls = {};
for (const [file, info] of Object.entries(result.metafile.outputs)) {
  if (info.entryPoint) urls[path.resolve(root, info.entryPoint)] = "/" + path.relative(out, path.resolve(root, file)).split(path.sep).join("/");
}

const gz = (buf) => gzipSync(buf, { level: 9 }).length;
const report = [];
for (const p of pages) {
  const js = urls[path.join(root, p.js)];
  const css = urls[path.join(root, p.css)];
  if (!js || !css) throw new Error(`no output for ${p.name}`);
  const html = fs
    .readFileSync(path.join(root, p.html), "utf8")
    .replaceAll("%JS%", js)
    .replaceAll("%CSS%", css)
    .replace(/^\s+/gm, "")
    .replace(/\n+/g, "\n");
  const dest = path.join(out, p.dest);
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.writeFileSync(dest, html);
  const files = [dest, path.join(out, js), path.join(out, css)].map((f) => fs.readFileSync(f));
  report.push({
    page: p.name,
    path: "/" + p.dest,
    html: files[0].length, js: files[1].length, css: files[2].length,
    raw: files.reduce((a, b) => a + b.length, 0),
    gzip: files.reduce((a, b) => a + gz(b), 0),
  });
}

// Security and caching headers for the static pages (the portal's own CSP comes from the Worker,
// which knows the program's allowed hosts). Hashed assets never change.
const csp = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' https: data:; connect-src 'self'; " +
  "form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
fs.writeFileSync(
  path.join(out, "_headers"),
  `/assets/*
  Cache-Control: public, max-age=31536000, immutable
  X-Content-Type-Options: nosniff
/dashboard/*
  Content-Security-Policy: ${csp}
  X-Frame-Options: DENY
  Referrer-Policy: no-referrer
  X-Content-Type-Options: nosniff
  Cache-Control: no-cache
/invite/*
  Content-Security-Policy: ${csp}
  X-Frame-Options: DENY
  Referrer-Policy: no-referrer
  X-Content-Type-Options: nosniff
  Cache-Control: no-cache
/api/v1/openapi.json
  Access-Control-Allow-Origin: *
  Cache-Control: public, max-age=300
`,
);

for (const r of report) {
  console.log(`${r.page.padEnd(10)} ${r.path.padEnd(22)} html ${r.html} + js ${r.js} + css ${r.css} = ${r.raw} B raw, ${r.gzip} B gzip`);
}
