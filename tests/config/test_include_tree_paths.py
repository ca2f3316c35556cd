"""`include:local` names a path in the repository's tree, as GitLab reads it."""

from __future__ import annotations

import pytest

from runner.core.errors import ConfigError


@pytest.mark.parametrize("path", ["./inc.yml", "../x/inc.yml", "dir/./inc.yml", "dir//inc.yml"])
def test_local_includes_with_dot_segments_do_not_exist(load, path):
    # File::Local reads the path from the repository's tree at the pipeline's sha: no entry
    # of a git tree is named `.` or `..`, so such a path names no file even where the file
    # system would find one.
    files = {
        ".gitlab-ci.yml": f"include:\n  - local: {path}\nj:\n  script: x\n",
        "inc.yml": "i:\n  script: x\n",
        "dir/inc.yml": "i:\n  script: x\n",
        "x/inc.yml": "i:\n  script: x\n",
    }
    with pytest.raises(ConfigError) as info:
        load(files)
    assert [p.message for p in info.value.problems] == [f"Local file `{path}` does not exist!"]
