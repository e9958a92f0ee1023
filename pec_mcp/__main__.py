"""``python -m pec_mcp``: the same as the ``pec-mcp`` command."""

import sys

from pec_mcp.cli import main

sys.exit(main())
