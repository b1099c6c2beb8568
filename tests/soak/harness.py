"""Starting the soak's `wrangler dev`: conftest's `start_wrangler` (every migration applied to a
fresh local D1, then `wrangler dev` with extra `--var`s)."""

import conftest


def start_wrangler(persist, port, inspector, extra_vars):
    """(process, base URL, note): note is always None (kept for the summary's `harness_note`)."""
    proc, base = conftest.start_wrangler(persist, port, inspector, extra_vars)
    return proc, base, None
