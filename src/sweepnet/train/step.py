"""``make_train(static)`` returns a pure function that trains one network with ``lax.scan``.

The caller chooses the transformation: ``jax.jit(jax.vmap(make_train(static), (0, 0, None)))``
trains a bucket of networks on shared data. Nothing in this module is jitted.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.flatten_util import ravel_pytree

from sweepnet.kernel import choice as fused_choice
from sweepnet.kernel import ops as fused_ops
from sweepnet.sweep import optimizers
from sweepnet.sweep.models import build
from sweepnet.train import regions, separation

TEST_BLOCK = 2048  # probe points evaluated at once; bounds eval memory per network


@dataclasses.dataclass(frozen=True)
class Static:
    """Everything that fixes array shapes or program structure: one compile per ``Static``.

    Width, depth and activation are per-network values (:class:`Hyper`): a program is built at
    its widest width and deepest depth, and holds the tuple of activations its networks use.
    """

    arch: str
    in_dim: int
    n_out: int  # 1 for a binary logit, else the number of classes
    width: int  # the program's padded width
    depth: int  # the program's padded depth (number of hidden layers)
    activations: tuple[str, ...]  # a name, or the names a program's networks choose from
    optimizer: str
    steps: int
    eval_every: int
    batch_size: int  # 0 = full batch
    n_train: int
    n_test: int
    lr_decay: float = 1.0  # the step size is multiplied by this every lr_decay_every steps
    lr_decay_every: int = 1000

    def __post_init__(self):
        if isinstance(self.activations, str):
            object.__setattr__(self, "activations", (self.activations,))
        object.__setattr__(self, "activations", tuple(self.activations))

    @property
    def eval_steps(self) -> np.ndarray:
        """Steps after which the network is evaluated: every ``eval_every``, and the last."""
        steps = list(range(self.eval_every, self.steps + 1, self.eval_every))
        if not steps or steps[-1] != self.steps:
            steps.append(self.steps)
        return np.asarray(steps, np.int32)

    @property
    def test_blocks(self) -> tuple[int, int]:
        """``(n_blocks, block)`` layout of the padded test probe."""
        block = min(self.n_test, TEST_BLOCK)
        return -(-self.n_test // block), block


@flax.struct.dataclass
class Hyper:
    """Per-network values, vmapped over: each field is a scalar for one network."""

    width: jax.Array  # int32, real width (<= Static.width)
    learning_rate: jax.Array  # float32
    init_scale: jax.Array  # float32
    depth: jax.Array | None = None  # int32, real depth (<= Static.depth); None: Static.depth
    activation: jax.Array | None = None  # int32 index into Static.activations; None: the first


@flax.struct.dataclass
class Data:
    """One dataset configuration, shared by every network of a call (points on the last axis)."""

    x_train: jax.Array  # (in_dim, n_train) float32
    y_train: jax.Array  # (n_train,) int32
    x_test: jax.Array  # (n_blocks, in_dim, block) float32, zero-padded
    y_test: jax.Array  # (n_blocks, block) int32, -1 marks padding
    # structured probe of the class regions (separation.Probe; shapes fixed by in_dim): always
    # present, a dummy with known=False where the topology is unknown, so every data group of a
    # bucket has the same pytree and shapes
    probe: Any = None
    # cell centres of the decision-region grid (train.regions), laid out as the test probe:
    # (n_grid_blocks, in_dim, block); no blocks where the program gets no grid (not 2-D binary)
    grid: Any = None


def make_data(static: Static, x_train, y_train, x_test, y_test, probe=None) -> Data:
    """Lay out points-first numpy arrays ``(n, dim)`` / ``(n,)`` as :class:`Data`.

    ``probe``: from ``separation.make_probe(dataset, params, static.in_dim)``; None gives the
    dummy probe (separation metrics other than ``margin`` and ``max_grad`` are then NaN).
    """
    if probe is None:
        probe = separation.make_probe("", None, static.in_dim)
    nb, block = static.test_blocks
    pad = nb * block - len(x_test)
    xt = np.concatenate([x_test, np.zeros((pad, x_test.shape[1]), np.float32)])
    yt = np.concatenate([y_test, -np.ones(pad, np.int32)])
    grid = np.zeros((0, static.in_dim, block), np.float32)
    if regions.applies(static.in_dim, static.n_out):  # blocks of the test probe's size: the
        # same peak memory as its evaluation (GRID**2 is a multiple of 8, for the bit packing)
        g = regions.grid_points(*regions.grid_box(np.asarray(x_train)))
        g = np.concatenate([g, np.zeros((2, -g.shape[1] % block), np.float32)], axis=1)
        grid = g.reshape(2, -1, block).transpose(1, 0, 2)
    return Data(x_train=jnp.asarray(x_train.T, jnp.float32),
                y_train=jnp.asarray(y_train, jnp.int32),
                x_test=jnp.asarray(xt.reshape(nb, block, -1).transpose(0, 2, 1), jnp.float32),
                y_test=jnp.asarray(yt.reshape(nb, block), jnp.int32), probe=probe,
                grid=jnp.asarray(grid))


class Output(NamedTuple):
    """What one trained network returns (add a leading network axis under vmap)."""

    params: Any  # the padded parameter tree
    train_loss: jax.Array  # () final loss on the whole train set
    train_acc: jax.Array  # ()
    test_acc: jax.Array  # () accuracy on the dense probe
    steps_to_fit: jax.Array  # () int32, first eval step with train_acc == 1, else -1
    diverged: jax.Array  # () bool, a non-finite logit in a training step or a non-finite loss
    # at an evaluation was seen
    curve_loss: jax.Array  # (n_evals,) train loss at Static.eval_steps
    curve_train_acc: jax.Array  # (n_evals,)
    curve_test_acc: jax.Array  # (n_evals,)
    # separation metrics of the final network (see sweepnet.train.separation.metrics)
    margin: jax.Array  # () smallest signed logit margin over the test probe
    worst_margin: jax.Array  # () smallest margin over both class regions (NaN: unknown topology)
    certified: jax.Array  # () bool, worst_margin > 0
    max_grad: jax.Array  # () largest input-gradient norm of the margin over the probes
    # the final network's class (logit > 0) on the region grid (train.regions), bit-packed:
    # (GRID**2 / 8,) uint8; a dummy (1,) where the program gets no grid (not 2-D binary)
    region: Any = None
    # () int32, the step a network trained in segments stopped at (the host makes it -1
    # where it trained every step); None from make_train, which trains every step
    stopped_at: Any = None


@jax.custom_vjp
def _sigmoid_bce(z, y):
    """Per-point binary cross-entropy ``softplus(z) - y z`` of logits ``z (points,)``, float ``y``.

    One ``exp`` and one ``log1p`` a point, and the gradient ``sigmoid(z) - y`` reuses the
    ``exp``: optax's form costs two of each forward and more backward, which on CPU was half
    the step time of a (3, 2) network.
    """
    return _sigmoid_bce_fwd(z, y)[0]


def _sigmoid_bce_fwd(z, y):
    e = jnp.exp(-jnp.abs(z))
    return jnp.maximum(z, 0.0) - y * z + jnp.log1p(e), (z, y, e)


def _sigmoid_bce_bwd(res, g):
    z, y, e = res
    sigmoid = jnp.where(z >= 0, 1.0, e) / (1.0 + e)
    return g * (sigmoid - y), None  # labels are data, never differentiated


_sigmoid_bce.defvjp(_sigmoid_bce_fwd, _sigmoid_bce_bwd)


def loss_and_acc(logits, y, n_out):
    """Mean loss and accuracy of ``logits (n_out, points)`` against ``y (points,)``."""
    if n_out == 1:
        z = logits[0]
        loss = _sigmoid_bce(z, y.astype(z.dtype))
        correct = (z > 0) == (y == 1)
    else:
        loss = optax.softmax_cross_entropy_with_integer_labels(logits.T, y)
        correct = jnp.argmax(logits, axis=0) == y
    return loss, correct


class Network(NamedTuple):
    """One network's training pieces (:func:`network`): what :func:`make_train` scans and
    :mod:`sweepnet.train.segments` cuts into segments, so both compute the same numbers."""

    tx: Any  # the optax optimizer (its state: ``tx.init(params)``)
    step: Any  # ``((params, opt_state, bad), t) -> (carry, None)``: training step ``t``
    evaluate: Any  # ``params -> (loss, train_acc, test_acc)`` on the train set and the probe
    finish: Any  # ``(params, evals, bad) -> Output`` (``evals``: each ``(n_evals,)``)


def network(static: Static, model, fused: bool, hyper: Hyper, data: Data, unravel, k_batch
            ) -> Network:
    """The training pieces of one network of shape ``static`` (``model``: ``build``'s,
    ``unravel``: flat parameters -> tree, ``k_batch``: the key its minibatches are drawn
    from). ``fused``: see :func:`make_train`."""
    which = hyper.activation if len(static.activations) > 1 else None
    apply = lambda p, x: model.apply(unravel(p), x, hyper.width, hyper.init_scale,
                                     real_depth=hyper.depth, which=which)
    tx = optimizers.make(static.optimizer, hyper.learning_rate, static.lr_decay,
                         static.lr_decay_every)
    if fused:  # the kernel's view of this network: real width, depth and activation
        net = fused_ops.Net.of(static, hyper.width, hyper.depth, hyper.activation)

    def batch(t):
        """The points of step ``t``: ``x (in_dim, batch)``, ``y (batch,)``."""
        x, y = data.x_train, data.y_train
        if 0 < static.batch_size < static.n_train:
            idx = jax.random.permutation(jax.random.fold_in(k_batch, t), static.n_train)
            idx = idx[: static.batch_size]
            x, y = x[:, idx], y[idx]
        return x, y

    def batch_loss(p, t):
        x, y = batch(t)
        logits = apply(p, x)
        loss, _ = loss_and_acc(logits, y, static.n_out)
        # the step needs only the gradient: XLA drops the loss value (a log1p and a sum
        # a point, 13% of a (3, 2) step), and divergence is read off the logits instead
        # (0 * z is NaN exactly where z is not finite)
        return loss.mean(), jnp.isfinite(jnp.sum(logits * 0.0))

    def fused_grad(p, t):
        x, y = batch(t)
        g, finite = fused_ops.grad(unravel(p), x, y, net)
        return ravel_pytree(g)[0], finite

    grad_fn = fused_grad if fused else jax.grad(batch_loss, has_aux=True)

    def step(carry, t):
        p, opt_state, bad = carry
        grads, finite = grad_fn(p, t)
        updates, opt_state = tx.update(grads, opt_state, p)
        return (optax.apply_updates(p, updates), opt_state, bad | ~finite), None

    def forward(p, x):  # logits for evaluations (never differentiated)
        if fused:
            return fused_ops.logits(unravel(p), x, net)
        return apply(p, x)

    def evaluate(p):
        loss, correct = loss_and_acc(forward(p, data.x_train), data.y_train, static.n_out)

        def block_hits(_, xy):
            x, y = xy
            _, hit = loss_and_acc(forward(p, x), jnp.maximum(y, 0), static.n_out)
            return None, jnp.sum(hit & (y >= 0))

        _, hits = lax.scan(block_hits, None, (data.x_test, data.y_test))
        return loss.mean(), correct.mean(), hits.sum() / static.n_test

    def finish(p, evals, bad):
        loss, train_acc, test_acc = evals
        fit = train_acc >= 1.0
        steps_to_fit = jnp.where(fit.any(), jnp.asarray(static.eval_steps)[jnp.argmax(fit)], -1)
        diverged = bad | ~jnp.isfinite(loss[-1])

        def trained(x):  # the trained network, for the separation metrics
            return apply(p, x)

        if fused:
            trained.margin_and_grad = lambda x, y: fused_ops.margin_and_grad(
                unravel(p), x, y, net)
        sep = separation.metrics(trained, data.probe, data.x_test, data.y_test)
        # no grid: one dummy byte (a zero-size output breaks lax.map's batching); the store
        # knows from the program's shape (regions.applies) that it is no grid
        region = jnp.zeros((1,), jnp.uint8)
        if data.grid.shape[0]:
            _, cells = lax.scan(lambda _, x: (None, forward(p, x)[0] > 0), None, data.grid)
            region = jnp.packbits(cells.reshape(-1)[: regions.GRID**2])
        return Output(unravel(p), loss[-1], train_acc[-1], test_acc[-1],
                      steps_to_fit.astype(jnp.int32), diverged, loss, train_acc, test_acc,
                      sep["margin"], sep["worst_margin"], sep["certified"], sep["max_grad"],
                      region)

    return Network(tx, step, evaluate, finish)


def check_fused(static: Static, fused: bool) -> None:
    if fused and not fused_choice.covers(static):
        raise ValueError(f"the fused gradient does not cover {static}")


def make_train(static: Static, fused: bool = False, capture: bool = False):
    """Returns ``train(key, hyper, data) -> Output`` for one network of shape ``static``.

    ``capture``: ``train`` returns ``(Output, params)`` instead, where ``params`` is the
    parameter tree after every step of ``static.eval_steps`` (a leading ``(n_evals,)`` axis),
    for pictures of a network through training.

    ``fused``: compute each step's gradient, the evaluations' logits and the separation
    metrics' margins and input gradients with the native CPU kernel (:mod:`sweepnet.kernel.ops`;
    ``choice.covers(static)`` must hold) instead of XLA. The same to float round-off; the
    optimizer is XLA's either way.
    """
    check_fused(static, fused)
    model = build(static.arch, static.width, static.depth, static.activations, static.n_out)
    n_blocks = static.steps // static.eval_every
    remainder = static.steps - n_blocks * static.eval_every

    def train(key, hyper: Hyper, data: Data) -> Output:
        k_init, k_batch = jax.random.split(key)
        tree = model.init(k_init, data.x_train[:, :1], hyper.width, hyper.init_scale)
        # training carries the parameters as one flat vector: the optimizer's update is then a
        # few fused kernels instead of a few per parameter array (every optimizer offered is
        # elementwise, so the arithmetic is the same)
        params, unravel = ravel_pytree(tree)
        net = network(static, model, fused, hyper, data, unravel, k_batch)

        def block(carry, ts):
            carry, _ = lax.scan(net.step, carry, ts)
            return carry, (net.evaluate(carry[0]), carry[0] if capture else ())

        carry = (params, net.tx.init(params), jnp.asarray(False))
        ts = jnp.arange(n_blocks * static.eval_every).reshape(n_blocks, static.eval_every)
        carry, (evals, snaps) = lax.scan(block, carry, ts)
        if remainder:
            carry, _ = lax.scan(net.step, carry,
                                jnp.arange(n_blocks * static.eval_every, static.steps))
            last = net.evaluate(carry[0])
            evals = tuple(jnp.concatenate([e, v[None]]) for e, v in zip(evals, last, strict=True))
            snaps = jnp.concatenate([snaps, carry[0][None]]) if capture else ()
        out = net.finish(carry[0], evals, carry[2])
        return (out, jax.vmap(unravel)(snaps)) if capture else out

    return train
