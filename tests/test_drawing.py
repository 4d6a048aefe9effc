"""The views' shared drawing helpers, and the one-way imports between the views."""

import ast
import pathlib

import pandas as pd
import pytest

from sweepnet import drawing

SRC = pathlib.Path(drawing.__file__).parent

# a view may import the views after it in this list, never one before it (DESIGN's module order)
VIEWS = ["drawing", "inspect", "explore", "charts", "report", "cli"]


def _sweepnet_imports(module: str) -> set[str]:
    """The sweepnet modules that ``module`` imports anywhere (also inside functions)."""
    tree = ast.parse((SRC / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "sweepnet":
                found |= {a.name for a in node.names}
            elif node.module.startswith("sweepnet."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("sweepnet.")}
    return found


@pytest.mark.parametrize("module", VIEWS[:-1])
def test_views_import_one_way(module):
    later = set(VIEWS[VIEWS.index(module) :])
    assert not (_sweepnet_imports(module) & later - {module})


def test_the_import_check_sees_function_level_imports():
    # report imports charts and inspect inside build_report: the walk must find them
    assert {"charts", "inspect", "drawing"} <= _sweepnet_imports("report")


def test_human_titles():
    assert drawing.title("data_turns") == "turns"
    assert drawing.title("learning_rate") == "learning rate"
    assert drawing.title("width") == "width"


def test_values_are_inline_json_with_nulls():
    v = drawing.values(pd.DataFrame({"a": [1.0, float("nan")]}))
    assert v == {"values": ({"a": 1.0}, {"a": None})}
