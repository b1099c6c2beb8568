// Countries for the onboarding's country select: ISO 3166-1 alpha-2 codes, named by the
// browser's own Intl.DisplayNames (no names are shipped). `Intl.supportedValuesOf` has no
// "region" key and no npm dependency of web/ carries the list, so the codes are the 249 that the
// server accepts (the `isocountry` crate behind `parse_country` in core/src/partner.rs), packed
// by first letter: "ADE" = AD, AE.
const PACKED =
  "ADEFGILMOQRSTUWXZ BABDEFGHIJLMNOQRSTVWYZ CACDFGHIKLMNORUVWXYZ DEJKMOZ ECEGHRST FIJKMOR " +
  "GABDEFGHILMNPQRSTUWY HKMNRTU IDELMNOQRST JEMOP KEGHIMNPRWYZ LABCIKRSTUVY " +
  "MACDEFGHKLMNOPQRSTUVWXYZ NACEFGILOPRUZ OM PAEFGHKLMNRSTWY QA REOSUW " +
  "SABCDEGHIJKLMNORSTVXYZ TCDFGHJKLMNORTVWZ UAGMSYZ VACEGINU WFS YET ZAMW";

export const COUNTRY_CODES: string[] = PACKED.split(" ").flatMap((g) => [...g.slice(1)].map((c) => g[0] + c));

/** The page's language: country names match the surrounding text (and its screen-reader voice). */
const lang = () => document.documentElement.lang || "en";

let names: Intl.DisplayNames | null | undefined;

/** A country's name in the page's language; the code itself if the browser has no name for it. */
export function countryName(code: string): string {
  if (names === undefined) {
    try {
      names = new Intl.DisplayNames([lang()], { type: "region" });
    } catch {
      names = null;
    }
  }
  return names?.of(code) ?? code;
}

/** Every country as [code, name], sorted by name. */
export function countries(): [string, string][] {
  const collator = new Intl.Collator(lang());
  return COUNTRY_CODES.map((c): [string, string] => [c, countryName(c)]).sort((a, b) => collator.compare(a[1], b[1]));
}

/** The region of the browser's language (`en-GB` -> GB) when it names one we list; no guessing
 * from a bare language (`de` could be DE, AT or CH). */
export function browserCountry(): string {
  try {
    const region = new Intl.Locale(navigator.language).region ?? "";
    return COUNTRY_CODES.includes(region) ? region : "";
  } catch {
    return "";
  }
}
