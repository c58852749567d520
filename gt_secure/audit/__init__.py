"""gt_secure.audit."""
