"""The target directory of an export: refused when it holds something else,
and replaced whole or not at all.

An export is written in a hidden folder beside its target and renamed into
place at the end, so an interrupted export (Ctrl-C, a full disk) leaves
either the previous directory or the new one, never a half-written one that
:func:`nas.load` would accept. An ``OSError`` of the disk (full, over quota,
read-only) while writing is reported as a :class:`~nas.ir.errors.NASError`
naming the file as the user knows it (``out/model.onnx``, not the hidden
folder) with the system's reason; the hidden folder is removed and what was
at the target before is left as it was.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from nas.io.exported import MANIFEST
from nas.ir.errors import NASError, WriteError

DISK_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO})
"""The ``errno`` values of a disk that cannot take the export: these fail the
whole export, where any other error of one format fails that format alone."""


def check_target(target: Path, overwrite: bool) -> None:
    """Refuse a target that is not a directory, holds something other than an
    export, or holds an export and ``overwrite`` is not set.

    Raises:
        NASError: naming the target and the fix.
    """
    if not target.exists():
        return
    if not target.is_dir():
        raise NASError(f"{target} exists and is not a directory", field="output", hint="choose another -o")
    if not any(target.iterdir()):
        return
    if not (target / MANIFEST).is_file():
        raise NASError(
            f"{target} is not empty and not a nas export: nothing there is replaced",
            field="output",
            hint="choose another -o, or an empty or new directory",
        )
    if not overwrite:
        raise NASError(
            f"{target} holds an export already", field="output", hint="pass --force to replace it, or choose another -o"
        )


def disk_error(error: BaseException) -> OSError | None:
    """The ``OSError`` of the disk (an errno of :data:`DISK_ERRORS`) that
    ``error`` is, or was raised from (exporters wrap what they catch); ``None``
    for any other error."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError) and current.errno in DISK_ERRORS:
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


@dataclass(frozen=True)
class Staging:
    """The hidden folder an export is written in, and the target it becomes."""

    folder: Path
    target: Path

    def shown(self, path: Path | str | None) -> Path:
        """``path`` as the user knows it: inside the target, not the hidden folder."""
        if path is None:
            return self.target
        path = Path(path)
        with contextlib.suppress(ValueError):
            return self.target / path.relative_to(self.folder)
        return path

    def write_text(self, name: str, text: str) -> None:
        """Write the file ``name`` of the export.

        Raises:
            NASError: the file cannot be written (a full disk), naming it.
        """
        try:
            (self.folder / name).write_text(text)
        except OSError as e:
            raise WriteError.of(self.target / name, e) from None


@contextlib.contextmanager
def staging(target: Path, overwrite: bool) -> Iterator[Staging]:
    """A hidden folder beside ``target`` to write into, renamed to ``target``
    when the block ends without error (after moving an old export aside),
    and removed otherwise.

    Raises:
        NASError: the folder cannot be made or renamed, or the block met a
            full disk: one line naming the file, with nothing at ``target`` lost.
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    except OSError as e:
        raise WriteError.of(Path(e.filename) if e.filename else target, e) from None
    stage = Staging(folder, target)
    try:
        yield stage
        _permissions(folder)
        _replace(folder, target, overwrite)
    except BaseException as e:
        shutil.rmtree(folder, ignore_errors=True)
        disk = None if isinstance(e, NASError) else disk_error(e)
        if disk is not None:
            raise WriteError.of(stage.shown(disk.filename), disk) from None
        raise


def _replace(folder: Path, target: Path, overwrite: bool) -> None:
    """Rename ``folder`` to ``target``; an old export there is moved aside
    first, and back if the rename fails, then removed."""
    old = None
    if target.exists() and any(target.iterdir()):
        check_target(target, overwrite)  # the target may have changed while we wrote
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(target, old)
    elif target.exists():
        target.rmdir()
    try:
        os.rename(folder, target)
    except OSError as e:
        if old is not None:
            os.rename(old, target)
        raise WriteError.of(target, e) from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _permissions(folder: Path) -> None:
    """The modes a plain ``mkdir`` and ``open`` would have given (mkdtemp
    makes the folder private, and some writers their files)."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.iterdir():
        path.chmod(0o666 & ~umask)


__all__ = ["DISK_ERRORS", "Staging", "check_target", "disk_error", "staging"]
