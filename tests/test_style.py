"""The code stays ruff-clean (lint and format), so CI catches what review misses."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The venv running the tests has ruff beside its python, on PATH or not.
RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")


@pytest.mark.skipif(RUFF is None, reason="ruff is not installed (pip install -e '.[test]')")
@pytest.mark.parametrize("command", [["check"], ["format", "--check"]])
def test_ruff(command: list[str]) -> None:
    result = subprocess.run(
        [RUFF, *command, "nas", "blocks", "search_spaces", "tests", "examples"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )  # type: ignore[list-item]
    assert result.returncode == 0, result.stdout + result.stderr
