// The email halves of the fraud rules (core/src/fraud.rs): maintained public lists, bundled from
// node_modules at build time (versions pinned in package.json), looked up as exact domains (the
// core tries a domain's parents too).
// - free-mail providers (`email_domain_match` ignores a shared gmail.com): npm `email-providers`,
//   the goware/emailproviders list (all.json);
// - disposable-mail services (`disposable_email`): npm `disposable-email-domains-js`, the
//   disposable-email-domains/disposable-email-domains blocklist.
// Each Set is built on first use in the isolate: the redirect path never pays for them.
import freeMail from "email-providers/all.json";
import disposable from "disposable-email-domains-js/dist/dict/disposable_email_blocklist.json";

let freeSet = null;
let disposableSet = null;

export function isFreeMailDomain(domain) {
  if (freeSet === null) freeSet = new Set(freeMail);
  return freeSet.has(domain);
}

export function isDisposableDomain(domain) {
  if (disposableSet === null) disposableSet = new Set(disposable);
  return disposableSet.has(domain);
}
