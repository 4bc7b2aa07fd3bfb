"""The layout's rules, checked on the source (function-local imports included):

- no import circle anywhere in ``envs``, ``baselines``, ``suite``, ``maskbench``;
- data flows one way: ``envs`` imports neither ``baselines`` nor ``suite``, ``baselines`` not ``suite``;
- ``envs`` imports itself by relative imports only (``maskbench`` may load it under its own name);
- backends are peers: no backend module imports another backend's;
- no module imports another module's private (``_name``) attribute;
- tests import each other never, only ``tests.helpers``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("envs", "baselines", "suite", "maskbench")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules(packages=PACKAGES) -> dict[str, Path]:
    return {module_name(path): path for package in packages for path in (ROOT / package).rglob("*.py")}


def imports_of(path: Path, modules: dict[str, Path]) -> list[tuple[str, str | None]]:
    """``(module, attribute)`` of every import of ``modules``' packages in ``path`` (anywhere in the file);
    ``attribute`` is the imported name of ``from module import name`` when ``name`` is not a module."""
    roots = {name.split(".")[0] for name in modules}
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names if alias.name.split(".")[0] in roots]
        elif isinstance(node, ast.ImportFrom):
            module = absolute(node, path)
            if not module or module.split(".")[0] not in roots:
                continue
            for alias in node.names:
                child = f"{module}.{alias.name}"
                found.append((child, None) if child in modules else (module, alias.name))
    return found


def absolute(node: ast.ImportFrom, path: Path) -> str | None:
    """The module ``node`` imports from, a relative import (``from .core import X`` in ``envs/views.py``)
    resolved against ``path``'s package."""
    if node.level == 0:
        return node.module
    package = module_name(path).split(".") if path.name == "__init__.py" else module_name(path).split(".")[:-1]
    base = package[:len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def graph() -> dict[str, set[str]]:
    modules = project_modules()
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for module, _ in imports_of(path, modules):
            while module not in modules and "." in module:  # ``import a.b.c``: the deepest project module
                module = module.rsplit(".", 1)[0]
            if module in modules and module != name:
                targets.add(module)
        edges[name] = targets
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_checker_finds_a_circle_and_a_clean_graph_has_none():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_import_circle():
    edges = graph()
    assert len(edges) > 30 and sum(len(t) for t in edges.values()) > 50  # it did read the project
    assert cycles(edges) == []


@pytest.mark.parametrize("package, forbidden", [("envs", ("baselines", "suite")), ("baselines", ("suite",))])
def test_data_flows_one_way(package, forbidden):
    wrong = [(module, target) for module, targets in graph().items() if module.split(".")[0] == package
             for target in targets if target.split(".")[0] in forbidden]
    assert wrong == []


def test_envs_imports_itself_only_relatively():
    """``from .core import EnvCore``, never ``from envs.core import EnvCore``: where a user's own ``envs`` package
    hides the suite's, ``maskbench`` loads the suite's as ``maskbench.envs``, and an absolute ``envs`` import in
    it would reach the user's package instead."""
    absolute_imports = []
    for name, path in project_modules(("envs",)).items():
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            absolute_imports += [(name, target) for target in names if target.split(".")[0] == "envs"]
    assert absolute_imports == []


def test_relative_imports_are_read():
    edges = graph()
    assert {"envs.core", "envs.config"} <= edges["envs.views"] and "envs.registry" in edges["envs.portfolio"]


def test_backends_are_peers():
    family = {"rllib": "rllib", "torch": "torch", "sb3": "sb3"}

    def backend(module: str) -> str | None:
        if not module.startswith("baselines.backends."):
            return None
        return family.get(module.rsplit(".", 1)[1].split("_")[0])

    crossing = [(module, target) for module, targets in graph().items() if backend(module)
                for target in targets if backend(target) and backend(target) != backend(module)]
    assert crossing == []


def test_no_private_imports_across_modules():
    modules = project_modules()
    private = [(name, f"{module}.{attribute}") for name, path in modules.items()
               for module, attribute in imports_of(path, modules) if attribute and attribute.startswith("_")]
    assert private == []


def test_tests_import_only_the_helpers():
    modules = project_modules(("tests",))
    plugin = ("tests.conftest", "tests.robustness.survey")  # the survey's areas decide what --survey runs
    wrong = [(name, module) for name, path in modules.items() for module, _ in imports_of(path, modules)
             if module != "tests.helpers" and (name, module) != plugin]
    assert wrong == []


def test_the_architecture_page_names_every_module_and_method():
    """docs/architecture.md lists every module of envs/, baselines/ and suite/ (by file name) and every
    registered method: a module or method added without a line there fails the default run."""
    from baselines.method import Method
    from baselines.registry import algo_names, load_algo

    page = (ROOT / "docs" / "architecture.md").read_text()
    missing = sorted(str(path.relative_to(ROOT)) for path in project_modules().values()
                     if path.name != "__init__.py" and path.name not in page)
    assert not missing, f"docs/architecture.md does not name {missing}"
    methods = [name for name in algo_names() if isinstance(load_algo(name), Method)]
    assert len(methods) >= 7 and not [name for name in methods if name not in page]
