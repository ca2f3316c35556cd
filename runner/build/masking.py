"""Masked variables never reach any output: a streaming replacer that survives chunk borders.

Output arrives in arbitrary pieces (a pipe read can split a secret in two), so the masker keeps
back the longest tail of what it has seen that could still be the start of a secret, and
releases it once the next piece (or `flush`) decides. Everything that leaves is masked.
"""

from __future__ import annotations

from collections.abc import Iterable

MASK = "[MASKED]"


class Masker:
    def __init__(self, secrets: Iterable[str]) -> None:
        # longest first, so a secret that contains another is replaced whole
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._pending = ""

    def add(self, secrets: Iterable[str]) -> None:
        """More values to mask from now on (e.g. once variables are expanded)."""
        known = set(self._secrets)
        known.update(s for s in secrets if s)
        self._secrets = sorted(known, key=len, reverse=True)

    @property
    def active(self) -> bool:
        return bool(self._secrets)

    def mask(self, text: str) -> str:
        """Mask a complete text (no state kept)."""
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def feed(self, text: str) -> str:
        """Take the next piece of a stream; return what is safe to emit now."""
        if not self._secrets:
            return text
        data = self.mask(self._pending + text)
        hold = self._held_tail(data)
        self._pending = data[len(data) - hold :] if hold else ""
        return data[: len(data) - hold]

    def flush(self) -> str:
        """The end of the stream: whatever was held back (it completed no secret)."""
        rest, self._pending = self._pending, ""
        return rest

    def _held_tail(self, data: str) -> int:
        """Length of the longest suffix of `data` that is a proper prefix of some secret."""
        longest = 0
        for secret in self._secrets:
            limit = min(len(secret) - 1, len(data))
            for size in range(limit, longest, -1):
                if data.endswith(secret[:size]):
                    longest = size
                    break
        return longest
