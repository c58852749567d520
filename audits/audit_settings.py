"""Constants of the auditor's suite (a uniquely named module, importable from the tests)."""

CLAIMED_EPSILON = 1.0
DELTA = 1e-5
