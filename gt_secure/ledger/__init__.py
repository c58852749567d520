"""gt_secure.ledger."""
