"""What a command shows while it works: progress bars and the training banner, both off with `--quiet`.

tqdm reads `TQDM_DISABLE` only for arguments a caller leaves out, and every prada bar passes
`disable=`, so the variable is read here, once for every bar.
"""

from __future__ import annotations

import os


def hidden(progress: bool = True) -> bool:
    """Whether a bar (or the banner) stays hidden: the caller said so, or TQDM_DISABLE is set (`--quiet` sets it)."""
    return not progress or os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false", "no")
