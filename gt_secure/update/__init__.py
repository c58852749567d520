"""gt_secure.update."""
