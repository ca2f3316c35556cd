"""Files full of holes stay full of holes: a layer's sparse file takes the disk its data
needs, not its length (as with containerd's applier)."""

import gzip
import io
import os
import subprocess
from pathlib import Path

import pytest

from executors.images.extract import extract_layer

from .imagelib import file, make_tar

pytestmark = pytest.mark.root
GIB = 1 << 30


def allocated(path: Path) -> int:
    return os.lstat(path).st_blocks * 512


def sparse_tar(tmp_path: Path, tar_format: str) -> bytes:
    """A 6 GiB file holding three short runs of data, archived by GNU tar as sparse."""
    source = tmp_path / "source"
    source.mkdir()
    big = source / "disk.img"
    with open(big, "wb") as out:
        out.truncate(6 * GIB)
        for offset, data in ((0, b"head"), (3 * GIB + 5, b"middle"), (6 * GIB - 4, b"tail")):
            out.seek(offset)
            out.write(data)
    archive = tmp_path / f"{tar_format}.tar"
    subprocess.run(
        ["tar", "--sparse", f"--format={tar_format}", "-cf", str(archive), "-C", str(source), "."],
        check=True,
    )
    assert archive.stat().st_size < 1 << 20  # the archive itself holds no holes
    return archive.read_bytes()


@pytest.mark.parametrize("tar_format", ["gnu", "pax"])
def test_a_sparse_member_is_extracted_sparse(tmp_path, tar_format):
    layer = tmp_path / "layer"
    layer.mkdir()
    extract_layer(io.BytesIO(gzip.compress(sparse_tar(tmp_path, tar_format))), layer)
    big = layer / "disk.img"
    assert big.stat().st_size == 6 * GIB
    assert allocated(big) < 1 << 20
    fd = os.open(big, os.O_RDONLY)
    try:
        assert os.pread(fd, 4, 0) == b"head"
        assert os.pread(fd, 8, 3 * GIB + 4) == b"\0middle\0"
        assert os.pread(fd, 4, 6 * GIB - 4) == b"tail"
        assert os.pread(fd, 4096, 2 * GIB) == bytes(4096)
    finally:
        os.close(fd)


def test_runs_of_zeros_in_a_plain_member_become_holes(tmp_path):
    """A tar without sparse headers (most image builders write those): whole blocks of
    zeros are not written, in small files (created by the workers) and big (streamed) ones."""
    data = os.urandom(5000) + bytes(40 << 20) + b"end"
    small = b"x" * 10 + bytes(64 << 10) + b"y"
    ends_in_zeros = b"z" + bytes(20 << 20)
    tar = make_tar([file("big", data), file("small", small), file("trailing", ends_in_zeros)])
    layer = tmp_path / "layer"
    layer.mkdir()
    extract_layer(io.BytesIO(gzip.compress(tar, 1)), layer)
    assert (layer / "big").read_bytes() == data
    assert (layer / "small").read_bytes() == small
    assert (layer / "trailing").read_bytes() == ends_in_zeros
    # (a file system may allocate a block or two more than the data: still nothing like MiBs)
    for name in ("big", "small", "trailing"):
        assert allocated(layer / name) < 64 << 10, name


def test_ordinary_files_are_unchanged(tmp_path):
    """Data with zeros that are not whole aligned blocks is written as it is."""
    data = b"".join(os.urandom(3000) + bytes(4095) for _ in range(300))
    layer = tmp_path / "layer"
    layer.mkdir()
    extract_layer(io.BytesIO(make_tar([file("f", data, mode=0o755)])), layer)
    assert (layer / "f").read_bytes() == data
    assert os.stat(layer / "f").st_mode & 0o777 == 0o755
