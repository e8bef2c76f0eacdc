"""The house rules of architecture.md, checked: no import cycle anywhere in bot/, kpis/ or
storage/, and dependencies that point inward (render and slack use the use cases, never the
reverse; kpis/ imports nothing of ours but itself)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "kpis", "storage")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


#: migrations are loaded by Alembic from their files, never imported
MODULES = {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))
           if "migrations" not in p.parts}


def imports_of(name: str) -> set[str]:
    """Our modules that `name` imports anywhere in its text (lazy imports count too)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    # imports only type checkers read (`if TYPE_CHECKING:`) run at no import time
    typing_only = {id(inner) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
                   for inner in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            # `from pkg import submodule` names the submodule; any other name, the module itself
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                       for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


def cycles() -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return groups


def test_the_graph_sees_the_layers() -> None:
    assert "bot.app.entries" in GRAPH["bot.registry"]
    assert "bot.app.context" in GRAPH["bot.app.entries"]


def test_there_is_no_import_cycle() -> None:
    assert cycles() == []


# (importer prefix, what it must never import)
RULES = [
    ("kpis", ("bot", "storage")),
    ("storage", ("bot",)),
    ("bot.app", ("bot.render", "bot.slack", "bot.registry", "bot.cli", "bot.scheduler",
                 "bot.bootstrap", "bot.server", "bot.demo")),
    ("bot.render", ("bot.slack", "bot.registry", "bot.cli", "bot.scheduler", "bot.bootstrap")),
    ("bot.scheduler", ("bot.slack", "bot.render")),
    ("bot.grammar", ("bot.app", "bot.render", "bot.slack", "storage")),
    ("bot.slack", ("bot.cli", "bot.bootstrap", "bot.server")),
]


@pytest.mark.parametrize(("importer", "forbidden"), RULES, ids=[r[0] for r in RULES])
def test_dependencies_point_inward(importer: str, forbidden: tuple[str, ...]) -> None:
    wrong = sorted(
        (name, target) for name, targets in GRAPH.items()
        if name == importer or name.startswith(importer + ".")
        for target in targets
        if any(target == f or target.startswith(f + ".") for f in forbidden)
    )
    assert wrong == []


def test_every_module_imports_on_its_own() -> None:
    """Each module of bot/ in a fresh interpreter of its own, so no import order hides a cycle."""
    script = (
        "import importlib, subprocess, sys\n"
        "bad = []\n"
        "for name in sys.argv[1:]:\n"
        "    done = subprocess.run([sys.executable, '-c', f'import {name}'], capture_output=True,"
        " text=True)\n"
        "    if done.returncode:\n"
        "        bad.append((name, done.stderr.strip().splitlines()[-1]))\n"
        "print(bad)\n"
    )
    bot_modules = sorted(name for name in MODULES if name.split(".")[0] == "bot")
    done = subprocess.run([sys.executable, "-c", script, *bot_modules], capture_output=True,
                          text=True, cwd=ROOT, timeout=240)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
