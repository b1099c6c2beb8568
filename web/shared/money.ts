// Money is integer minor units; the exponent follows the server (Stripe's lists).

const ZERO = new Set("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split(" "));
const THREE = new Set("bhd jod kwd omr tnd".split(" "));

export function decimals(currency: string): number {
  const c = currency.toLowerCase();
  return ZERO.has(c) ? 0 : THREE.has(c) ? 3 : 2;
}

const formats = new Map<string, Intl.NumberFormat>();

export function formatMoney(minor: number, currency: string): string {
  const d = decimals(currency);
  const code = currency.toUpperCase();
  let f = formats.get(code);
  if (!f) {
    try {
      f = new Intl.NumberFormat(undefined, { style: "currency", currency: code, minimumFractionDigits: d, maximumFractionDigits: d });
    } catch {
      f = new Intl.NumberFormat(undefined, { minimumFractionDigits: d, maximumFractionDigits: d });
    }
    formats.set(code, f);
  }
  return f.format(minor / 10 ** d);
}

/** Minor units as a plain decimal string for form inputs: 5000 usd -> "50.00". */
export function toMajor(minor: number, currency: string): string {
  const d = decimals(currency);
  if (d === 0) return String(minor);
  const neg = minor < 0 ? "-" : "";
  const abs = String(Math.abs(minor)).padStart(d + 1, "0");
  return `${neg}${abs.slice(0, -d)}.${abs.slice(-d)}`;
}

/** "50", "50.5", "50.00" -> minor units; null if not a non-negative amount with at most
 * `decimals` fraction digits. String arithmetic: no float rounding. */
export function parseMajor(text: string, currency: string): number | null {
  const d = decimals(currency);
  const m = /^(\d{1,13})(?:[.,](\d*))?$/.exec(text.trim());
  if (!m) return null;
  const frac = m[2] ?? "";
  if (frac.length > d) return null;
  return Number(m[1]) * 10 ** d + (d ? Number(frac.padEnd(d, "0")) : 0);
}

/** Percent text ("20", "20.5", "12.25") -> basis points; null if invalid or above 100 %. */
export function parsePercent(text: string): number | null {
  const m = /^(\d{1,3})(?:[.,](\d{0,2}))?$/.exec(text.trim());
  if (!m) return null;
  const bps = Number(m[1]) * 100 + Number((m[2] ?? "").padEnd(2, "0"));
  return bps <= 10000 ? bps : null;
}

export function bpsToPercent(bps: number): string {
  const whole = Math.floor(bps / 100);
  const frac = bps % 100;
  return frac ? `${whole}.${String(frac).padStart(2, "0").replace(/0$/, "")}` : String(whole);
}
