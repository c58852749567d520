"""gt_secure.organization."""
