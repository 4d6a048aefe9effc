"""The results folder itself (Contract 3): every path in it, its one atomic writer, the
stored spec, the manifest, and the :class:`Store` that writes parts into it.

```
DIR/spec.toml        resolved spec
DIR/manifest.json    versions, devices, per-bucket timing, status
DIR/runs/P.parquet   one row per trained network     (written last: the commit marker)
DIR/curves/P.parquet one row per (run_id, step)
DIR/params/P.npz     final padded weights, a leading network axis, plus run_id and width
DIR/corrupt/         parts that could not be read back (kept, never deleted)
DIR/topology.parquet Betti numbers (``sweepnet topology``), and topology.json its scales
DIR/topology/        parts of a topology run not merged yet (a killed run resumes from them)
```
Every file is written by :func:`atomic_write` (temporary name, fsync, rename, fsync of the
folder). A part ``P`` is written in the order params, curves, runs. A part whose runs file is
missing is an orphan of a killed sweep and is removed on the next start, so a resumed sweep
never duplicates a curve.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import tomllib

from sweepnet.core.errors import SweepnetError
from sweepnet.core.host import new_file
from sweepnet.sweep.spec import (
    STORED_KEYS,
    Spec,
    changed_keys,
    grow_conflicts,
    leaves,
    loads,
    validate,
)

SPEC = "spec.toml"
MANIFEST = "manifest.json"
PARTS = ("runs", "curves", "params")
EXTENSIONS = {"runs": ".parquet", "curves": ".parquet", "params": ".npz"}
CORRUPT = "corrupt"
TOPOLOGY = "topology.parquet"
TOPOLOGY_SCALES = "topology.json"
SEARCH = "search.parquet"
TOPOLOGY_PARTS = "topology"


# ----------------------------------------------------------------------------- paths


def spec_path(root: str) -> str:
    return os.path.join(root, SPEC)


def manifest_path(root: str) -> str:
    return os.path.join(root, MANIFEST)


def part_path(root: str, sub: str, name: str) -> str:
    """``DIR/<sub>/<name>.parquet`` (``.npz`` for params): one file of part ``name``."""
    return os.path.join(root, sub, name + EXTENSIONS[sub])


def topology_path(root: str) -> str:
    """``DIR/topology.parquet``: the Betti numbers ``sweepnet topology`` measured."""
    return os.path.join(root, TOPOLOGY)


def search_path(root: str) -> str:
    """``DIR/search.parquet``: an adaptive sweep's verdict on every cell (engine.adaptive)."""
    return os.path.join(root, SEARCH)


def topology_scales_path(root: str) -> str:
    """``DIR/topology.json``: the k and eps of each data configuration measured."""
    return os.path.join(root, TOPOLOGY_SCALES)


def topology_parts_dir(root: str) -> str:
    """``DIR/topology/``: the parts a running ``sweepnet topology`` writes, one per chunk of
    networks, merged into ``topology.parquet`` (and removed) when it finishes."""
    return os.path.join(root, TOPOLOGY_PARTS)


def topology_part_files(root: str) -> list[str]:
    """The topology parts in the order they were written (``part-<ns>-<random>.parquet``)."""
    d = topology_parts_dir(root)
    names = os.listdir(d) if os.path.isdir(d) else []
    return [os.path.join(d, f) for f in sorted(names)
            if f.startswith("part-") and f.endswith(".parquet")]


def new_topology_part_path(root: str) -> str:
    """A fresh part path under ``DIR/topology/`` (created), later than every earlier one."""
    os.makedirs(topology_parts_dir(root), exist_ok=True)
    return os.path.join(topology_parts_dir(root),
                        f"part-{time.time_ns():020d}-{secrets.token_hex(4)}.parquet")


# ----------------------------------------------------------------------------- writing


def atomic_write(path: str, write: Callable[[str], Any]) -> None:
    """Replace ``path`` whole: ``write(tmp)`` fills a new file beside it (``.tmp-<name>.<random>``,
    with the umask's mode), which is synced to disk, renamed onto ``path``, and the folder
    synced too (so the rename survives a crash). A reader sees the old file or the new one,
    never part of either; a killed writer leaves only a ``.tmp-`` file."""
    d, base = os.path.split(path)
    tmp = new_file(d, f".tmp-{base}.")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    folder = os.open(d or ".", os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def write_text(path: str, text: str) -> None:
    """``atomic_write`` of a text file."""
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)

    atomic_write(path, write)


# ----------------------------------------------------------------------------- reading


def is_results_dir(path: str) -> bool:
    return os.path.isfile(spec_path(path)) and os.path.isdir(os.path.join(path, "runs"))


def require_results_dir(path: str) -> None:
    if not os.path.isdir(path):
        raise SweepnetError(f"{path}: no such results folder")
    if not is_results_dir(path):
        raise SweepnetError(f"{path}: not a sweepnet results folder (no spec.toml and runs/)")


def stored_spec_text(root: str) -> str:
    """The text of ``DIR/spec.toml``, as the sweep wrote it."""
    path = spec_path(root)
    try:
        with open(path) as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise SweepnetError(f"{path}: unreadable stored spec ({e})") from None


def stored_spec_tree(root: str) -> dict[str, Any]:
    """``DIR/spec.toml`` parsed, neither validated nor given its defaults."""
    path = spec_path(root)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise SweepnetError(f"{path}: unreadable stored spec ({e})") from None


def stored_spec(root: str) -> Spec:
    """The folder's current spec (``DIR/spec.toml``). Validated where it can be (a spec written
    before a key existed gets its default), else taken as stored: a moved data file must not
    stop anyone from reading the results it gave."""
    require_results_dir(root)
    path = spec_path(root)
    raw = stored_spec_tree(root)
    try:
        return validate(raw, source=path)
    except SweepnetError:
        return Spec(raw, source=path)


def read_manifest(root: str) -> dict[str, Any]:
    path = manifest_path(root)
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as e:
        raise SweepnetError(f"{path}: unreadable manifest ({e})") from None


def part_files(root: str, sub: str) -> list[str]:
    """Committed part files of ``sub`` (curves and params only where a runs part exists)."""
    runs = sorted(f[: -len(".parquet")] for f in os.listdir(os.path.join(root, "runs"))
                  if f.endswith(".parquet") and not f.startswith("."))
    return [p for p in (part_path(root, sub, s) for s in runs) if os.path.exists(p)]


# ----------------------------------------------------------------------------- growing


def _foreign_files(root: str) -> list[str]:
    """Entries of ``root`` that a sweep killed while creating or wiping it cannot have left."""
    empty_dir = lambda p: os.path.isdir(p) and not os.listdir(p)
    ours = lambda f: (f.startswith(".") or f in (SPEC, MANIFEST)
                      or f in PARTS + (CORRUPT,) and empty_dir(os.path.join(root, f)))
    return [f for f in os.listdir(root) if not ours(f)]


def _same_spec(stored: str, spec) -> bool:
    try:
        with open(stored) as f:
            return loads(f.read(), source=stored).fingerprint() == spec.fingerprint()
    except (SweepnetError, OSError):
        return False


def _check_growth(root: str, old, spec) -> None:
    """Refuse to grow ``root`` from ``old`` to ``spec`` where finished runs would become wrong."""
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
    a, b = leaves(old.tree), leaves(spec.tree)
    short = lambda k: len(repr(a.get(k))) + len(repr(b.get(k))) <= 40
    return ", ".join(f"{k} ({a.get(k)!r} -> {b.get(k)!r})" if short(k) else k for k in keys)


def _say_growth(root: str, old, spec) -> None:
    if keys := changed_keys(old, spec):
        print(f"sweepnet: {root}: spec changed: {_changes(old, spec, keys)}; finished runs it "
              "still holds are kept", file=sys.stderr, flush=True)


def _history_entry(manifest: Mapping[str, Any], old, spec) -> list[dict[str, Any]] | None:
    """The manifest's new ``spec_history`` if ``spec`` is not its last entry, else None."""
    history = list(manifest.get("spec_history", []))
    if not history and old is not None:  # a folder from before spec histories were kept
        history.append({"time": manifest.get("updated"), "fingerprint": old.fingerprint(),
                        "changed": [], "spec": old.tree})
    if history and history[-1]["spec"] == json.loads(json.dumps(spec.tree)):
        return None
    changed = changed_keys(Spec(history[-1]["spec"]), spec) if history else []
    return history + [{"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                       "fingerprint": spec.fingerprint(), "changed": changed,
                       "spec": spec.tree}]


def _history(manifest: Mapping[str, Any], old, spec) -> list[dict[str, Any]]:
    return _history_entry(manifest, old, spec) or manifest.get("spec_history", [])


# ----------------------------------------------------------------------------- the writer


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
        if os.path.exists(root) and not os.path.isdir(root):
            raise SweepnetError(f"{root}: exists and is not a folder")
        stored = spec_path(root)
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
                for sub in PARTS + (CORRUPT, TOPOLOGY_PARTS):
                    shutil.rmtree(os.path.join(root, sub), ignore_errors=True)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(manifest_path(root))
            for sub in PARTS:
                os.makedirs(os.path.join(root, sub), exist_ok=True)
            write_text(stored, spec.to_toml())
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
                os.makedirs(self._dir(CORRUPT), exist_ok=True)
                stem = f[: -len(".parquet")]
                for sub in PARTS:
                    src, ext = part_path(self.root, sub, stem), EXTENSIONS[sub]
                    with contextlib.suppress(FileNotFoundError):  # a sibling shard moved it
                        os.replace(src, os.path.join(self._dir(CORRUPT), f"{sub}-{stem}{ext}"))
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
        ids = pq.read_table(part_path(self.root, "runs", stem),
                            columns=["run_id"]).column(0).to_pylist()
        curves = pq.read_table(part_path(self.root, "curves", stem),
                               columns=["run_id"]).column(0).to_pylist()
        if set(curves) != set(ids):
            raise ValueError("curves part does not match its runs part")
        with open(part_path(self.root, "params", stem), "rb") as fh:
            if np.load(fh)["run_id"].tolist() != ids:  # (closing fh also on a bad zip)
                raise ValueError("params part does not match its runs part")
        return ids

    def write_part(self, name: str, runs: pd.DataFrame, curves: pd.DataFrame,
                   params: Mapping[str, np.ndarray]) -> None:
        """Write one part atomically: params, then curves, then the runs file that commits it."""
        def npz(tmp):
            with open(tmp, "wb") as f:
                np.savez(f, **params)

        atomic_write(part_path(self.root, "params", name), npz)
        for sub, df in (("curves", curves), ("runs", runs)):
            table = pa.Table.from_pandas(df, preserve_index=False)
            atomic_write(part_path(self.root, sub, name),
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
        with self._locked():
            manifest = read_manifest(self.root)
            for k, v in changes.items():
                v = v(manifest) if callable(v) else v
                if isinstance(v, dict) and isinstance(manifest.get(k), dict):
                    manifest[k].update(v)
                else:
                    manifest[k] = v
            manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            write_text(manifest_path(self.root),
                       json.dumps(manifest, indent=2, sort_keys=True, default=str))
