// Brand colours come from the merchant: derive readable foregrounds (WCAG contrast >= 4.5).

function rgb(hex: string): [number, number, number] | null {
  const m = /^#([0-9a-f]{6})$/i.exec(hex);
  if (!m) return null;
  const n = parseInt(m[1], 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

function luminance([r, g, b]: [number, number, number]): number {
  const f = (c: number) => {
    const x = c / 255;
    return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
}

export function contrast(a: string, b: string): number {
  const ca = rgb(a);
  const cb = rgb(b);
  if (!ca || !cb) return 1;
  const [l1, l2] = [luminance(ca), luminance(cb)].sort((x, y) => y - x);
  return (l1 + 0.05) / (l2 + 0.05);
}

function hex([r, g, b]: [number, number, number]): string {
  return `#${[r, g, b].map((c) => Math.round(c).toString(16).padStart(2, "0")).join("")}`;
}

/** Text colour for content on a brand-coloured background. */
export function onColor(bg: string): string {
  return contrast(bg, "#ffffff") >= contrast(bg, "#111827") ? "#ffffff" : "#111827";
}

/** The brand colour darkened until it reads as text on the light backgrounds (white up to the
 * #f3f4f6 panels): links and accents. */
export function readableOnWhite(color: string): string {
  let c = rgb(color);
  if (!c) return "#3730a3";
  for (let i = 0; i < 20 && contrast(hex(c), "#f3f4f6") < 4.5; i++) c = [c[0] * 0.85, c[1] * 0.85, c[2] * 0.85];
  return hex(c);
}

/** Sets --brand, --brand-fg (text on brand) and --brand-text (brand as text on white). */
export function applyBrand(root: HTMLElement, color: string): void {
  const c = rgb(color) ? color : "#4f46e5";
  root.style.setProperty("--brand", c);
  root.style.setProperty("--brand-fg", onColor(c));
  root.style.setProperty("--brand-text", readableOnWhite(c));
}
