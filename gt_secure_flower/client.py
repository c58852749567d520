"""The organizations' ClientApp (``[tool.flwr.app.components] clientapp``)."""

from gt_secure.cli.main import quiet_third_party

quiet_third_party()  # `flwr run --stream` output: no third-party deprecation notices or bars

from gt_secure.app.client_app import app  # noqa: E402 - after the filters, before transformers

__all__ = ["app"]
