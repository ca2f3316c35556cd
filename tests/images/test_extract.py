"""Layer extraction: exact on honest tars, and nothing written outside on hostile ones."""

import io
import os
import stat

import pytest

from executors.images.extract import OPAQUE_XATTR, UnsafeLayerError, extract_layer

from .conftest import NET_RAW_CAPABILITY
from .imagelib import (
    chardev,
    compress,
    digest_of,
    directory,
    fifo,
    file,
    hardlink,
    make_tar,
    symlink,
)

pytestmark = pytest.mark.root


def extract(tar: bytes, dest, how="none"):
    dest.mkdir(exist_ok=True)
    return extract_layer(io.BytesIO(compress(tar, how)), dest)


@pytest.mark.parametrize("how", ["gzip", "zstd", "none"])
def test_diff_id_is_the_digest_of_the_uncompressed_tar(tmp_path, how):
    tar = make_tar([directory("a"), file("a/b", b"hello" * 1000)])
    assert extract(tar, tmp_path / "out", how) == digest_of(tar)
    assert (tmp_path / "out/a/b").read_bytes() == b"hello" * 1000


def test_modes_owners_times_and_special_files_are_kept(tmp_path):
    tar = make_tar(
        [
            directory("bin", mode=0o750, uid=12, gid=34, mtime=1_600_000_000),
            file("bin/suid", b"x", mode=0o4755, uid=0, gid=0, mtime=1_500_000_000),
            file("bin/sgid", b"x", mode=0o2711, uid=5, gid=6),
            directory("tmp", mode=0o1777),
            file("bin/cap", b"x", xattrs={"security.capability": NET_RAW_CAPABILITY}),
            file("bin/user", b"x", xattrs={"user.comment": b"\xff\x00binary"}),
            file("bin/orig", b"same inode"),
            hardlink("bin/link", "bin/orig"),
            symlink("bin/sym", "../etc/elsewhere"),
            symlink("bin/owned-link", "sym", uid=7, gid=8),
            chardev("bin/null", 1, 3, mode=0o666),
            fifo("bin/fifo", mode=0o620),
            file("bin/world-writable", b"w", mode=0o666),  # wider than the usual umask
            file("bin/read-only", b"still written", mode=0o400),
        ]
    )
    out = tmp_path / "out"
    old_umask = os.umask(0o022)
    try:
        extract(tar, out)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(os.lstat(out / "bin/world-writable").st_mode) == 0o666
    assert stat.S_IMODE(os.lstat(out / "bin/read-only").st_mode) == 0o400
    assert (out / "bin/read-only").read_bytes() == b"still written"
    suid = os.lstat(out / "bin/suid")
    assert stat.S_IMODE(suid.st_mode) == 0o4755 and suid.st_mtime == 1_500_000_000
    sgid = os.lstat(out / "bin/sgid")
    assert stat.S_IMODE(sgid.st_mode) == 0o2711 and (sgid.st_uid, sgid.st_gid) == (5, 6)
    assert stat.S_IMODE(os.lstat(out / "tmp").st_mode) == 0o1777
    bindir = os.lstat(out / "bin")
    # the directory's mtime survives the files written into it afterwards
    assert (bindir.st_uid, bindir.st_gid, bindir.st_mtime) == (12, 34, 1_600_000_000)
    assert stat.S_IMODE(bindir.st_mode) == 0o750
    assert os.getxattr(out / "bin/cap", "security.capability") == NET_RAW_CAPABILITY
    assert os.getxattr(out / "bin/user", "user.comment") == b"\xff\x00binary"
    assert os.lstat(out / "bin/link").st_ino == os.lstat(out / "bin/orig").st_ino
    assert os.readlink(out / "bin/sym") == "../etc/elsewhere"
    owned_link = os.lstat(out / "bin/owned-link")
    assert (owned_link.st_uid, owned_link.st_gid) == (7, 8)
    null = os.lstat(out / "bin/null")
    assert (
        stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1 and os.minor(null.st_rdev) == 3
    )
    assert stat.S_ISFIFO(os.lstat(out / "bin/fifo").st_mode)
    assert stat.S_IMODE(os.lstat(out / "bin/fifo").st_mode) == 0o620


def test_oci_whiteouts_become_overlayfs_whiteouts(tmp_path):
    tar = make_tar(
        [
            directory("etc"),
            file("etc/.wh.removed", b""),
            directory("var/opaque"),
            file("var/opaque/.wh..wh..opq", b""),
            file("var/opaque/kept", b"k"),
            file("implicit/.wh..wh..opq", b""),  # parent not in the tar: made for the mark
            file(".wh..wh.plnk", b""),  # AUFS bookkeeping: ignored
        ]
    )
    out = tmp_path / "out"
    extract(tar, out)
    whiteout = os.lstat(out / "etc/removed")
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == os.makedev(0, 0)
    assert not (out / "etc/.wh.removed").exists()
    assert os.getxattr(out / "var/opaque", OPAQUE_XATTR) == b"y"
    assert os.getxattr(out / "implicit", OPAQUE_XATTR) == b"y"
    assert not (out / "var/opaque/.wh..wh..opq").exists()
    assert sorted(os.listdir(out)) == ["etc", "implicit", "var"]


def test_later_entries_replace_earlier_ones(tmp_path):
    tar = make_tar(
        [
            file("x", b"first"),
            file("x", b"second"),
            symlink("d", "/somewhere"),
            directory("d"),
            file("d/inside", b"ok"),
        ]
    )
    out = tmp_path / "out"
    extract(tar, out)
    assert (out / "x").read_bytes() == b"second"
    assert not os.path.islink(out / "d") and (out / "d/inside").read_bytes() == b"ok"


HOSTILE = {
    "dotdot": [file("../escaped", b"evil")],
    "nested-dotdot": [directory("a"), file("a/../../escaped", b"evil")],
    "absolute": [file("/tmp-escaped-abs", b"evil")],
    "symlink-parent": [symlink("link", "{outside}"), file("link/escaped", b"evil")],
    "relative-symlink-parent": [
        symlink("up", "../.."),
        file("up/escaped", b"evil"),
    ],
    "symlink-chain": [
        directory("a"),
        symlink("a/b", "../../.."),
        symlink("c", "a/b"),
        file("c/escaped", b"evil"),
    ],
    "hardlink-outside": [hardlink("stolen", "../../etc/passwd")],
    "hardlink-absolute": [hardlink("stolen", "/etc/passwd")],
    "hardlink-through-symlink": [symlink("s", "{outside}"), hardlink("h", "s/victim")],
    "hardlink-missing": [hardlink("h", "not/there")],
    "whiteout-through-symlink": [symlink("s", "{outside}"), file("s/.wh.victim", b"")],
    "opaque-through-symlink": [symlink("s", "{outside}"), file("s/.wh..wh..opq", b"")],
    "device-through-symlink": [symlink("s", "{outside}"), chardev("s/dev", 1, 3)],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_layers_are_rejected_without_writing_outside(tmp_path, case):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("precious")
    layer_dir = tmp_path / "deep" / "store" / "layer"
    layer_dir.mkdir(parents=True)
    entries = []
    for info, data in HOSTILE[case]:
        info.linkname = info.linkname.replace("{outside}", str(outside))
        entries.append((info, data))
    before = sorted(p for p in tmp_path.rglob("*") if layer_dir not in p.parents)
    with pytest.raises(UnsafeLayerError) as caught:
        extract(make_tar(entries), layer_dir)
    assert "\n" not in str(caught.value)
    after = sorted(p for p in tmp_path.rglob("*") if layer_dir not in p.parents)
    assert after == before
    assert (outside / "victim").read_text() == "precious"
    assert os.listdir(outside) == ["victim"]
    assert not os.path.lexists("/tmp-escaped-abs")


def test_garbage_is_rejected(tmp_path):
    with pytest.raises(UnsafeLayerError):
        extract(b"\x1f\x8b" + b"not gzip at all" * 10, tmp_path / "out")
    with pytest.raises(UnsafeLayerError):
        extract(compress(make_tar([file("a", b"x" * 5000)]), "gzip")[:-40], tmp_path / "o2")
