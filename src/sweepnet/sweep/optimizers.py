"""Optimizer registry: name → ``factory(learning_rate) -> optax.GradientTransformation``.

The learning rate may be a traced per-network array, so one compiled program trains networks
with different learning rates side by side. All entries map a zero gradient to a zero update,
which keeps the padded (masked) units of a bucket frozen at zero. All are elementwise, which
``train`` relies on when it hands them the parameters as one flat vector: an optimizer that
looks at whole parameter arrays (per-layer norms, as LAMB or LARS) would need the tree.

:func:`make` adds a spec's schedule (``train.lr_decay`` every ``train.lr_decay_every`` steps).
"""

import optax

OPTIMIZERS = {
    "adam": lambda lr: optax.adam(lr),
    "adamw": lambda lr: optax.adamw(lr, weight_decay=1e-4),
    "sgd": lambda lr: optax.sgd(lr),
    "momentum": lambda lr: optax.sgd(lr, momentum=0.9),
    "nesterov": lambda lr: optax.sgd(lr, momentum=0.9, nesterov=True),
    "rmsprop": lambda lr: optax.rmsprop(lr),
    "adagrad": lambda lr: optax.adagrad(lr),
    "lion": lambda lr: optax.lion(lr),
}


def schedule(learning_rate, decay: float = 1.0, every: int = 1000):
    """The step size of a network: ``learning_rate`` (may be traced), or with ``decay != 1``
    the staircase ``learning_rate * decay ** (count // every)``, ``count`` the updates made
    before this one (so the first ``every`` steps take ``learning_rate``; Naitzat et al. halve
    it every 2,500 steps: ``decay = 0.5``, ``every = 2500``)."""
    if decay == 1.0:  # the constant: the very program (and numbers) a spec without it gets
        return learning_rate
    return optax.exponential_decay(learning_rate, every, decay, staircase=True)


def make(name: str, learning_rate, decay: float = 1.0, every: int = 1000
         ) -> optax.GradientTransformation:
    """Optimizer ``name`` at the step size :func:`schedule` gives."""
    return OPTIMIZERS[name](schedule(learning_rate, decay, every))
