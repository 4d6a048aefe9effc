"""The per-network baselines the engine is measured against, trained on the same workload.

- ``loop``: what users write first, a Python loop over networks and steps calling a jitted
  optax step on a points-first ``flax.linen.Dense`` MLP (:func:`baseline_loop`);
- ``scan``: one jitted ``lax.scan`` of the whole training, called once per network
  (:func:`baseline_scan`);
- ``torch.func``: PyTorch's model ensembling, every network at once (:func:`baseline_torch`;
  torch is optional, the ``bench`` extra).

Each returns ``{"net_steps_per_s", "compile_s"}``; :func:`best_of` keeps the best of repeats.
"""

from __future__ import annotations

import copy
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from sweepnet.engine.machine import BATCH
from sweepnet.sweep import data as data_lib


def _user_model(width: int, depth: int):
    """The MLP a user writes first: flax ``Dense`` layers, points first ``(points, 2)``."""
    class UserMLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            for _ in range(depth):
                x = jnp.tanh(nn.Dense(width)(x))
            return nn.Dense(1)(x)[:, 0]

    return UserMLP()


def _user_data(n_test: int):
    params = data_lib.default_params("disk_annulus")
    split = data_lib.make_split("disk_annulus", params, BATCH, n_test, 0.0, 0)
    return split.x_train, split.y_train.astype("float32")


def baseline_loop(width: int, depth: int, steps: int, nets: int, n_test: int) -> dict:
    """Python loop over ``nets`` networks and their steps, one jitted optax step per call.

    Returns ``{"net_steps_per_s", "compile_s"}`` (compile: the first call of the step).
    """
    model = _user_model(width, depth)
    tx = optax.adam(0.01)
    x, y = _user_data(n_test)

    @jax.jit
    def step(params, opt_state, x, y):
        def loss_fn(p):
            return optax.sigmoid_binary_cross_entropy(model.apply(p, x), y).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    params = model.init(jax.random.key(0), x)
    t = time.perf_counter()
    jax.block_until_ready(step(params, tx.init(params), x, y))
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(nets):
        params = model.init(jax.random.key(i), x)
        opt_state = tx.init(params)
        for _ in range(steps):
            params, opt_state, loss = step(params, opt_state, x, y)
        float(loss)  # the user reads the final loss
    return {"net_steps_per_s": nets * steps / (time.perf_counter() - t), "compile_s": compile_s}


def baseline_scan(width: int, depth: int, steps: int, nets: int, n_test: int) -> dict:
    """One jitted ``lax.scan`` of the whole training, called once per network."""
    model = _user_model(width, depth)
    tx = optax.adam(0.01)
    x, y = _user_data(n_test)

    @jax.jit
    def train(key, x, y):
        params = model.init(key, x)

        def step(carry, _):
            p, s = carry
            loss, g = jax.value_and_grad(
                lambda p: optax.sigmoid_binary_cross_entropy(model.apply(p, x), y).mean())(p)
            u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s), loss

        _, losses = jax.lax.scan(step, (params, tx.init(params)), None, length=steps)
        return losses[-1]

    t = time.perf_counter()
    jax.block_until_ready(train(jax.random.key(0), x, y))
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(nets):
        float(train(jax.random.key(i), x, y))
    return {"net_steps_per_s": nets * steps / (time.perf_counter() - t), "compile_s": compile_s}


def torch_ensemble(width: int, depth: int, nets: int, x, y):
    """PyTorch's model ensembling (``torch.func``) of the user's MLP: ``nets`` networks stacked
    with ``stack_module_state``, ``vmap(functional_call)`` for the forward pass and one
    ``torch.optim.Adam`` over the stacked parameters (elementwise, so each network gets its own
    Adam). Each network's loss is its mean over the full batch (``x`` (points, in), ``y``
    (points,), float tensors); their sum backpropagates to each network's own gradient.

    Returns ``(step, models)``: ``step()`` trains every network one step and returns their
    losses before it, ``(nets,)``; ``models`` are the networks as initialised (from torch's
    current seed), unstacked.
    """
    # torch is optional (the bench extra): imported where a torch baseline runs
    import torch
    from torch.func import functional_call, stack_module_state, vmap  # the bench extra too

    def mlp():
        layers, d_in = [], x.shape[1]
        for _ in range(depth):
            layers += [torch.nn.Linear(d_in, width), torch.nn.Tanh()]
            d_in = width
        return torch.nn.Sequential(*layers, torch.nn.Linear(d_in, 1))

    models = [mlp() for _ in range(nets)]
    params, buffers = stack_module_state(models)  # (nets, ...) leaves with requires_grad
    base = copy.deepcopy(models[0]).to("meta")
    forward = vmap(lambda p, b, x: functional_call(base, (p, b), (x,)), in_dims=(0, 0, None))
    opt = torch.optim.Adam(params.values(), lr=0.01)
    bce = torch.nn.BCEWithLogitsLoss(reduction="none")

    def step():
        opt.zero_grad(set_to_none=True)
        logits = forward(params, buffers, x)[..., 0]  # (nets, points)
        loss = bce(logits, y.expand_as(logits)).mean(dim=1)  # (nets,): each network's loss
        loss.sum().backward()
        opt.step()
        return loss

    return step, models


def torch_data(n_test: int):
    """:func:`_user_data` as float32 torch tensors."""
    import torch  # optional (the bench extra)

    return tuple(torch.tensor(np.asarray(a), dtype=torch.float32) for a in _user_data(n_test))


def baseline_torch(width: int, depth: int, steps: int, nets: int, n_test: int,
                   seconds: float = 20.0) -> dict | None:
    """:func:`torch_ensemble` of ``nets`` networks, timed: up to ``steps`` steps, stopping
    after ``seconds`` (its rate is steady after a few steps). Returns ``{"net_steps_per_s",
    "compile_s", "nets", "torch", "threads"}`` (``compile_s``: building the ensemble and its
    first step, the one-off), or None where torch is not installed.
    """
    try:
        import torch  # optional (the bench extra): None without it
    except ImportError:
        return None

    x, y = torch_data(n_test)
    t = time.perf_counter()
    torch.manual_seed(0)
    step, _ = torch_ensemble(width, depth, nets, x, y)  # the unstacked copies are let go
    step()
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    done = 0
    while done < steps - 1 and (done < 3 or time.perf_counter() - t < seconds):
        loss = step()
        done += 1
    float(loss.detach().mean())  # the user reads the final losses
    return {"net_steps_per_s": nets * done / (time.perf_counter() - t), "compile_s": compile_s,
            "nets": nets, "torch": torch.__version__, "threads": torch.get_num_threads()}


def best_of(kind: str, width: int, depth: int, steps: int, nets: int, n_test: int,
            repeats: int) -> dict:
    """A baseline (``"loop"`` or ``"scan"``) run ``repeats`` times: the best rate (noise only
    ever slows a run down) and the first run's compile seconds."""
    fn = {"loop": baseline_loop, "scan": baseline_scan}[kind]
    runs = [fn(width, depth, steps, nets, n_test) for _ in range(repeats)]
    return {"net_steps_per_s": max(r["net_steps_per_s"] for r in runs),
            "compile_s": runs[0]["compile_s"]}
