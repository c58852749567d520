"""Aggregation of organizations' update vectors: plain, SecAgg+ (Flower) and CKKS (TenSEAL).

Modules (imported explicitly, so that TenSEAL and Flower load only where they are used):

- :mod:`~gt_secure.aggregation.plain`: validated plain sum/mean, the reference.
- :mod:`~gt_secure.aggregation.ckks_params`: CKKS parameters, error bound, least-expansion chooser.
- :mod:`~gt_secure.aggregation.ckks`: key pair, encrypt, add ciphertexts, decrypt the sum.
- :mod:`~gt_secure.aggregation.ckks_masks`: pairwise zero-sum masks, masked integer encoding.
- :mod:`~gt_secure.aggregation.quantization`: SecAgg+ fixed-point parameters and error bound.
- :mod:`~gt_secure.aggregation.masking_sim`: Flower's SecAgg+ cryptography run in process.
- ``secagg`` / ``secagg_round``: the SecAgg+ round through Flower's workflow (Flower app).

Every function takes 1-D float32 ``np.ndarray`` vectors of one length and ignores their layout.
"""
