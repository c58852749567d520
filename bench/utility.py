"""Utility benchmark: PGR of the Grad-Transformer vs baselines on held-out organization domains.

    python bench/utility.py [--quick] [--out runs/utility]
Same as ``gt-secure bench utility``; prints the tables and writes utility.json + utility.png.
"""

from __future__ import annotations

import sys

from gt_secure.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["bench", "utility", *sys.argv[1:]]))
