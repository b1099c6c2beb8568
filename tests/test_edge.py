"""src/edge.js run by Node on its own (isbot from node_modules): the visit read of the redirect,
and the isolate's cache of isbot verdicts, which must answer exactly what isbot answers and stay
within its bound."""

import json
import os
import subprocess

from conftest import ROOT, wrangler_env

SCRIPT = r"""
import { createRequire } from "node:module";
import { requestVisit, verdictCache } from "%s";
const { isbot } = createRequire("%s")("isbot");
const crawlers = JSON.parse(process.argv[2]);
const browsers = JSON.parse(process.argv[3]);
const visit = (ua) => requestVisit({ headers: new Headers({ "user-agent": ua, "cf-connecting-ip": "203.0.113.7" }),
                                     cf: { country: "DE" } }).split("\n");
const out = { mismatches: [], fields: visit(browsers[0]) };
for (let pass = 0; pass < 2; pass++) {  // the second pass answers from the cache
  for (const ua of [...crawlers, ...browsers]) {
    if ((visit(ua)[5] === "1") !== isbot(ua.trim())) out.mismatches.push([pass, ua]);
  }
}
const [, max] = verdictCache();
for (let i = 0; i < max + 500; i++) visit(`Mozilla/5.0 (X11; Linux x86_64) Probe/${i}`);
out.size = verdictCache()[0];
out.max = max;
out.oldest_recomputed = visit(crawlers[0])[5] === (isbot(crawlers[0]) ? "1" : "0");
console.log(JSON.stringify(out));
"""


def test_visit_read_and_bot_verdict_cache(tmp_path):
    from test_bot_filter import crawler_instances, top_browsers

    crawlers = crawler_instances()[:300]
    browsers = top_browsers()[:300]
    script = tmp_path / "edge_probe.mjs"
    edge = os.path.join(ROOT, "src", "edge.js")
    script.write_text(SCRIPT % ("file://" + edge, edge))
    env = wrangler_env()
    done = subprocess.run(["node", str(script), json.dumps(crawlers), json.dumps(browsers)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["mismatches"] == []
    assert out["fields"][1:4] == ["203.0.113.7", "", "DE"]
    assert out["size"] == out["max"]  # bounded: the oldest verdicts made room
    assert out["oldest_recomputed"]
