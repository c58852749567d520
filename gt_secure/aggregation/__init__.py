"""gt_secure.aggregation."""
