"""gt_secure.models."""
