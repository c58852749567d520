"""gt_secure.data."""
