"""Where the image store lives, without importing the store (the container executor needs the
path for every job, to hide the store from jobs that run on the host's root)."""

from __future__ import annotations

import os
from pathlib import Path


def default_home() -> Path:
    """$PYCI_HOME, else $XDG_DATA_HOME/pyci (~/.local/share/pyci)."""
    env = os.environ.get("PYCI_HOME")
    if env:
        return Path(env)
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "pyci"
