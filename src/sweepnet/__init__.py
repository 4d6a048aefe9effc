"""sweepnet: train thousands of tiny neural networks at once and map where they separate."""

from sweepnet.devices import configure_host_devices

configure_host_devices()  # must precede the first `import jax` (see sweepnet.devices)

from sweepnet.engine import __version__, run_sweep  # noqa: E402
from sweepnet.errors import SweepnetError  # noqa: E402
from sweepnet.plan import make_plan  # noqa: E402
from sweepnet.results import load, load_curves, load_params  # noqa: E402
from sweepnet.spec import Spec  # noqa: E402
from sweepnet.spec import load as load_spec  # noqa: E402

__all__ = ["Spec", "SweepnetError", "__version__", "load", "load_curves", "load_params",
           "load_spec", "make_plan", "run_sweep"]
