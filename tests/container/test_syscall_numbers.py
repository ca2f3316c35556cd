"""System call numbers by machine: the known ones are used, an unknown machine is an error."""

from __future__ import annotations

import errno
import os

import pytest

from executors.linux import syscalls


def _pretend_machine(monkeypatch: pytest.MonkeyPatch, machine: str) -> None:
    real = os.uname()
    fake = os.uname_result((real.sysname, real.nodename, real.release, real.version, machine))
    monkeypatch.setattr(os, "uname", lambda: fake)


def test_an_unknown_machine_fails_with_one_clear_line(monkeypatch):
    _pretend_machine(monkeypatch, "riscv64")
    with pytest.raises(OSError) as caught:
        syscalls.capget()
    assert caught.value.errno == errno.ENOSYS
    message = str(caught.value)
    assert "\n" not in message
    assert "capget" in message and "riscv64" in message
    assert "x86_64" in message and "aarch64" in message


def test_this_machine_is_known_and_its_numbers_work():
    # the suite runs on x86_64 or aarch64: capget with this machine's number answers for us
    assert os.uname().machine in ("x86_64", "aarch64")
    effective, permitted, _ = syscalls.capget()
    assert effective & permitted == effective
