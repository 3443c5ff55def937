"""``python -m vlm_focus.cli``, the same as the ``vlm-focus`` command."""

import sys

from . import main

sys.exit(main())
