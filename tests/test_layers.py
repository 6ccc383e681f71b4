"""The layer contract: each layer of ``nas`` imports only the layers below it.

Checked over the source (every ``import`` statement, at module level or
inside a function; only imports under ``if TYPE_CHECKING:`` are free), as
import-linter's layers contract would, so that the rule is enforced rather
than hoped for. And what the layering buys: loading an exported model needs
neither the search nor its libraries (microsoft/nni#2434).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

LAYERS = (
    "ir",
    "blocks",
    "passes",
    "io",
    "data",
    "space",
    "latency",
    "predict",
    "export",
    "train",
    "supernet",
    "search",
    "cli",
)
"""From the bottom up. A module may import its own layer and the layers before it."""

FACADE_MAY_IMPORT = ("ir", "blocks", "passes", "io")
"""``nas/__init__.py``, the public API: what ``import nas`` loads."""


def _modules() -> dict[str, Path]:
    found = {}
    for base, package in ((ROOT / "nas", "nas"), (ROOT / "blocks", "nas.blocks")):
        for path in base.rglob("*.py"):
            parts = path.relative_to(base).with_suffix("").parts
            name = ".".join((package, *parts)).removesuffix(".__init__")
            found[name] = path
    return found


def _type_checking_only(tree: ast.AST) -> set[int]:
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            skipped.update(id(inner) for inner in ast.walk(node))
    return skipped


def _imports(path: Path, module: str) -> list[tuple[int, str, bool]]:
    """(line, imported nas module, inside a function) for every import of ``nas`` in ``path``."""
    tree = ast.parse(path.read_text())
    skipped = _type_checking_only(tree)
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside.update(id(inner) for inner in ast.walk(node) if inner is not node)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names = [base] if base != "nas" else [f"nas.{a.name}" for a in node.names]
        else:
            continue
        found += [(node.lineno, name, id(node) in inside) for name in names if name.split(".")[0] == "nas"]
    return found


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


MODULES = _modules()


def test_the_layers_cover_every_module() -> None:
    stray = sorted(m for m in MODULES if m != "nas" and _layer(m) is None)
    assert stray == [], f"modules outside every layer: {stray} (add them to a layer's package)"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_its_layer_and_those_below(module: str) -> None:
    own = _layer(module)
    allowed = FACADE_MAY_IMPORT if own is None else LAYERS[: LAYERS.index(own) + 1]
    wrong = []
    for line, name, _ in _imports(MODULES[module], module):
        target = _layer(name)
        if name == "nas":  # the facade: it loads the layers up to io
            target = FACADE_MAY_IMPORT[-1]
        if target is None:
            wrong.append(f"line {line}: {name} is in no layer")
        elif target not in allowed:
            wrong.append(f"line {line}: {own or 'nas'} imports {name} ({target} is above it)")
    assert wrong == [], f"{MODULES[module].relative_to(ROOT)}: " + "; ".join(wrong)


def test_no_import_of_nas_inside_a_function() -> None:
    # An import placed inside a function is how an import circle gets
    # papered over; with the layers above there is no circle left to dodge.
    inside = [
        f"{MODULES[m].relative_to(ROOT)}:{line} imports {name}"
        for m in sorted(MODULES)
        for line, name, in_function in _imports(MODULES[m], m)
        if in_function
    ]
    assert inside == []


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_nas_loads_no_search_library() -> None:
    loaded = _run("import sys, nas; print(' '.join(sorted(sys.modules)))").split()
    heavy = [m for m in ("optuna", "sklearn", "typer", "rich", "onnx", "onnxruntime", "nas.search") if m in loaded]
    assert heavy == []


def test_loading_an_export_needs_no_search_library(tmp_path: Path) -> None:
    import nas.export

    target = tmp_path / "lenet5"
    nas.export.export(nas.export.from_source("lenet5"), target, ("yaml", "weights"))
    out = _run(
        "import sys, torch, nas\n"
        f"model = nas.load({str(target)!r})\n"
        "print(tuple(model(torch.zeros(1, 1, 32, 32)).shape))\n"
        "heavy = ('optuna', 'sklearn', 'nas.search', 'nas.export', 'nas.latency')\n"
        "print(' '.join(m for m in heavy if m in sys.modules))"
    ).splitlines()
    assert out[0] == "(1, 10)"
    assert out[1:] in ([], [""])
