import pytest

from sweepnet import plan, spec

SPEC = """
name = "p"
[data]
dataset = "disk_annulus"
[model]
width = [1, 2, 3, 8, 64]
depth = [1, 3]
activation = ["tanh", "relu"]
[train]
steps = 500
seeds = 5
"""


def test_every_run_lands_in_exactly_one_bucket_of_its_family():
    s = spec.loads(SPEC)
    p = plan.make_plan(s, n_devices=2)
    ids = [r.run_id for b in p.buckets for r in b.runs]
    assert sorted(ids) == sorted(r.run_id for r in plan.expand(s))
    assert len(p.buckets) == 1  # width, depth and activation are per-network values
    for b in p.buckets:
        assert all(r.config["width"] <= b.static.width for r in b.runs)
        assert all(r.config["depth"] <= b.static.depth for r in b.runs)
        assert {r.config["activation"] for r in b.runs} == set(b.static.activations)
        assert b.static.width in {r.config["width"] for r in b.runs}  # no wider than needed
        assert b.static.depth in {r.config["depth"] for r in b.runs}  # no deeper than needed


@pytest.mark.parametrize("n_devices", [1, 2, 8])
@pytest.mark.parametrize("n_runs", [1, 5, 64, 128, 1000, 5000])
def test_chunks_shard_evenly_with_little_padding(n_devices, n_runs):
    s = spec.loads(SPEC)
    static = plan._static(plan.expand(s)[0].config, 8)
    cfg = plan.expand(s)[0].config  # once: expanding the spec per run cost 10-30 s
    runs = [plan.Run(i, f"{i:016x}", cfg) for i in range(n_runs)]
    chunk = plan.chunk_size(static, runs, n_devices, plan.DEFAULT_MAX_MEMORY)
    assert chunk % n_devices == 0
    share = chunk // n_devices
    sub = plan.sub_batch(static)
    k = -(-share // sub)
    assert share % k == 0 and share // k <= sub  # k equal sub-batches per device
    calls = -(-n_runs // chunk)
    waste = calls * chunk - n_runs
    # calls of equal size: each wastes less than a lane per sub-batch and device (a short last
    # call padded to a whole chunk would waste up to a chunk)
    assert waste < calls * (n_devices * (k + 1) + 1), (chunk, calls, waste)


def test_a_group_is_cut_into_calls_of_equal_size():
    s = spec.loads(SPEC)
    static = plan._static(plan.expand(s)[0].config, 8)
    cfg = plan.expand(s)[0].config  # once: expanding the spec per run cost 10-30 s
    runs = [plan.Run(i, f"{i:016x}", cfg) for i in range(4096)]
    budget = 900 * plan.bytes_per_network(static)  # room for 900 networks a call
    chunk = plan.chunk_size(static, runs, 2, budget)
    assert chunk * plan.bytes_per_network(static) <= budget
    assert -(-4096 // chunk) == 5 and 5 * chunk - 4096 < 2 * (plan.sub_batch(static) + 2) * 5
    # an accelerator has no sub-batches: calls of equal size, at most a lane per device wasted
    budget = 2040 * plan.bytes_per_network(static)
    chunk = plan.chunk_size(static, runs, 2, budget, "gpu")
    assert -(-4096 // chunk) == 3 and 3 * chunk - 4096 < 2 * 3


def test_chunk_respects_max_memory():
    s = spec.loads(SPEC)
    static = plan._static(plan.expand(s)[0].config, 64)
    cfg = plan.expand(s)[0].config  # once: expanding the spec per run cost 10-30 s
    runs = [plan.Run(i, f"{i:016x}", cfg) for i in range(4000)]
    budget = 64 * plan.bytes_per_network(static)
    chunk = plan.chunk_size(static, runs, 2, budget)
    assert chunk * plan.bytes_per_network(static) <= budget


def test_describe_reports_the_plan():
    p = plan.make_plan(spec.loads(SPEC), n_devices=2)
    text = plan.describe(p)
    assert f"{len(p.runs)} networks in {len(p.buckets)} buckets" in text
    assert "padding waste" in text and "estimated time" in text
    assert 0.0 <= p.padding_waste < 1.0


def test_resnet_narrower_than_its_input_is_refused():
    from sweepnet.errors import SweepnetError

    text = SPEC.replace("[model]", '[model]\narch = "resnet"')
    with pytest.raises(SweepnetError, match="model.width"):
        plan.make_plan(spec.loads(text), 2)
    ok = plan.make_plan(spec.loads(text, ["model.width=[2,3]"]), 2)
    mlp = plan.make_plan(spec.loads(SPEC, ["model.width=[2,3]"]), 2)
    # two square kernels a block: a resnet step costs more than the mlp's
    assert plan.step_flops(ok.buckets[0].static, 3) > plan.step_flops(mlp.buckets[0].static, 3)
