"""Tests of gt_secure.ledger."""
