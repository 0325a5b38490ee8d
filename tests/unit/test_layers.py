"""The house rules, read from the code's own imports (lazy ones inside functions too):
the contract imports no other part; runtime and tooling import only the contract; the stages import the
contract and runtime, never each other; bench imports anything but the application layer; only the
application layer (app/) sits on top. And no import circles."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYOUT: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["perfwatch"]["layout"]
PARTS = {name.split(".", 1)[1] if "." in name else "contract": folder for name, folder in LAYOUT.items()}
STAGES = {"producer", "consumer", "subscriber", "training", "export"}
ALLOWED: dict[str, set[str]] = {
    "contract": {"contract"},
    "runtime": {"contract", "runtime"},
    "tooling": {"contract", "tooling"},
    **{stage: {"contract", "runtime", stage} for stage in STAGES},
    "bench": {"contract", "runtime", "tooling", "bench", *STAGES},
    "app": set(PARTS),
}


def part_of(module: str) -> str | None:
    """Which part an imported module name belongs to (None: not ours)."""
    if module != "perfwatch" and not module.startswith("perfwatch."):
        return None
    second = module.split(".")[1] if "." in module else ""
    return second if second in PARTS and second != "contract" else "contract"


def module_name(part: str, path: Path) -> str:
    rel = path.relative_to(ROOT / PARTS[part]).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    base = "perfwatch" if part == "contract" else f"perfwatch.{part}"
    return ".".join([base, *parts])


def _type_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:`` (never run, so no circle at run time)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return out


def imports_of(path: Path, name: str, *, run_time_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    skip = _type_only(tree) if run_time_only else set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            found.add(mod)
            found |= {f"{mod}.{a.name}" for a in node.names}  # `from perfwatch import x` names a module
    return found


def modules() -> dict[str, tuple[str, Path]]:
    out: dict[str, tuple[str, Path]] = {}
    for part, folder in PARTS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "__pycache__" not in path.parts:
                out[module_name(part, path)] = (part, path)
    return out


MODULES = modules()


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_down(name: str) -> None:
    part, path = MODULES[name]
    bad = sorted(m for m in imports_of(path, name) if (p := part_of(m)) is not None and p not in ALLOWED[part]
                 and (m in MODULES or m.rsplit(".", 1)[0] in MODULES))
    assert not bad, f"{path.relative_to(ROOT)} ({part}) imports {bad}: allowed are {sorted(ALLOWED[part])}"


def test_no_import_circles() -> None:
    graph = {name: {m for m in imports_of(path, name, run_time_only=True) if m in MODULES and m != name}
             for name, (_, path) in MODULES.items()}
    # A package's __init__ is imported on the way to any of its modules; that is not a circle.
    seen: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        if node in stack:
            circles.append(stack[stack.index(node):] + [node])
            return
        if node in seen:
            return
        for nxt in sorted(graph[node]):
            visit(nxt, [*stack, node])
        seen.add(node)

    for node in sorted(graph):
        visit(node, [])
    assert not circles, "import circles: " + "; ".join(" → ".join(c) for c in circles)


def test_the_rule_catches_a_forbidden_import(tmp_path: Path) -> None:
    """The checker itself: a contract module that imports a stage is flagged."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from perfwatch.consumer.processor import StreamProcessor\n")
    found = {m for m in imports_of(bad, "perfwatch.bad") if part_of(m) not in ALLOWED["contract"]}
    assert "perfwatch.consumer.processor" in found


def test_every_folder_says_what_lives_there() -> None:
    for folder in PARTS.values():
        init = ROOT / folder / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc.splitlines()[0]) > 20, f"{folder}/__init__.py needs a one-line docstring"
