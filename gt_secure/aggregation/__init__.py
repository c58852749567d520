"""Aggregation of organizations' update vectors: plain, SecAgg+ (Flower) and CKKS (TenSEAL).

Modules (imported explicitly, so that TenSEAL and Flower load only where they are used):

- :mod:`~gt_secure.aggregation.plain`: validated plain sum/mean, the reference.
- :mod:`~gt_secure.aggregation.ckks_params`: CKKS parameters, error bound, least-expansion chooser.
- :mod:`~gt_secure.aggregation.ckks`: key pair, encrypt, add ciphertexts, decrypt the sum.
- :mod:`~gt_secure.aggregation.ckks_masks`: pairwise zero-sum masks, masked integer encoding.
- :mod:`~gt_secure.aggregation.quantization`: SecAgg+ fixed-point parameters and error bound.
- :mod:`~gt_secure.aggregation.masking_sim`: Flower's SecAgg+ cryptography run in process
  (with Flower's own mask PRG).
- ``secagg`` / ``secagg_round``: the SecAgg+ round through Flower's workflow (Flower app).
- ``secagg_prg``: SecAgg+ masks from ChaCha20 keyed by the full seed, in place of Flower 1.42's
  32-bit-seeded Mersenne Twister while gt-secure's client mod and server workflow run.
- ``ddp`` / ``ddp_round``: distributed discrete Gaussian DP inside SecAgg+ (grid, bit width,
  no-wrap bound, decoding; the round and the organizations' survivor guard).

Every function takes 1-D float32 ``np.ndarray`` vectors of one length and ignores their layout.
"""
