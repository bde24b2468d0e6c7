"""The ``unihpr demo`` run as a script: three stages on the bundled mocap data.

    python examples/train_demo.py [--quick] [--output-dir unihpr-demo]

Trains unihpr-tiny (step 1: 2D-3D alignment; step 2: image alignment, once
with and once without L_triplet for the Fig. 4 curves; fine-tuning), evaluates
on held-out clips and writes results.md/json, fig4_cosine.png, skeletons.png
and a ``save_pretrained`` folder. Needs the ``demo`` extra (``pip install -e ".[demo]"``).
"""

import sys

from unihpr.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
