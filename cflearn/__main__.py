"""``python -m cflearn`` (and ``torchrun ... -m cflearn fit ...``): the command line."""

import sys

from .cli import main

sys.exit(main())
