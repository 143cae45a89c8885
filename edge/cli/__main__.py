"""``python -m dsrter.edge.cli``: the ``dsrter`` command."""

import sys

from dsrter.edge.cli.main import main

sys.exit(main())
