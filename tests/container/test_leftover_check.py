"""The leftover check itself: it sees what this session made, and only that."""

from __future__ import annotations

import subprocess

from executors.container.cgroupfs import Limits
from executors.container.cgroups import open_driver
from tests.container.conftest import SESSION_PREFIX, leftovers, snapshot

NEIGHBOUR_PREFIX = "pyci" + "z" * 5  # pid 36**5 - 1 in base 36: beyond any pid_max


def test_a_neighbours_objects_are_ignored_and_ours_are_caught():
    assert SESSION_PREFIX != NEIGHBOUR_PREFIX
    driver = open_driver()
    before = snapshot()
    ours = driver.create(f"{SESSION_PREFIX}-check", Limits())
    theirs = driver.create(f"{NEIGHBOUR_PREFIX}-check", Limits())
    links = (f"{SESSION_PREFIX}k", f"{NEIGHBOUR_PREFIX}k")
    try:
        for link in links:
            subprocess.run(["ip", "link", "add", link, "type", "bridge"], check=True)
        found = leftovers(before, timeout=0)
        assert set(found) == {"cgroups", "links"}
        assert found["links"] == {links[0]}
        assert {path.rsplit("/", 1)[1] for path in found["cgroups"]} == {f"{SESSION_PREFIX}-check"}
    finally:
        for link in links:
            subprocess.run(["ip", "link", "del", link], capture_output=True)
        ours.remove()
        theirs.remove()
    assert leftovers(before, timeout=0) == {}
