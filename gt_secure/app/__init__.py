"""gt_secure.app."""
