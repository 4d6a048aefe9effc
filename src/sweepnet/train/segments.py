"""One network's training cut into segments of whole eval blocks, so that a host loop can stop
a network whose outcome is decided and give its slot to the next one
(:mod:`sweepnet.engine.segments`).

``make_segments(static)`` returns three pure per-network functions:

- ``init(key, hyper, data) -> State``: the network before its first step;
- ``advance(state, hyper, data, n_blocks) -> (State, Evals)``: ``n_blocks`` eval blocks of
  ``static.eval_every`` steps each, and an evaluation after each (``Evals`` of ``(n_blocks,)``);
- ``finish(state, hyper, data) -> Output``: the final evaluation and separation metrics at the
  state's step (the host fills in the curves, ``steps_to_fit`` and ``stopped_at``).

Every step is :func:`sweepnet.train.step.network`'s, the one ``make_train`` scans, on the same
minibatch (step ``t`` draws from ``fold_in(batch key, t)``) and optimizer count. Where a network
is decided or has no step left, its block's result is discarded by one select at the block's
end (and where it has no step left inside its last block, a ``steps`` that is not a multiple of
``eval_every``, each of those steps' results by a select), which is exact: the steps it keeps
are bit for bit ``make_train``'s. Slots of one call may be at different steps: ``State.t`` is
per network.

With ``threshold`` (``train.stop = "separated"``), a network is *decided* at the first
evaluation where it separated (test accuracy at or above ``threshold`` and not diverged) or
diverged (a non-finite logit in a step, or a non-finite loss): it then freezes there, inside the
segment, so where it stops never depends on how the host cuts segments. Never by rank.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.flatten_util import ravel_pytree

from sweepnet.sweep.models import build
from sweepnet.train.step import Data, Hyper, Output, Static, check_fused, network


class State(NamedTuple):
    """One network between two segments (add a leading network axis under vmap)."""

    params: jax.Array  # (n_params,) float32, the flat parameter vector
    opt_state: Any  # the optimizer's state of ``params``
    bad: jax.Array  # () bool, a non-finite logit was seen in a training step
    key: jax.Array  # key data (uint32) of the key its minibatches are drawn from
    t: jax.Array  # () int32, steps taken
    done: jax.Array  # () bool, decided (separated or diverged): frozen at step ``t``


class Evals(NamedTuple):
    """The evaluations of one segment, each ``(n_blocks,)``."""

    loss: jax.Array  # train loss after the block
    train_acc: jax.Array
    test_acc: jax.Array
    live: jax.Array  # bool, the block trained the network (else the numbers repeat its state)


class Segments(NamedTuple):
    init: Any
    advance: Any
    finish: Any


def float32_at_least(x: float) -> np.float32:
    """The smallest float32 at or above ``x``: a float32 accuracy ``a`` has ``a >= x`` exactly
    when ``a >= float32_at_least(x)`` (the runs table compares in float64)."""
    f = np.float32(x)
    return f if float(f) >= x else np.nextafter(f, np.float32(np.inf))


def make_segments(static: Static, fused: bool = False, threshold: float | None = None
                  ) -> Segments:
    """The pieces of :func:`sweepnet.train.step.make_train`, cut at eval blocks.

    ``threshold``: stop a network at its first evaluation with test accuracy at or above it
    (and not diverged), or at one where it diverged; None: every network trains its
    ``static.steps`` (``train.stop = "never"``).
    """
    check_fused(static, fused)
    model = build(static.arch, static.width, static.depth, static.activations, static.n_out)
    # the flat vector's layout, from shapes alone (advance and finish get no init key): the
    # unravel of ravel_pytree depends only on the tree's structure, shapes and dtypes
    shapes = jax.eval_shape(model.init, jax.random.key(0),
                            jax.ShapeDtypeStruct((static.in_dim, 1), jnp.float32),
                            jax.ShapeDtypeStruct((), jnp.int32),
                            jax.ShapeDtypeStruct((), jnp.float32))
    unravel = ravel_pytree(jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes))[1]
    every, steps = static.eval_every, static.steps
    limit = None if threshold is None else float32_at_least(threshold)

    def pieces(state_key, hyper, data):
        return network(static, model, fused, hyper, data, unravel,
                       jax.random.wrap_key_data(state_key))

    def init(key, hyper: Hyper, data: Data) -> State:
        k_init, k_batch = jax.random.split(key)
        tree = model.init(k_init, data.x_train[:, :1], hyper.width, hyper.init_scale)
        params = ravel_pytree(tree)[0]
        net = network(static, model, fused, hyper, data, unravel, k_batch)
        return State(params, net.tx.init(params), jnp.asarray(False),
                     jax.random.key_data(k_batch), jnp.asarray(0, jnp.int32),
                     jnp.asarray(False))

    def advance(state: State, hyper: Hyper, data: Data, n_blocks: int) -> tuple[State, Evals]:
        net = pieces(state.key, hyper, data)

        def block(st: State, _):
            live = ~st.done & (st.t < steps)

            def step(carry, i):
                t = st.t + i
                new, _ = net.step(carry, t)
                if steps % every == 0:  # a live lane's block is whole: every step kept
                    return new, None
                keep = t < steps  # the last block's steps past the last one are discarded
                return jax.tree.map(lambda a, b: jnp.where(keep, a, b), new, carry), None

            first = (st.params, st.opt_state, st.bad)
            trained, _ = lax.scan(step, first, jnp.arange(every, dtype=jnp.int32))
            # a lane that is not live keeps its state: one select a block, not one a step
            p, opt_state, bad = jax.tree.map(lambda a, b: jnp.where(live, a, b), trained, first)
            loss, train_acc, test_acc = net.evaluate(p)
            done = st.done
            if limit is not None:
                diverged = bad | ~jnp.isfinite(loss)
                done = done | live & (diverged | (test_acc >= limit))
            t = jnp.where(live, jnp.minimum(st.t + every, steps), st.t)
            st = State(p, opt_state, bad, st.key, t.astype(jnp.int32), done)
            return st, Evals(loss, train_acc, test_acc, live)

        return lax.scan(block, state, None, length=n_blocks)

    def finish(state: State, hyper: Hyper, data: Data) -> Output:
        net = pieces(state.key, hyper, data)
        evals = tuple(v[None] for v in net.evaluate(state.params))
        # curves and steps_to_fit of this one evaluation are placeholders: the host has them
        return net.finish(state.params, evals, state.bad)._replace(stopped_at=state.t)

    return Segments(init, advance, finish)
