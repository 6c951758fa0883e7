"""``python -m rrrnet``: the command line (torchrun runs ``-m rrrnet fit`` per process)."""
import sys

from .cli import main

sys.exit(main())
