// The user-agent half of the bot filter (core/src/click.rs `classify`): the npm `isbot` package,
// a maintained list of crawler, preview-fetcher and HTTP-library patterns that leaves in-app
// browsers alone. worker-build's bundler inlines it from node_modules (the version is pinned in
// package.json); V8 runs its regular expression, so the filter adds nothing to the wasm.
import { isbot } from "isbot";

export function userAgentIsBot(userAgent) {
  return isbot(userAgent);
}
