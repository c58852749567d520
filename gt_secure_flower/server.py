"""The provider's ServerApp (``[tool.flwr.app.components] serverapp``)."""

from gt_secure.app.server_app import app

__all__ = ["app"]
