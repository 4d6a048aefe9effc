"""The package's structure: layers import one way, in the order its docstring states; imports
sit at module top; no module reaches into another's private names; importing starts nothing."""

import ast
import os
import re
import subprocess
import sys
import textwrap

import pytest

import sweepnet

PACKAGE = os.path.dirname(sweepnet.__file__)

# Imports that stay inside a function, and why. The CLI loads a command's modules only when
# the command runs (`sweepnet --help` must not import jax); torch and playwright are optional
# heavy dependencies (the `bench` extra, the browser tests); devices.py configures the host
# devices before jax is first imported, so it reads jax's state inside its functions.
NESTED_OK = {
    "cli.py": None,  # any module: lazy loading of commands
    "core/devices.py": {"jax", "jax._src"},
}
OPTIONAL = {"torch", "playwright"}


def layers(doc: str = sweepnet.__doc__) -> list[str]:
    """The layer names listed in the package docstring, lowest first."""
    block = doc.split("The package is a stack of layers", 1)[1].split("\n\n", 2)[1]
    return [m.group(1) for m in re.finditer(r"^\s{4}(\w+)\s{2,}\S", block, re.M)]


def modules(root: str = PACKAGE) -> dict[str, ast.Module]:
    """Every source file of the package (by path relative to ``root``) and its syntax tree."""
    out = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith((".", "__"))]
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path) as f:
                    out[os.path.relpath(path, root)] = ast.parse(f.read(), path)
    return out


def layer_of(rel: str) -> str:
    """``engine/plan.py`` -> ``engine``; ``cli.py`` -> ``cli``; the package's own
    ``__init__.py`` and ``__main__.py`` -> ``""`` (the public face, above every layer)."""
    head = rel.split(os.sep)[0]
    if head in ("__init__.py", "__main__.py"):
        return ""
    return head.removesuffix(".py")


def imported(tree: ast.Module) -> list[tuple[ast.stmt, str]]:
    """Every import in ``tree`` (at any depth) and the module it names (``from sweepnet import
    engine`` names ``sweepnet.engine``)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "sweepnet":
                found += [(node, f"sweepnet.{a.name}") for a in node.names]
            else:
                found.append((node, node.module))
    return found


def upward_imports(root: str = PACKAGE, order: list[str] | None = None) -> list[str]:
    """``"path:line imports sweepnet.x (layer x above layer y)"`` for every import of a higher
    layer (or of the package's public face) from inside a layer."""
    order = order or layers()
    rank = {name: i for i, name in enumerate(order)}
    bad = []
    for rel, tree in sorted(modules(root).items()):
        mine = layer_of(rel)
        if not mine:
            continue
        assert mine in rank, f"{rel}: layer {mine!r} is not in the package docstring's list"
        for node, name in imported(tree):
            if name != "sweepnet" and not name.startswith("sweepnet."):
                continue
            theirs = name.split(".")[1] if "." in name else ""
            if theirs not in rank:  # the public face (`from sweepnet import load`)
                bad.append(f"{rel}:{node.lineno} imports {name} (the package's public face)")
            elif rank[theirs] > rank[mine]:
                bad.append(f"{rel}:{node.lineno} imports {name} (layer {theirs} is above "
                           f"layer {mine})")
    return bad


def nested_imports(root: str = PACKAGE) -> list[str]:
    """Imports inside a function or class that no entry of :data:`NESTED_OK` or
    :data:`OPTIONAL` allows, or that do not say why on their line or the line before."""
    bad = []
    for rel, tree in sorted(modules(root).items()):
        with open(os.path.join(root, rel)) as f:
            lines = f.read().splitlines()
        top = {id(n) for n in tree.body}
        allowed = NESTED_OK.get(rel, set())
        for node, name in imported(tree):
            if id(node) in top:
                continue
            if allowed is None:
                continue
            if name.split(".")[0] in OPTIONAL or name in allowed:
                if "#" in lines[node.lineno - 1] or lines[node.lineno - 2].strip().startswith("#"):
                    continue
                bad.append(f"{rel}:{node.lineno} imports {name} inside a function without "
                           "saying why")
            else:
                bad.append(f"{rel}:{node.lineno} imports {name} inside a function")
    return bad


def private_names(root: str = PACKAGE, package: str | None = None) -> list[str]:
    """Uses of a package module's private name in ``root``'s modules: ``from x import _y`` or
    ``module._y`` (``package``: the package's folder, default ``root``)."""
    trees = modules(root)
    ours = {os.path.splitext(os.path.basename(r))[0] for r in modules(package or root)}
    bad = []
    for rel, tree in sorted(trees.items()):
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sweepnet"):
                for a in node.names:
                    if a.name.startswith("_") and not a.name.startswith("__"):
                        bad.append(f"{rel}:{node.lineno} imports {a.name} from {node.module}")
                    elif a.name in ours:
                        aliases[a.asname or a.name] = a.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                bad.append(f"{rel}:{node.lineno} uses {node.value.id}.{node.attr}")
    return bad


def test_the_docstring_lists_the_layers():
    assert layers() == ["core", "sweep", "kernel", "train", "store", "engine", "measure",
                        "views", "bench", "cli"]
    folders = {layer_of(r) for r in modules()} - {""}
    assert folders == set(layers())


def test_layers_import_one_way():
    assert upward_imports() == []


def test_imports_sit_at_module_top():
    assert nested_imports() == []


def test_no_module_uses_another_modules_private_names():
    assert private_names() == []
    assert private_names(os.path.dirname(__file__), PACKAGE) == []  # nor do the tests


def test_no_source_file_is_over_600_lines():
    long = {}
    for folder, dirs, names in os.walk(PACKAGE):
        dirs[:] = [d for d in dirs if not d.startswith((".", "__"))]
        for name in names:
            if name.endswith((".py", ".cc", ".h")):
                with open(os.path.join(folder, name)) as f:
                    n = len(f.read().splitlines())
                if n > 600:
                    long[os.path.relpath(os.path.join(folder, name), PACKAGE)] = n
    assert long == {}


def _plant(tmp_path, files: dict[str, str]) -> str:
    root = tmp_path / "pkg"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return str(root)


def test_the_checks_catch_a_planted_upward_import_a_nested_one_and_a_private_name(tmp_path):
    root = _plant(tmp_path, {
        "core/errors.py": "from sweepnet.views import charts\n",  # upward
        "sweep/spec.py": "from sweepnet.core import errors\n"
                         "def f():\n    import jax\n    return errors._x\n",
        "views/charts.py": "from sweepnet import load\n",  # the public face, from inside
        "bench/suite.py": "def f():\n    # optional: the `bench` extra\n    import torch\n",
    })
    order = layers()
    assert upward_imports(root, order) == [
        "core/errors.py:1 imports sweepnet.views (layer views is above layer core)",
        "views/charts.py:1 imports sweepnet.load (the package's public face)"]
    assert nested_imports(root) == ["sweep/spec.py:3 imports jax inside a function"]
    assert private_names(root) == ["sweep/spec.py:4 uses errors._x"]


@pytest.mark.parametrize("command", ["import sweepnet, sweepnet.cli", "import sweepnet.views.report"
                                     ", sweepnet.measure.topology"])
def test_importing_sweepnet_starts_no_jax_backend(command):
    """`jax.distributed.initialize` must run before any backend starts (sweepnet run
    --distributed imports the CLI first), and importing must not build or run anything."""
    code = f"{command}\nfrom jax._src import xla_bridge\nprint(bool(xla_bridge._backends))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"
