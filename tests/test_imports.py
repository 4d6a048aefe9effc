"""Imports flow one way: no module of the package imports (directly or through others) a
module that imports it back, at module level or inside a function."""

import ast
import os

import sweepnet

PACKAGE = os.path.dirname(sweepnet.__file__)


def _graph() -> dict[str, set[str]]:
    graph = {}
    for name in sorted(os.listdir(PACKAGE)):
        if not name.endswith(".py") or name in ("__init__.py", "__main__.py"):
            continue
        me = name[:-3]
        with open(os.path.join(PACKAGE, name)) as f:
            tree = ast.parse(f.read())
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module == "sweepnet":
                    deps.update(a.name for a in node.names)
                elif node.module.startswith("sweepnet."):
                    deps.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                deps.update(a.name.split(".")[1] for a in node.names
                            if a.name.startswith("sweepnet."))
        graph[me] = deps - {me}
    return graph


def _cycle(graph):
    """One import cycle as a list of modules, or None."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                return path[path.index(dep):] + [dep]
            if dep not in state and (found := visit(dep, path + [dep])):
                return found
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_the_package_has_no_import_cycles():
    graph = _graph()
    assert {"engine", "plan", "train", "fused", "programs", "spec"} <= set(graph)
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_importing_sweepnet_starts_no_jax_backend():
    """`jax.distributed.initialize` must run before any backend starts (sweepnet run
    --distributed imports the CLI first), and importing must not build or run anything."""
    import subprocess
    import sys

    code = ("import sweepnet, sweepnet.cli, sweepnet.topology, sweepnet.report\n"
            "from jax._src import xla_bridge\n"
            "print(bool(xla_bridge._backends))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"
