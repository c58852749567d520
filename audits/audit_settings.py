"""Constants of the auditor's suite (a uniquely named module, importable from the tests)."""

CLAIMED_EPSILON = 1.0
DELTA = 1e-5
DP_CANARIES = 64  # default suite: the ledger-linked audits of the DP pipeline
HOOK_CANARIES = 128  # slow suite: the DPTrainingHook audits
HOOK_SEED = 1
