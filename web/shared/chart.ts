// A hand-drawn SVG bar chart (no library): one series per day, with an accessible summary and
// the same numbers as a table for screen readers and keyboard users.
import { h, s } from "./dom";
import { formatDay } from "./format";

export interface Point {
  date: string;
  value: number;
}

const H = 210;
const M = { l: 56, r: 8, t: 12, b: 26 };

/** A round upper bound for the axis: 1, 2, 5 x 10^k. */
function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/** `width` is the drawing's width in CSS pixels (the container's), so text keeps its size;
 * `period` names the days in the summary ("over the last 30 days" when not given). */
export function barChart(points: Point[], label: string, fmt: (n: number) => string, integer: boolean, width = 640, period?: string): HTMLElement {
  const W = Math.max(280, Math.round(width));
  const n = points.length;
  const total = points.reduce((a, p) => a + p.value, 0);
  const peak = points.reduce<Point | null>((best, p) => (p.value > (best?.value ?? 0) ? p : best), null);
  const top = niceMax(Math.max(0, ...points.map((p) => p.value)));
  const ticks = integer && top <= 4 ? Array.from({ length: top + 1 }, (_, i) => i) : [0, top / 2, top];
  const pw = W - M.l - M.r;
  const ph = H - M.t - M.b;
  const step = pw / Math.max(n, 1);
  const bw = Math.max(1, step * 0.72);
  const y = (v: number) => M.t + ph - (v / top) * ph;
  const every = (n <= 31 ? 7 : 15) * (W < 480 ? 2 : 1);

  const grid = ticks.map((t) =>
    s("g", { class: "tick" }, s("line", { x1: M.l, x2: W - M.r, y1: y(t), y2: y(t) }), s("text", { x: M.l - 6, y: y(t) + 4, "text-anchor": "end" }, fmt(t))),
  );
  const bars = points.map((p, i) => {
    const bh = p.value > 0 ? Math.max(2, (p.value / top) * ph) : 0;
    return s(
      "rect",
      { class: "bar", x: (M.l + i * step + (step - bw) / 2).toFixed(2), y: (M.t + ph - bh).toFixed(2), width: bw.toFixed(2), height: bh.toFixed(2), "data-date": p.date, "data-value": p.value },
      s("title", null, `${formatDay(p.date)}: ${fmt(p.value)}`),
    );
  });
  const xLabels = points
    .map((p, i) => {
      if ((n - 1 - i) % every !== 0) return null;
      // The newest day's label is right-aligned so it stays inside the chart.
      const last = i === n - 1;
      return s("text", { x: (last ? W - M.r : M.l + i * step + step / 2).toFixed(2), y: H - 8, "text-anchor": last ? "end" : "middle" }, formatDay(p.date));
    })
    .filter(Boolean);

  const summary =
    total === 0
      ? `${label} per day ${period ?? `over the last ${n} days`}: none yet.`
      : `${label} per day ${period ?? `over the last ${n} days`}: ${fmt(total)} in total; highest on ${formatDay(peak!.date)} with ${fmt(peak!.value)}.`;
  const svg = s(
    "svg",
    { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": summary, class: "chart", "data-total": total, "data-days": n },
    grid,
    s("line", { class: "axis", x1: M.l, x2: W - M.r, y1: y(0), y2: y(0) }),
    bars,
    xLabels,
  );

  const rows = points.filter((p) => p.value !== 0);
  return h(
    "figure",
    { class: "chart-figure" },
    svg,
    h("figcaption", { class: "muted" }, summary),
    h(
      "details",
      null,
      h("summary", null, "Show as a table"),
      rows.length
        ? h(
            "table",
            null,
            h("thead", null, h("tr", null, h("th", { scope: "col" }, "Day (UTC)"), h("th", { scope: "col", class: "num" }, label))),
            h(
              "tbody",
              null,
              rows.map((p) => h("tr", null, h("td", null, p.date), h("td", { class: "num" }, fmt(p.value)))),
            ),
          )
        : h("p", { class: "empty" }, "No activity in this period."),
    ),
  );
}
