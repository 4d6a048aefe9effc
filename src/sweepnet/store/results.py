"""The results directory (Contract 3), and the one place where arrays become DataFrames.

```
DIR/spec.toml        resolved spec
DIR/manifest.json    versions, devices, per-bucket timing, status
DIR/runs/P.parquet   one row per trained network     (written last: the commit marker)
DIR/curves/P.parquet one row per (run_id, step)
DIR/params/P.npz     final padded weights, a leading network axis, plus run_id and width
```
A part ``P`` is written atomically (temporary name, fsync, rename) in the order params,
curves, runs. A part whose runs file is missing is an orphan of a killed sweep and is removed
on the next start, so a resumed sweep never duplicates a curve.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sweepnet.core.errors import SweepnetError

PARTS = ("runs", "curves", "params")


def _atomic_write(path: str, write) -> None:
    """Call ``write(tmp_path)``, fsync, then rename onto ``path``."""
    d, base = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{base}.", dir=d)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _write_text(path: str, text: str) -> None:
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)

    _atomic_write(path, write)


def is_results_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "spec.toml")) and os.path.isdir(
        os.path.join(path, "runs"))


def require_results_dir(path: str) -> None:
    if not os.path.isdir(path):
        raise SweepnetError(f"{path}: no such results folder")
    if not is_results_dir(path):
        raise SweepnetError(f"{path}: not a sweepnet results folder (no spec.toml and runs/)")


def _foreign_files(root: str) -> list[str]:
    """Entries of ``root`` that a sweep killed while creating or wiping it cannot have left."""
    empty_dir = lambda p: os.path.isdir(p) and not os.listdir(p)
    ours = lambda f: (f.startswith(".") or f in ("spec.toml", "manifest.json")
                      or f in PARTS + ("corrupt",) and empty_dir(os.path.join(root, f)))
    return [f for f in os.listdir(root) if not ours(f)]


def _same_spec(stored: str, spec) -> bool:
    from sweepnet.sweep.spec import loads

    try:
        with open(stored) as f:
            return loads(f.read(), source=stored).fingerprint() == spec.fingerprint()
    except (SweepnetError, OSError):
        return False


def _check_growth(root: str, old, spec) -> None:
    """Refuse to grow ``root`` from ``old`` to ``spec`` where finished runs would become wrong."""
    from sweepnet.sweep.spec import STORED_KEYS, grow_conflicts

    conflicts = grow_conflicts(old, spec)
    if not conflicts:
        return
    what = _changes(old, spec, conflicts)
    cols = ", ".join(STORED_KEYS[k] for k in conflicts if k in STORED_KEYS)
    why = f"every finished run stores it (column {cols})" if cols else "it is not part of the " \
        "run ids, so the finished runs would not match the spec"
    raise SweepnetError(f"{root}: cannot grow these results: {what} changed and {why}; keep "
                        "the old value, use --fresh to start over, or choose another --out")


def _changes(old, spec, keys) -> str:
    """``"train.seeds (2 -> 4), model.width"``: each key, with its values where they are short."""
    from sweepnet.sweep.spec import leaves

    a, b = leaves(old.tree), leaves(spec.tree)
    short = lambda k: len(repr(a.get(k))) + len(repr(b.get(k))) <= 40
    return ", ".join(f"{k} ({a.get(k)!r} -> {b.get(k)!r})" if short(k) else k for k in keys)


def _say_growth(root: str, old, spec) -> None:
    from sweepnet.sweep.spec import changed_keys

    if keys := changed_keys(old, spec):
        print(f"sweepnet: {root}: spec changed: {_changes(old, spec, keys)}; finished runs it "
              "still holds are kept", file=sys.stderr, flush=True)


def _history_entry(manifest: Mapping[str, Any], old, spec) -> list[dict[str, Any]] | None:
    """The manifest's new ``spec_history`` if ``spec`` is not its last entry, else None."""
    from sweepnet.sweep.spec import changed_keys

    history = list(manifest.get("spec_history", []))
    if not history and old is not None:  # a folder from before spec histories were kept
        history.append({"time": manifest.get("updated"), "fingerprint": old.fingerprint(),
                        "changed": [], "spec": old.tree})
    if history and history[-1]["spec"] == json.loads(json.dumps(spec.tree)):
        return None
    from sweepnet.sweep.spec import Spec

    changed = changed_keys(Spec(history[-1]["spec"]), spec) if history else []
    return history + [{"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                       "fingerprint": spec.fingerprint(), "changed": changed,
                       "spec": spec.tree}]


def _history(manifest: Mapping[str, Any], old, spec) -> list[dict[str, Any]]:
    return _history_entry(manifest, old, spec) or manifest.get("spec_history", [])


class Store:
    """A results directory opened for writing by one process (optionally one shard of N)."""

    def __init__(self, root: str, tag: str = "s0of1"):
        self.root, self.tag = root, tag

    @classmethod
    def open(cls, root: str, spec, fresh: bool = False, tag: str = "s0of1",
             shared: bool = False) -> Store:
        """Create or reopen ``root`` for ``spec``, growing it if the spec changed.

        A changed spec keeps every finished run whose configuration it still holds; runs it
        no longer holds stay on disk, hidden from the loaders. A change that would make the
        finished runs wrong (``spec.grow_conflicts``) is refused before anything is touched.
        ``DIR/spec.toml`` becomes ``spec``, and the manifest's ``spec_history`` records it.

        ``shared``: other shards may be writing into ``root`` at this moment (a job array), so
        ``fresh`` wipes the folder only if it holds another spec's results, and otherwise
        removes this shard's own parts only (a sibling that started first is left alone).
        """
        from sweepnet.sweep.spec import loads

        if os.path.exists(root) and not os.path.isdir(root):
            raise SweepnetError(f"{root}: exists and is not a folder")
        stored = os.path.join(root, "spec.toml")
        if os.path.isdir(root) and not is_results_dir(root) and _foreign_files(root):
            raise SweepnetError(f"{root}: folder is not empty and is not a sweepnet results folder")
        old = None
        if os.path.exists(stored) and not fresh:
            try:
                with open(stored) as f:
                    old = loads(f.read(), source=stored)
            except (SweepnetError, OSError) as e:
                raise SweepnetError(f"{stored}: unreadable stored spec ({e}); use --fresh") from e
            _check_growth(root, old, spec)
            _say_growth(root, old, spec)
        try:
            os.makedirs(root, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=root, prefix=".probe-", delete=True)
            probe.close()
        except OSError as e:
            raise SweepnetError(f"{root}: cannot write results folder ({e.strerror})") from None
        store = cls(root, tag)
        with store._locked():  # concurrent shards: one wipes, the others see its spec.toml
            if fresh and shared and _same_spec(stored, spec):
                for sub in PARTS:
                    sub_dir = os.path.join(root, sub)
                    for f in os.listdir(sub_dir) if os.path.isdir(sub_dir) else ():
                        if f.startswith(tag + "-"):
                            os.unlink(os.path.join(sub_dir, f))
            elif fresh:
                for sub in PARTS + ("corrupt",):
                    shutil.rmtree(os.path.join(root, sub), ignore_errors=True)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(root, "manifest.json"))
            for sub in PARTS:
                os.makedirs(os.path.join(root, sub), exist_ok=True)
            _write_text(stored, spec.to_toml())
        store._remove_orphans()
        if _history_entry(read_manifest(root), old, spec):  # else: no manifest write at all
            store.update_manifest(spec_history=lambda m: _history(m, old, spec))
        return store

    def _dir(self, sub: str) -> str:
        return os.path.join(self.root, sub)

    def _remove_orphans(self) -> None:
        """Delete this shard's temp files and curves/params parts that have no runs part."""
        committed = {f[: -len(".parquet")] for f in os.listdir(self._dir("runs"))
                     if f.endswith(".parquet")}
        for sub in PARTS:
            for f in os.listdir(self._dir(sub)):
                stem = f.split(".")[0]
                mine = f.startswith(f".tmp-{self.tag}-") or stem.startswith(self.tag + "-")
                if mine and (f.startswith(".tmp-") or stem not in committed):
                    os.unlink(os.path.join(self._dir(sub), f))

    def done_ids(self) -> set[str]:
        """Run ids of every committed part. Unreadable parts move to ``corrupt/`` (reported)."""
        done: set[str] = set()
        for f in sorted(os.listdir(self._dir("runs"))):
            if not f.endswith(".parquet"):
                continue
            path = os.path.join(self._dir("runs"), f)
            try:
                done.update(self._verify(f[: -len(".parquet")]))
            except Exception as e:  # truncated or corrupt: quarantine, never delete
                os.makedirs(self._dir("corrupt"), exist_ok=True)
                stem = f[: -len(".parquet")]
                for sub, ext in (("runs", ".parquet"), ("curves", ".parquet"), ("params", ".npz")):
                    src = os.path.join(self._dir(sub), stem + ext)
                    with contextlib.suppress(FileNotFoundError):  # a sibling shard moved it
                        os.replace(src, os.path.join(self._dir("corrupt"), f"{sub}-{stem}{ext}"))
                print(f"sweepnet: warning: {path}: corrupt part ({type(e).__name__}: "
                      f"{str(e).splitlines()[0] if str(e) else ''}); moved to corrupt/ and its "
                      "runs will be trained again", file=sys.stderr, flush=True)
        return done

    def _verify(self, stem: str) -> list[str]:
        """Run ids of committed part ``stem``; raises if any of its three files is damaged.

        Reads the run ids of all three (parquet checks its footer, zip its central directory
        and the CRC of the member read), not the weights themselves: a flipped byte inside a
        weight array surfaces later, as an error of ``load_params``.
        """
        ids = pq.read_table(os.path.join(self._dir("runs"), stem + ".parquet"),
                            columns=["run_id"]).column(0).to_pylist()
        curves = pq.read_table(os.path.join(self._dir("curves"), stem + ".parquet"),
                               columns=["run_id"]).column(0).to_pylist()
        if set(curves) != set(ids):
            raise ValueError("curves part does not match its runs part")
        with open(os.path.join(self._dir("params"), stem + ".npz"), "rb") as fh:
            if np.load(fh)["run_id"].tolist() != ids:  # (closing fh also on a bad zip)
                raise ValueError("params part does not match its runs part")
        return ids

    def write_part(self, name: str, runs: pd.DataFrame, curves: pd.DataFrame,
                   params: Mapping[str, np.ndarray]) -> None:
        """Write one part atomically: params, then curves, then the runs file that commits it."""
        def npz(tmp):
            with open(tmp, "wb") as f:
                np.savez(f, **params)

        _atomic_write(os.path.join(self._dir("params"), name + ".npz"), npz)
        for sub, df in (("curves", curves), ("runs", runs)):
            table = pa.Table.from_pandas(df, preserve_index=False)
            _atomic_write(os.path.join(self._dir(sub), name + ".parquet"),
                          lambda tmp, t=table: pq.write_table(t, tmp))

    @contextlib.contextmanager
    def _locked(self):
        with open(os.path.join(self.root, ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def update_manifest(self, **changes: Any) -> None:
        """Merge ``changes`` into manifest.json under a file lock (shards may run at once).

        ``buckets`` and ``shards`` are dicts merged key by key; other keys are replaced. A
        callable value is called with the manifest under the lock (read-modify-write).
        """
        path = os.path.join(self.root, "manifest.json")
        with self._locked():
            manifest = read_manifest(self.root)
            for k, v in changes.items():
                v = v(manifest) if callable(v) else v
                if isinstance(v, dict) and isinstance(manifest.get(k), dict):
                    manifest[k].update(v)
                else:
                    manifest[k] = v
            manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            _write_text(path, json.dumps(manifest, indent=2, sort_keys=True, default=str))


def read_manifest(root: str) -> dict[str, Any]:
    path = os.path.join(root, "manifest.json")
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as e:
        raise SweepnetError(f"{path}: unreadable manifest ({e})") from None


def part_files(root: str, sub: str) -> list[str]:
    """Committed part files of ``sub`` (curves and params only where a runs part exists)."""
    ext = ".npz" if sub == "params" else ".parquet"
    runs = sorted(f[: -len(".parquet")] for f in os.listdir(os.path.join(root, "runs"))
                  if f.endswith(".parquet") and not f.startswith("."))
    return [p for p in (os.path.join(root, sub, s + ext) for s in runs) if os.path.exists(p)]


def _read_parts(paths: Iterable[str]) -> pd.DataFrame:
    frames = []
    for p in paths:
        try:
            frames.append(pq.read_table(p).to_pandas())
        except Exception as e:
            raise SweepnetError(f"{p}: unreadable part ({type(e).__name__})") from None
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def stored_spec(root: str):
    """The folder's current spec (``DIR/spec.toml``). Validated where it can be (a spec written
    before a key existed gets its default), else taken as stored: a moved data file must not
    stop anyone from reading the results it gave."""
    import tomllib

    from sweepnet.sweep.spec import Spec, validate

    require_results_dir(root)
    path = os.path.join(root, "spec.toml")
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise SweepnetError(f"{path}: unreadable stored spec ({e})") from None
    try:
        return validate(raw, source=path)
    except SweepnetError:
        return Spec(raw, source=path)


def grid(root: str) -> pd.DataFrame:
    """Every run the folder's current spec holds, done or not: ``run_id``, ``sweep``,
    ``grid_index`` and the configuration columns of ``runs`` (``dataset``, ``data_<param>``,
    ``width``, ``depth``, ``activation``, ..., ``seed``), in grid order."""
    from sweepnet.sweep.spec import run_id

    spec = stored_spec(root)
    try:
        configs = spec.grid()
    except (KeyError, TypeError) as e:
        raise SweepnetError(f"{spec.source}: unreadable stored spec ({e!r})") from None
    return pd.DataFrame([{"run_id": run_id(c), "sweep": spec.name, "grid_index": i, **c}
                         for i, c in enumerate(configs)])


def done_ids(root: str) -> set[str]:
    """Run ids of every committed run in the folder, in its current spec or not (read-only)."""
    require_results_dir(root)
    ids: set[str] = set()
    for p in part_files(root, "runs"):
        try:
            ids.update(pq.read_table(p, columns=["run_id"]).column(0).to_pylist())
        except Exception as e:
            raise SweepnetError(f"{p}: unreadable part ({type(e).__name__})") from None
    return ids


def progress(root: str) -> tuple[int, int]:
    """``(done, total)``: runs of the folder's current spec that are trained, and all of them.

    ``done < total`` for an interrupted sweep, or one whose spec has grown since; charts and
    reports say "done of total trained". Runs on disk that the spec no longer holds do not
    count.
    """
    ids = grid(root)["run_id"]
    return int(ids.isin(done_ids(root)).sum()), len(ids)


def pending(root: str) -> pd.DataFrame:
    """The runs of the folder's current spec not trained yet, one row each, in grid order.

    Columns are those of :func:`grid`: ``run_id``, ``sweep``, ``grid_index`` and the
    configuration columns of ``runs`` (so a chart can group them into the same cells as the
    finished runs and draw those cells as pending). Empty (with these columns) when done.
    """
    g = grid(root)
    return g[~g["run_id"].isin(done_ids(root))].reset_index(drop=True)


def load(root: str, all_runs: bool = False) -> pd.DataFrame:
    """The finished runs of a results folder (or of several shards writing into it).

    Only runs that the folder's current spec holds, with their ``grid_index`` in it (a grown
    sweep's table equals a fresh sweep's). ``all_runs=True`` adds the runs a changed spec no
    longer holds, with ``grid_index`` null, and a column ``in_spec``.
    """
    require_results_dir(root)
    df = _read_parts(part_files(root, "runs"))
    if len(df):
        index = grid(root).set_index("run_id")["grid_index"]
        df["grid_index"] = df["run_id"].map(index).astype("Int64")
        if all_runs:
            df["in_spec"] = df["grid_index"].notna()
        else:
            df = df[df["grid_index"].notna()].astype({"grid_index": "int64"})
        df = df.sort_values("grid_index", kind="stable", na_position="last")
        df = df.reset_index(drop=True)
        df["steps_to_fit"] = df["steps_to_fit"].astype("Int64")
        if "certified" in df:
            df["certified"] = df["certified"].astype("boolean")
    return df


def load_curves(root: str, all_runs: bool = False) -> pd.DataFrame:
    """Eval curves: one row per ``(run_id, step)`` of the runs :func:`load` gives."""
    require_results_dir(root)
    df = _read_parts(part_files(root, "curves"))
    if len(df) and not all_runs:
        df = df[df["run_id"].isin(grid(root)["run_id"])].reset_index(drop=True)
    return df


def load_params(root: str, run_id: str) -> tuple[pd.Series, Any]:
    """The runs row of ``run_id`` and its final parameters, unpadded to the real width and
    depth (kernels ``(out, in)``: ``W @ h``, see :mod:`sweepnet.sweep.models`)."""
    from flax.traverse_util import unflatten_dict

    from sweepnet.sweep.models import unpad

    runs = load(root, all_runs=True)
    match = runs[runs["run_id"] == run_id] if len(runs) else runs
    if not len(match):
        raise SweepnetError(f"{root}: no run with id {run_id!r}")
    row = match.iloc[0]
    path = os.path.join(root, "params", row["part"] + ".npz")
    try:
        with np.load(path) as f:
            i = int(np.flatnonzero(f["run_id"] == run_id)[0])
            flat = {tuple(k.split("/")): f[k][i] for k in f.files if k not in ("run_id", "width")}
    except Exception as e:
        raise SweepnetError(f"{path}: cannot read parameters ({type(e).__name__})") from None
    return row, unpad(unflatten_dict(flat), int(row["width"]), int(row["in_dim"]),
                      int(row["depth"]))


def to_frames(static, runs, out, spec, provenance: Mapping[str, Any]
              ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, np.ndarray]]:
    """Turn one call's output (numpy, leading axis >= len(runs)) into runs/curves/params.

    ``runs`` are the :class:`~sweepnet.engine.plan.Run` objects of the first ``len(runs)`` lanes;
    lanes past them are padding and are dropped.
    """
    from flax.traverse_util import flatten_dict

    from sweepnet.sweep.models import n_params
    from sweepnet.train.separation import KNOWN

    n = len(runs)
    steps_to_fit = out.steps_to_fit[:n]
    rows = []
    for i, r in enumerate(runs):
        c = r.config
        diverged = bool(out.diverged[i])
        rows.append({
            "run_id": r.run_id, "sweep": spec.name, "grid_index": r.index, **c,
            "in_dim": static.in_dim, "n_classes": max(2, static.n_out),
            "n_params": n_params(c["arch"], static.in_dim, c["width"], c["depth"], static.n_out),
            "train_loss": float(out.train_loss[i]), "train_acc": float(out.train_acc[i]),
            "test_acc": float(out.test_acc[i]),
            "separated": (not diverged) and float(out.test_acc[i]) >= spec.separation,
            "steps_to_fit": int(steps_to_fit[i]) if steps_to_fit[i] >= 0 else None,
            "diverged": diverged,
            # separation metrics (train.separation); certified is null without known topology
            "margin": float(out.margin[i]), "worst_margin": float(out.worst_margin[i]),
            "certified": bool(out.certified[i]) if c["dataset"] in KNOWN else None,
            "max_grad": float(out.max_grad[i]), **provenance,
        })
    runs_df = pd.DataFrame(rows)
    runs_df["steps_to_fit"] = runs_df["steps_to_fit"].astype("Int64")
    runs_df["certified"] = runs_df["certified"].astype("boolean")
    steps = static.eval_steps
    curves_df = pd.DataFrame({
        "run_id": np.repeat([r.run_id for r in runs], len(steps)),
        "step": np.tile(steps, n).astype(np.int32),
        "train_loss": out.curve_loss[:n].reshape(-1).astype(np.float32),
        "train_acc": out.curve_train_acc[:n].reshape(-1).astype(np.float32),
        "test_acc": out.curve_test_acc[:n].reshape(-1).astype(np.float32),
    })
    params = {"/".join(k): np.asarray(v[:n]) for k, v in flatten_dict(out.params).items()}
    params["run_id"] = np.asarray([r.run_id for r in runs])
    params["width"] = np.asarray([r.config["width"] for r in runs], np.int32)
    return runs_df, curves_df, params
