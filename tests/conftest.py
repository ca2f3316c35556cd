"""Settings of the whole test session, made before any test module is imported.

`PYCI_ID_PREFIX`: everything pyci makes on the host during this session (container ids and so
scratch dirs and cgroups, host-side veths, the sources' overlay mounts), in this process and
in every `pyci` it starts, is named with a prefix of this session's own: `pyci` and this
process's pid in base 36 (five characters hold any pid, and no two live sessions share one).
The leftover checks (tests/container/conftest.py) look only at names with that prefix, so
other pyci runs and test sessions on the same machine neither fail nor hide them.
"""

from __future__ import annotations

import os

_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def _session_prefix(pid: int) -> str:
    tag = ""
    for _ in range(5):  # 36**5 > 2**22, the largest pid_max
        pid, digit = divmod(pid, 36)
        tag = _DIGITS[digit] + tag
    return "pyci" + tag


os.environ["PYCI_ID_PREFIX"] = _session_prefix(os.getpid())
