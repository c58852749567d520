"""gt_secure.provider."""
