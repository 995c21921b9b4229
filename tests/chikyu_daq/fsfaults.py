"""Real storage faults for tests: a small tmpfs that fills up, a read-only bind mount, an ext4
image that the kernel turns read-only under open files.

All of them are kernel mounts (root only; CI runs as root). Where mounting is not permitted the
test is skipped with the reason, and with `CI=true` it fails instead, so CI cannot lose them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)


def _unavailable(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"storage fault tests need kernel mounts in CI: {why}")
    pytest.skip(f"needs kernel mounts (run as root): {why}")


def mount(*args: str) -> None:
    r = _run("mount", *args)
    if r.returncode:
        _unavailable(f"mount {' '.join(args)}: {r.stderr.strip()}")


def umount(path: Path) -> None:
    _run("umount", "-l", str(path))


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "4m") -> Iterator[Path]:
    """A real tmpfs of `size` at `path`: ENOSPC comes from the kernel."""
    path.mkdir(parents=True, exist_ok=True)
    mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    try:
        yield path
    finally:
        umount(path)


def fill(path: Path) -> Path:
    """Fill the filesystem of `path` with one file until the kernel says ENOSPC; called again,
    it tops the file up (space freed since, e.g. by a deleted segment, is taken back)."""
    filler = path / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        chunk = b"\0" * (1 << 16)
        limit = shutil.disk_usage(path).total // len(chunk) + 2
        for _ in range(limit):
            try:
                os.write(fd, chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                return filler
        raise AssertionError(f"{path} never filled up")
    finally:
        os.close(fd)


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """A read-only bind mount over `path`: new files, renames and deletions there get EROFS;
    leaving the block removes it (the disk "comes back")."""
    mount("--bind", str(path), str(path))
    try:
        r = _run("mount", "-o", "remount,ro,bind", str(path))
        if r.returncode:
            _unavailable(f"remount ro: {r.stderr.strip()}")
        yield
    finally:
        umount(path)


class Ext4:
    """A small ext4 image mounted with `errors=remount-ro`; `break_()` makes the kernel turn it
    read-only under open files, as it does on a disk error at sea."""

    def __init__(self, image: Path, mnt: Path, size_mb: int = 16) -> None:
        self.image, self.mnt = image, mnt
        if not shutil.which("mkfs.ext4"):
            _unavailable("mkfs.ext4 not installed")
        with open(image, "wb") as f:
            f.truncate(size_mb << 20)
        r = _run("mkfs.ext4", "-q", "-F", "-O", "^has_journal", str(image))
        assert r.returncode == 0, r.stderr
        mnt.mkdir(parents=True, exist_ok=True)
        self._mount(image)

    def _mount(self, image: Path) -> None:
        mount("-o", "loop,errors=remount-ro", str(image), str(self.mnt))

    def break_(self) -> None:
        dev = _run("findmnt", "-n", "-o", "SOURCE", str(self.mnt)).stdout.strip()
        trigger = Path("/sys/fs/ext4") / Path(dev).name / "trigger_fs_error"
        if not trigger.exists():
            _unavailable(f"{trigger} missing (kernel without ext4 error injection)")
        trigger.write_text("chikyu test\n")

    def replace_disk(self) -> None:
        """The crew swaps in a repaired copy of the disk at the same mount point."""
        umount(self.mnt)
        fixed = self.image.with_name(self.image.name + ".fixed")
        shutil.copyfile(self.image, fixed)
        _run("e2fsck", "-fy", str(fixed))
        self._mount(fixed)

    def close(self) -> None:
        umount(self.mnt)
