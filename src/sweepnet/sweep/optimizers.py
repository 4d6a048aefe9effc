"""Optimizer registry: name → ``factory(learning_rate) -> optax.GradientTransformation``.

The learning rate may be a traced per-network array, so one compiled program trains networks
with different learning rates side by side. All entries map a zero gradient to a zero update,
which keeps the padded (masked) units of a bucket frozen at zero. All are elementwise, which
``train`` relies on when it hands them the parameters as one flat vector: an optimizer that
looks at whole parameter arrays (per-layer norms, as LAMB or LARS) would need the tree.
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
