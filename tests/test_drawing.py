"""The views' shared drawing helpers."""

import pandas as pd

from sweepnet.views import drawing


def test_human_titles():
    assert drawing.title("data_turns") == "turns"
    assert drawing.title("learning_rate") == "learning rate"
    assert drawing.title("width") == "width"


def test_values_are_inline_json_with_nulls():
    v = drawing.values(pd.DataFrame({"a": [1.0, float("nan")]}))
    assert v == {"values": ({"a": 1.0}, {"a": None})}
