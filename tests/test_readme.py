"""The README's examples stay true."""

from __future__ import annotations

import re
from pathlib import Path

import nas

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_yaml_example_builds_and_round_trips() -> None:
    (text,) = re.findall(r"```yaml\n(.*?)```", README, re.S)
    g = nas.build(text)
    assert g.summary.outputs == [(10,)]
    assert nas.build(g.to_yaml()).hash == g.hash


def test_python_example_runs() -> None:
    (code,) = re.findall(r"```python\n(.*?)```", README, re.S)
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["g"].params == 11_689_512  # type: ignore[attr-defined]
    assert namespace["imported"].hash == namespace["g"].hash  # type: ignore[attr-defined]
