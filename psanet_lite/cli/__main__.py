"""`python -m psanet_lite.cli ...` (and `torchrun ... -m psanet_lite.cli train ...`)."""
import sys

from psanet_lite.cli import main

sys.exit(main())
