"""`pyci run` usage errors exit 2 with one line, before anything runs."""

import pytest

from runner.cli import main


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--concurrency", "0"], "--concurrency 0: must be at least 1"),
        (["-C", "/nonexistent/dir"], "no such directory"),
    ],
)
def test_usage_errors_exit_2(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert len(err.splitlines()) == 1


def test_unknown_executor_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--executor", "docker"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'docker'" in capsys.readouterr().err
