import sys

from agan.cli import main

sys.exit(main())
