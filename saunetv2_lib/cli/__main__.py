"""``python -m saunetv2_lib.cli``: the same as the ``saunetv2`` command."""

import sys

from saunetv2_lib.cli import main

sys.exit(main())
