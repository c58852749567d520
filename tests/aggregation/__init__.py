"""Tests of gt_secure.aggregation."""
