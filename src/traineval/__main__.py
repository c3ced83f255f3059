"""``python -m traineval`` runs the command line."""

import sys

from traineval.cli import main

sys.exit(main())
