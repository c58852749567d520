"""The provider's ServerApp (``[tool.flwr.app.components] serverapp``)."""

import os

from gt_secure.cli.main import quiet_third_party

quiet_third_party()  # `flwr run --stream` output: no third-party deprecation notices or bars
# Under the simulation engine the ClientApps run in Ray workers started from this process: they
# inherit the environment (no progress bars, set above), not this process's warning filters.
os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning,ignore::DeprecationWarning")

from gt_secure.app.server_app import app  # noqa: E402 - after the filters, before transformers

__all__ = ["app"]
