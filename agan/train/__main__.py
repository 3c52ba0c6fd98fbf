"""torchrun --nproc_per_node=K -m agan.train <agan train options>"""

import sys

from agan.cli.train import main

sys.exit(main())
