"""``python -m misuan.cli``: the same as the ``misuan`` command."""

import os
import sys

from misuan.cli import main

os.environ.setdefault("PYTHONUNBUFFERED", "1")
sys.exit(main())
