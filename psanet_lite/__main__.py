"""``python -m psanet_lite ...``: the ``psanet-lite`` command."""
import sys

from psanet_lite.cli import main

sys.exit(main())
