"""On ``PYTHONPATH``, hides an installed torchvision from every Python process started, so the
test suite can also run as on a machine without it (`.ci/run` does both):
``PYTHONPATH=tests/without_torchvision python -m pytest``."""

import sys

sys.modules["torchvision"] = None  # type: ignore[assignment]  # import fails, find_spec says absent
