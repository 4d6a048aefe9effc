"""A results folder, read and written (Contract 3): what the other layers use of ``store``.

```
DIR/spec.toml        resolved spec
DIR/manifest.json    versions, devices, per-bucket timing, status
DIR/runs/P.parquet   one row per trained network     (written last: the commit marker)
DIR/curves/P.parquet one row per (run_id, step)
DIR/params/P.npz     final padded weights, a leading network axis, plus run_id and width
DIR/topology.parquet Betti numbers of each class after each layer (``sweepnet topology``)
DIR/topology/        its parts, while a topology run is unfinished
```
Nothing outside ``store`` names a path inside the folder: it asks this module. The names
live by concept: :mod:`~sweepnet.store.folder` (the paths, the one atomic writer, the stored
spec, the manifest and the :class:`Store` that writes parts), :mod:`~sweepnet.store.tables`
(the runs, curves and topology tables; arrays to DataFrames) and
:mod:`~sweepnet.store.params` (the stored parameters, one network or many).
"""

from sweepnet.store.folder import (
    PARTS,
    Store,
    atomic_write,
    is_results_dir,
    manifest_path,
    part_files,
    read_manifest,
    require_results_dir,
    spec_path,
    stored_spec,
    stored_spec_text,
    stored_spec_tree,
    topology_part_files,
    topology_path,
    write_text,
)
from sweepnet.store.params import load_params, load_params_many
from sweepnet.store.tables import (
    TOPOLOGY_COLUMNS,
    done_ids,
    grid,
    layer_kinds,
    load,
    load_curves,
    load_topology,
    load_topology_parts,
    load_topology_scales,
    pending,
    progress,
    remove_topology_parts,
    save_topology,
    save_topology_part,
    to_frames,
    topology_frame,
)

__all__ = ["PARTS", "TOPOLOGY_COLUMNS", "Store", "atomic_write", "done_ids", "grid",
           "is_results_dir", "layer_kinds", "load", "load_curves", "load_params",
           "load_params_many", "load_topology", "load_topology_parts", "load_topology_scales",
           "manifest_path", "part_files", "pending", "progress", "read_manifest",
           "remove_topology_parts", "require_results_dir", "save_topology",
           "save_topology_part", "spec_path", "stored_spec", "stored_spec_text",
           "stored_spec_tree", "to_frames", "topology_frame", "topology_part_files",
           "topology_path", "write_text"]
