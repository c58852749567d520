"""Tests of the organization node (DP-SGD, vector DP, release)."""
