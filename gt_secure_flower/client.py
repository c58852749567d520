"""The organizations' ClientApp (``[tool.flwr.app.components] clientapp``)."""

from gt_secure.app.client_app import app

__all__ = ["app"]
