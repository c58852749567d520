"""The Flower app: the provider's ServerApp and the organizations' ClientApp (see
docs/deployment.md). Entry points for ``flwr run``: :mod:`gt_secure_flower`."""
