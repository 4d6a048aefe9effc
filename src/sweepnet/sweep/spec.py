"""Sweep specs: TOML in, a validated frozen :class:`Spec` out, expanded into a grid of runs.

Any list value is a sweep axis and the grid is the Cartesian product of the axes. The
dataset parameters live in ``[data.<dataset>]`` and apply only to that dataset, so a sweep
over several datasets is the union of one product per dataset.

A run's id is a hash of its configuration (:func:`run_id`), so a key added to the schema must
leave every existing spec's ids as they were. Such a key is *optional* (:data:`OPTIONAL`):
it enters the resolved spec only when given at a value other than its default, and a run's
configuration only where its value is not the default. A spec without it resolves to the
same tree (so the same fingerprint and stored ``spec.toml``) and the same run ids as before.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import itertools
import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import tomllib

from sweepnet.core.errors import SweepnetError
from sweepnet.sweep.data import DATASETS, read_points
from sweepnet.sweep.data import problem as data_problem
from sweepnet.sweep.models import ACTIVATIONS, ARCHS
from sweepnet.sweep.optimizers import OPTIMIZERS


@dataclasses.dataclass(frozen=True)
class Key:
    """Schema of one spec key."""

    kind: type
    default: Any
    lo: float | None = None
    hi: float | None = None
    choices: Sequence[str] | None = None
    sweep: bool = True  # may be a list (a sweep axis)
    doc: str = ""
    optional: bool = False  # in the tree and a run's configuration only when not the default


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def suggest(word: Any, known: Sequence[str]) -> str:
    """``" (did you mean 'tanh'?)"`` for the closest of ``known``, or ``""`` if none is close."""
    close = difflib.get_close_matches(str(word), list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


SCHEMA: dict[str, dict[str, Key]] = {
    "": {
        "name": Key(str, None, sweep=False, doc="sweep name; also the default results folder"),
        "description": Key(str, "", sweep=False, doc="free text"),
    },
    "data": {
        "dataset": Key(str, None, choices=tuple(DATASETS), doc="dataset name(s)"),
        "n_train": Key(int, 512, 2, 1_000_000, doc="training points"),
        "n_test": Key(int, 8192, 1, 10_000_000, doc="points in the dense held-out probe"),
        "noise": Key(float, 0.0, 0.0, None, doc="std of Gaussian jitter added to the points"),
        "data_seed": Key(int, 0, 0, 2**31 - 1, doc="seed of the data draw"),
        "standardize": Key(bool, False, optional=True,
                           doc="rescale a file's features to zero mean, unit variance"),
    },
    "model": {
        "arch": Key(str, "mlp", choices=tuple(ARCHS), doc="architecture"),
        "width": Key(int, None, 1, 4096, doc="units in every hidden layer"),
        "depth": Key(int, None, 1, 256, doc="number of hidden layers"),
        "activation": Key(str, "tanh", choices=tuple(ACTIVATIONS), doc="nonlinearity"),
        "init_scale": Key(float, 1.0, 0.0, None, doc="weights ~ N(0, init_scale^2 / fan_in)"),
    },
    "train": {
        "optimizer": Key(str, "adam", choices=tuple(OPTIMIZERS), doc="optax optimizer"),
        "learning_rate": Key(float, 0.01, 0.0, None, doc="step size"),
        "lr_decay": Key(float, 1.0, 0.0, 1.0, optional=True,
                        doc="the step size is multiplied by this every lr_decay_every steps"),
        "lr_decay_every": Key(int, 1000, 1, 10_000_000, optional=True,
                              doc="steps between two decays of the step size"),
        "steps": Key(int, 1000, 1, 10_000_000, doc="optimizer steps"),
        "batch_size": Key(int, 0, 0, 1_000_000, doc="minibatch size, 0 = full batch"),
        "seeds": Key(int, 4, 0, 2**31 - 1, doc="n → seeds 0..n-1, or a list of seeds"),
        "eval_every": Key(int, 100, 1, 10_000_000, sweep=False, doc="steps between evals"),
        "separation": Key(float, 1.0, 0.0, 1.0, sweep=False,
                          doc="test accuracy at or above which a run counts as separated"),
        "stop": Key(str, "never", choices=("never", "separated"), sweep=False, optional=True,
                    doc="'separated': a network stops at its first evaluation that separated "
                        "(or diverged) and its slot takes the next network"),
    },
    # an adaptive sweep (engine/adaptive.py): never in a run's configuration or its row, so a
    # network's result does not depend on it; without the section the grid is trained whole
    "search": {
        "mode": Key(str, "grid", choices=("grid", "boundary"), sweep=False, optional=True,
                    doc="'boundary': seeds go where the phase boundary is in doubt"),
        "threshold": Key(float, 0.5, 0.0, 1.0, sweep=False, optional=True,
                         doc="the share of seeds separated the boundary is about"),
        "confidence": Key(float, 0.95, 0.5, 0.9999, sweep=False, optional=True,
                          doc="each verdict's confidence, over all the search's looks"),
        "looks": Key(int, [7, 16, 32], 1, 2**31 - 1, optional=True,
                     doc="the seed counts at which a cell is judged, increasing (cut at "
                         "train.seeds, always the last look)"),
    },
}

# Columns of a run's configuration, in the order they appear in the results table.
CONFIG_KEYS = ("dataset", "n_train", "n_test", "noise", "data_seed", "arch", "width", "depth",
               "activation", "init_scale", "optimizer", "learning_rate", "steps", "batch_size",
               "eval_every", "seed")
# Keys added since, by dotted key: the column a run's configuration holds them in, where (and
# only where) the value is not the default (the module's docstring says why). The column
# follows the others; data.standardize is one of a `file` run's only.
OPTIONAL = {"data.standardize": "data_standardize", "train.lr_decay": "lr_decay",
            "train.lr_decay_every": "lr_decay_every"}

DEFAULTS = {col: SCHEMA[dotted.split(".")[0]][dotted.split(".")[1]].default
            for dotted, col in OPTIONAL.items()}


@dataclasses.dataclass(frozen=True)
class Spec:
    """A validated sweep spec. ``tree`` is the resolved TOML (defaults filled in)."""

    tree: Mapping[str, Any]
    source: str = "spec"

    @property
    def name(self) -> str:
        return self.tree["name"]

    @property
    def separation(self) -> float:
        return self.tree["train"]["separation"]

    def to_toml(self) -> str:
        return dumps_toml(self.tree)

    def fingerprint(self) -> str:
        """Hash of everything that decides which runs exist and what they compute."""
        tree = {k: v for k, v in self.tree.items() if k != "description"}
        return hashlib.sha256(json.dumps(tree, sort_keys=True).encode()).hexdigest()[:16]

    def grid(self) -> list[dict[str, Any]]:
        """All run configurations: flat dicts with ``CONFIG_KEYS`` and ``data_<param>``, and
        the columns of :data:`OPTIONAL` keys not at their default."""
        return [{**base, "seed": seed} for base, seeds in self.combos() for seed in seeds]

    def combos(self) -> list[tuple[dict[str, Any], list[Any]]]:
        """The grid as ``(configuration without its seed, seeds)`` pairs, in grid order."""
        d, m, t = self.tree["data"], self.tree["model"], self.tree["train"]
        common = {**{k: d[k] for k in ("n_train", "n_test", "noise", "data_seed")},
                  **{k: m[k] for k in ("arch", "width", "depth", "activation", "init_scale")},
                  **{k: t[k] for k in ("optimizer", "learning_rate", "steps", "batch_size")}}
        axes = {k: _as_list(v) for k, v in common.items()}
        given = leaves(self.tree)
        extra = {col: _as_list(given[k]) for k, col in OPTIONAL.items()
                 if k in given and k.startswith("train.")}
        seeds = t["seeds"] if isinstance(t["seeds"], list) else list(range(t["seeds"]))
        runs = []
        for ds in _as_list(d["dataset"]):
            dparams = d.get(ds, {})
            daxes = {f"data_{k}": _as_list(v) for k, v in sorted(dparams.items())}
            if ds == "file" and "standardize" in d:  # a generated dataset is at unit scale
                daxes["data_standardize"] = _as_list(d["standardize"])
            names = list(daxes) + list(axes) + list(extra)
            for combo in itertools.product(*daxes.values(), *axes.values(), *extra.values()):
                cfg = dict(zip(names, combo, strict=True))
                if data_problem(ds, {k[5:]: cfg[k] for k in daxes}):
                    continue  # parameters that make no dataset together (balls: holes > components)
                cfg = {k: v for k, v in cfg.items() if k not in DEFAULTS or v != DEFAULTS[k]}
                runs.append(({"dataset": ds, **cfg, "eval_every": t["eval_every"]}, seeds))
        return runs


def settings(spec: Spec, section: str) -> str:
    """``"[train] optimizer "adam" (default), steps 600, ..."``: every key of ``section`` with
    its value in ``spec``, those left at their default marked (what ``sweepnet plan`` shows)."""
    given = spec.tree[section]
    words = []
    for name, key in SCHEMA[section].items():
        now = given.get(name, key.default)
        mark = " (default)" if key.default is not None and now == key.default else ""
        words.append(f"{name} {_toml_value(now)}{mark}")
    return f"[{section}] " + ", ".join(words)


# How a results folder may grow (``results.Store.open``). Every key of a spec is one of:
# - part of each run's configuration, so of its id: a change adds and hides runs, and every
#   finished run whose configuration is unchanged is kept;
# - free text and the search's settings (``FREE_KEYS``): never in a run's row, so any change
#   is fine;
# - stored in every finished run's row (``STORED_KEYS``, key -> column): a change would make
#   those rows wrong, so growing refuses it. So does any key not classified here.
# train.stop is stored, not in the run id: a network's seed is drawn from its id, so stopping
# trains the very networks a full grid trains (each up to its stop), and a full grid's outcomes
# replay an adaptive search's (a stopped row still differs: growing refuses the change).
STORED_KEYS = {"name": "sweep", "train.separation": "separated", "train.stop": "stopped_at"}
FREE_KEYS = ("description", "search.mode", "search.threshold", "search.confidence",
             "search.looks")


def leaves(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested spec tree as ``{dotted key: value}``."""
    out = {}
    for k, v in tree.items():
        if isinstance(v, Mapping):
            out.update(leaves(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def changed_keys(old: Spec, new: Spec) -> list[str]:
    """Dotted keys whose resolved value differs between two specs (added or removed too)."""
    a, b = leaves(old.tree), leaves(new.tree)
    return sorted(k for k in a.keys() | b.keys() if a.get(k, None) != b.get(k, None))


def in_run_id(dotted: str) -> bool:
    """Whether a spec key's value is part of every run's configuration (and so of its id)."""
    section, _, rest = dotted.partition(".")
    if dotted in OPTIONAL:
        return True
    if section == "data":  # data.<dataset>.<param> becomes column data_<param>
        return rest in CONFIG_KEYS or "." in rest
    return section in ("model", "train") and (rest in CONFIG_KEYS or rest == "seeds")


def grow_conflicts(old: Spec, new: Spec) -> list[str]:
    """Changed keys that would make the finished runs of ``old`` wrong under ``new``."""
    return [k for k in changed_keys(old, new) if not in_run_id(k) and k not in FREE_KEYS]


def _as_list(v):
    return list(v) if isinstance(v, list) else [v]


def run_id(config: Mapping[str, Any]) -> str:
    """Stable 16-hex-digit hash of a run configuration (order of keys does not matter)."""
    blob = json.dumps({k: config[k] for k in sorted(config)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


SEED_MARK = -7_364_921_850_123_457  # stands for the seed in a configuration's JSON template


def seeded_ids(base: Mapping[str, Any], seeds: Sequence[Any]) -> list[str]:
    """``[run_id({**base, "seed": s}) for s in seeds]``, fast: integer seeds go into one JSON
    text of ``base`` with the seed cut out (a million ids: about 1 s instead of 10 s)."""
    blob = json.dumps({k: v for k, v in sorted({**base, "seed": SEED_MARK}.items())},
                      sort_keys=True, default=str)
    parts = blob.split(f'"seed": {SEED_MARK}')
    if len(parts) != 2:
        return [run_id({**base, "seed": s}) for s in seeds]
    head, tail = parts[0] + '"seed": ', parts[1]
    return [hashlib.sha256(f"{head}{s}{tail}".encode()).hexdigest()[:16] if type(s) is int
            else run_id({**base, "seed": s}) for s in seeds]


def _check_value(where: str, key: Key, value: Any) -> Any:
    """Validate one scalar against its schema; returns it normalised (int → float)."""
    if key.kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, key.kind) or isinstance(value, bool) and key.kind is not bool:
        raise SweepnetError(f"{where}: expected {key.kind.__name__}, got {value!r}")
    if key.choices is not None and value not in key.choices:
        choices = ", ".join(key.choices)
        raise SweepnetError(f"{where}: unknown value {value!r}{suggest(value, key.choices)} "
                            f"(choose from {choices})")
    if key.lo is not None and value < key.lo or key.hi is not None and value > key.hi:
        lo = "-inf" if key.lo is None else key.lo
        hi = "inf" if key.hi is None else key.hi
        raise SweepnetError(f"{where}: {value!r} is out of range [{lo}, {hi}]")
    if key.kind is float and value != value:
        raise SweepnetError(f"{where}: NaN is not allowed")
    return value


def _check(where: str, key: Key, value: Any) -> Any:
    if isinstance(value, list):
        if not key.sweep:
            raise SweepnetError(f"{where}: a single value is required, not a list")
        if not value:
            raise SweepnetError(f"{where}: empty list")
        out = [_check_value(where, key, v) for v in value]
        if len(set(map(repr, out))) != len(out):
            raise SweepnetError(f"{where}: repeated values in {value!r}")
        return out
    return _check_value(where, key, value)


def _check_looks(where: str, looks: Any) -> list[int]:
    """``search.looks`` as an increasing list of seed counts (one number: a single look
    before the last, which is always ``train.seeds``)."""
    looks = looks if isinstance(looks, list) else [looks]
    if any(b <= a for a, b in zip(looks, looks[1:], strict=False)):
        raise SweepnetError(f"{where}: need increasing seed counts, got {looks!r}")
    return looks


class _Origin:
    """Says where a key's value came from: ``--set KEY`` or ``FILE: KEY`` (for error messages)."""

    def __init__(self, source: str, overridden: frozenset[str] = frozenset()):
        self.source, self.overridden = source, overridden

    def __call__(self, dotted: str) -> str:
        parts = dotted.split(".")
        ancestors = {".".join(parts[: i + 1]) for i in range(len(parts))}
        if ancestors & self.overridden or any(o.startswith(dotted + ".")
                                              for o in self.overridden):
            return f"--set {dotted}"
        return f"{self.source}: {dotted}"


def validate(raw: Mapping[str, Any], source: str = "spec",
             overridden: frozenset[str] = frozenset()) -> Spec:
    """Check every key and value of a parsed TOML tree and fill in defaults.

    ``overridden``: dotted keys given by ``--set``; their errors name ``--set``, not ``source``.
    """
    where = _Origin(source, overridden)
    tree: dict[str, Any] = {}
    for name in raw:
        if name not in SCHEMA[""] and name not in ("data", "model", "train", "search"):
            known = [*SCHEMA[""], "data", "model", "train", "search"]
            raise SweepnetError(f"{where(name)}: unknown key or section{suggest(name, known)}")
    for section in ("model", "train", "search"):
        if not isinstance(raw.get(section, {}), dict):
            raise SweepnetError(f"{where(section)}: [{section}] must be a table")
        for name in raw.get(section, {}):
            if name not in SCHEMA[section]:
                raise SweepnetError(f"{where(f'{section}.{name}')}: unknown key"
                                    f"{suggest(name, SCHEMA[section])}")
    for section, keys in SCHEMA.items():
        given = raw if section == "" else raw.get(section, {})
        if section and not isinstance(given, dict):
            raise SweepnetError(f"{where(section)}: [{section}] must be a table")
        out = tree if section == "" else tree.setdefault(section, {})
        for name, key in keys.items():
            dotted = f"{section + '.' if section else ''}{name}"
            if name not in given:
                if key.default is None:
                    raise SweepnetError(f"{source}: {dotted}: required key is missing")
                if not key.optional:
                    out[name] = copy.deepcopy(key.default)
                continue
            out[name] = _check(where(dotted), key, given[name])
            if dotted == "search.looks":
                out[name] = _check_looks(where(dotted), out[name])
            if key.optional and out[name] == key.default and not isinstance(out[name], list):
                del out[name]  # as if not given: the same tree, fingerprint and run ids
    if not tree["search"]:
        del tree["search"]  # a grid spec's tree (and fingerprint) as before the section
    if not _NAME.match(tree["name"]):
        raise SweepnetError(f"{where('name')}: use letters, digits, '_', '-', '.' "
                            f"(got {tree['name']!r})")
    seeds = raw.get("train", {}).get("seeds", SCHEMA["train"]["seeds"].default)
    if isinstance(seeds, int) and seeds < 1:
        raise SweepnetError(f"{where('train.seeds')}: need at least one seed")
    datasets = _as_list(tree["data"]["dataset"])
    for name, value in raw.get("data", {}).items():
        if name in SCHEMA["data"]:
            continue
        if name not in DATASETS:
            known = [*SCHEMA["data"], *DATASETS]
            raise SweepnetError(f"{where(f'data.{name}')}: unknown key or dataset table"
                                f"{suggest(name, known)}")
        if not isinstance(value, dict):
            raise SweepnetError(f"{where(f'data.{name}')}: must be a table of dataset parameters")
        if name not in datasets:
            raise SweepnetError(f"{where(f'data.{name}')}: [data.{name}] given but {name!r} is "
                                "not in data.dataset")
    if 0.0 in _as_list(tree["train"].get("lr_decay", 1.0)):
        raise SweepnetError(f"{where('train.lr_decay')}: must be above 0 (1.0: no decay)")
    if True in _as_list(tree["data"].get("standardize", False)) and "file" not in datasets:
        raise SweepnetError(f"{where('data.standardize')}: rescales a file dataset's features, "
                            "and data.dataset has no 'file' (the others are drawn at unit scale)")
    for ds in datasets:
        params = DATASETS[ds].params
        given = raw.get("data", {}).get(ds, {})
        out = tree["data"][ds] = {}
        for pname in given:
            if pname not in params:
                raise SweepnetError(f"{where(f'data.{ds}.{pname}')}: unknown parameter"
                                    f"{suggest(pname, params)} "
                                    f"(known: {', '.join(params) or 'none'})")
        for pname, p in params.items():
            dotted = f"data.{ds}.{pname}"
            if pname not in given:
                if p.default is None:
                    raise SweepnetError(f"{source}: {dotted}: required key is missing")
                out[pname] = p.default
                continue
            out[pname] = _check(where(dotted), Key(p.kind, p.default, p.lo, p.hi), given[pname])
        _check_together(ds, out, where)
        if ds == "file":
            if isinstance(out["path"], list):
                raise SweepnetError(f"{where('data.file.path')}: one file per sweep")
            if not os.path.isfile(out["path"]):
                raise SweepnetError(f"{where('data.file.path')}: no such file {out['path']!r}")
    return Spec(tree, source)


def _check_together(ds: str, params: Mapping[str, Any], where: _Origin) -> None:
    """Refuse a value of a dataset parameter that makes no dataset with any of the other
    parameters' values (``balls``: holes > components); the grid skips such combinations."""
    names = list(params)
    combos = [dict(zip(names, c, strict=True))
              for c in itertools.product(*(_as_list(params[k]) for k in names))]
    fine = [c for c in combos if data_problem(ds, c) is None]
    for c in combos:
        if (trouble := data_problem(ds, c)) is not None:
            key, why = trouble
            if not any(f[key] == c[key] for f in fine):
                raise SweepnetError(f"{where(f'data.{ds}.{key}')}: {why}")


def dataset_params(name: str, overrides: Sequence[str] = (), source: str = "--set"
                   ) -> dict[str, Any]:
    """Validated parameters of one dataset: defaults with ``KEY=VALUE`` overrides (no lists)."""
    if name not in DATASETS:
        raise SweepnetError(f"unknown dataset {name!r}{suggest(name, DATASETS)} "
                            f"(known: {', '.join(DATASETS)})")
    params = {k: p.default for k, p in DATASETS[name].params.items()}
    for text in overrides:
        key, value = parse_override(text)
        p = DATASETS[name].params.get(key)
        if p is None:
            known = DATASETS[name].params
            raise SweepnetError(f"{source} {key}: unknown parameter of {name}"
                                f"{suggest(key, known)} (known: {', '.join(known) or 'none'})")
        params[key] = _check(f"{source} {key}", Key(p.kind, p.default, p.lo, p.hi, sweep=False),
                             value)
    if (trouble := data_problem(name, params)) is not None:
        raise SweepnetError(f"{source} {trouble[0]}: {trouble[1]}")
    if name == "file" and not (params["path"] and os.path.isfile(params["path"])):
        raise SweepnetError(f"{source} path: dataset 'file' needs path=FILE of an existing file")
    return params


_BARE = r"^[A-Za-z0-9_./-]+$"


def parse_override(text: str) -> tuple[str, Any]:
    """``"model.width=[2,3]"`` → ``("model.width", [2, 3])``; bare words become strings, also in
    a list (``[tanh, relu]``)."""
    if "=" not in text:
        raise SweepnetError(f"--set {text!r}: expected KEY=VALUE")
    key, value = (s.strip() for s in text.split("=", 1))
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$", key):
        raise SweepnetError(f"--set {text!r}: bad key {key!r}")
    try:
        return key, tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        if re.match(_BARE, value):  # a bare word: dataset or activation name
            return key, value
        if re.match(rf"^\[\s*{_BARE[1:-1]}(\s*,\s*{_BARE[1:-1]})*\s*,?\s*\]$", value):
            return key, [w.strip() for w in value.strip("[] ").split(",") if w.strip()]
        raise SweepnetError(f"--set {key}: cannot parse value {value!r}") from None


def overridden_keys(overrides: Sequence[str]) -> frozenset[str]:
    """The dotted keys that ``--set`` options name."""
    return frozenset(parse_override(text)[0] for text in overrides)


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    for text in overrides:
        key, value = parse_override(text)
        *path, last = key.split(".")
        node = raw
        for part in path:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SweepnetError(f"--set {key}: {part!r} is not a table")
        node[last] = value
    return raw


def load(path: str, overrides: Sequence[str] = ()) -> Spec:
    """Read, override and validate a spec file. Raises :class:`SweepnetError` on bad input."""
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise SweepnetError(f"{path}: no such spec file") from None
    except IsADirectoryError:
        raise SweepnetError(f"{path}: is a directory, not a spec file") from None
    except tomllib.TOMLDecodeError as e:
        raise SweepnetError(f"{path}: invalid TOML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SweepnetError(f"{path}: cannot read spec ({e})") from None
    # a data file's relative path is relative to the spec's folder, one given by --set to the
    # working directory; resolved, the spec (and the results folder's copy) works from anywhere
    raw = apply_overrides(_resolve_data_path(raw, os.path.dirname(os.path.abspath(path))),
                          overrides)
    raw = _resolve_data_path(raw, os.getcwd())
    where = _Origin(path, overridden_keys(overrides))
    spec = validate(raw, source=path, overridden=where.overridden)
    check_data_fits(spec, where)
    return spec


def _resolve_data_path(raw: dict[str, Any], folder: str) -> dict[str, Any]:
    """``raw`` with a relative ``data.file.path`` made absolute against ``folder`` (anything
    else as given: :func:`validate` judges it)."""
    table = raw.get("data", {}).get("file") if isinstance(raw.get("data"), dict) else None
    path = table.get("path") if isinstance(table, dict) else None
    if not isinstance(path, str) or not path:
        return raw
    raw = copy.deepcopy(raw)
    raw["data"]["file"]["path"] = os.path.normpath(os.path.join(folder, os.path.expanduser(path)))
    return raw


def check_data_fits(spec: Spec, where: _Origin | None = None) -> None:
    """Refuse values that the data rule out, naming the key and where it came from (a spec
    file or ``--set``): a ``file`` must hold more points than ``data.n_train``, and a
    ``resnet``'s width may not be below its dataset's input dimension."""
    where = where or _Origin(spec.source)
    d, m = spec.tree["data"], spec.tree["model"]
    datasets = _as_list(d["dataset"])
    if "file" in datasets:
        path, label = d["file"]["path"], d["file"]["label"]
        rows = len(read_points(path, label)[1])
        if (n := max(_as_list(d["n_train"]))) >= rows:
            raise SweepnetError(f"{where('data.n_train')}: {n} but {path} has only {rows} "
                                "points (some must be left for the test probe)")
    if "resnet" in _as_list(m["arch"]):
        width = min(_as_list(m["width"]))
        for ds in datasets:
            params = d.get(ds, {})
            for combo in itertools.product(*map(_as_list, params.values())):
                in_dim = DATASETS[ds].dim(dict(zip(params, combo, strict=True)))
                if width < in_dim:
                    raise SweepnetError(f"{where('model.width')}: a resnet's state width "
                                        f"{width} is below the input dimension {in_dim} of {ds}")


def loads(text: str, overrides: Sequence[str] = (), source: str = "spec") -> Spec:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SweepnetError(f"{source}: invalid TOML: {e}") from None
    return validate(apply_overrides(raw, overrides), source=source,
                    overridden=overridden_keys(overrides))


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return str(v)


def dumps_toml(tree: Mapping[str, Any]) -> str:
    """Write a resolved spec tree as TOML (tables of scalars and lists only)."""
    lines, tables = [], []

    def emit(prefix: str, node: Mapping[str, Any]):
        scalars = {k: v for k, v in node.items() if not isinstance(v, dict)}
        if prefix:
            tables.append(f"\n[{prefix}]")
            tables.extend(f"{k} = {_toml_value(v)}" for k, v in scalars.items())
        else:
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in scalars.items())
        for k, v in node.items():
            if isinstance(v, dict):
                emit(f"{prefix}.{k}" if prefix else k, v)

    emit("", tree)
    return "\n".join(lines + tables) + "\n"
