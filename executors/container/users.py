"""Resolve `user` strings (Docker's `USER` syntax) against the container's own /etc files."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResolvedUser:
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str


def _read_table(path: str) -> list[list[str]]:
    try:
        with open(path, "rb") as f:  # bytes, decoded at once: no text layer per file
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return [line.split(":") for line in text.splitlines() if line.strip()]


def resolve_user(user: str | None, etc: str = "/etc") -> ResolvedUser:
    """`name`, `uid`, `name:group`, `uid:gid`; a numeric uid unknown to passwd is allowed
    (Docker runs it with gid 0). Raises `LookupError` for an unknown name."""
    if not user:
        user = "0"
    name, _, group = user.partition(":")
    passwd = _read_table(f"{etc}/passwd")
    groups = _read_table(f"{etc}/group")
    entry = next((e for e in passwd if len(e) >= 6 and (e[0] == name or e[2] == name)), None)
    if entry is not None:
        uid, gid, home, user_name = int(entry[2]), int(entry[3]), entry[5], entry[0]
    elif name.isdigit():
        uid, gid, home, user_name = int(name), 0, "/", None
    else:
        raise LookupError(f"unable to find user {name}: no matching entries in passwd file")
    if group:
        found = next((g for g in groups if len(g) >= 3 and (g[0] == group or g[2] == group)), None)
        if found is not None:
            gid = int(found[2])
        elif group.isdigit():
            gid = int(group)
        else:
            raise LookupError(f"unable to find group {group}: no matching entries in group file")
    extra = tuple(
        int(g[2])
        for g in groups
        if user_name and len(g) >= 4 and user_name in g[3].split(",") and g[2].isdigit()
    )
    return ResolvedUser(uid, gid, tuple(sorted({gid, *extra})), home or "/")
