"""The container tests' leftover check (no mount, cgroup, netns, link or process survives a
test) runs after every test here too."""

from tests.container.conftest import no_leftovers  # noqa: F401
