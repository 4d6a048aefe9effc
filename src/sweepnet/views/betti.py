"""Betti numbers through the layers of the networks (``sweepnet topology``'s table)."""

from __future__ import annotations

import altair as alt
import pandas as pd

from sweepnet.views.drawing import require_rows
from sweepnet.views.drawing import values as _values


def betti(df: pd.DataFrame, column: str | None = None) -> alt.Chart:
    """Mean Betti numbers by layer (``sweepnet topology``), a line per activation.

    ``df``: the topology table joined with the runs columns ``activation``, ``width`` and
    ``depth`` (one row per run, layer and class). Rows of the chart: b0, b1 (b2 where
    measured); columns: ``column`` (default depth where it varies, so a facet's layers line
    up, else width); dashes: the class. Layer 0 is the input, depth + 1 the logits.
    """
    require_rows(df, "topology rows")
    if column is None:
        column = "depth" if df["depth"].nunique() > 1 else "width"
    numbers = [b for b in ("b0", "b1", "b2") if b in df and df[b].notna().any()]
    long = df.melt(id_vars=["layer", "class", "activation", column], value_vars=numbers,
                   var_name="betti", value_name="value").dropna(subset=["value"])
    long["value"] = long["value"].astype(float)
    agg = (long.groupby(["betti", column, "activation", "class", "layer"], as_index=False)
           .agg(mean=("value", "mean"), n=("value", "size")))
    return (
        alt.Chart(_values(agg))
        .mark_line(point=True)
        .encode(
            x=alt.X("layer:O", title="layer (0 = input, last = logits)"),
            y=alt.Y("mean:Q", title="mean Betti number"),
            color=alt.Color("activation:N"),
            strokeDash=alt.StrokeDash("class:N"),
            tooltip=["betti:N", f"{column}:O", "activation:N", "class:N", "layer:O",
                     alt.Tooltip("mean:Q", format=".2f"), "n:Q"],
        )
        .properties(width=180, height=140)
        .facet(row=alt.Row("betti:N", title=None), column=alt.Column(f"{column}:O"))
        .resolve_scale(x="independent", y="independent")
    )
