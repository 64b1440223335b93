"""`python -m service.cli`: the `callstreams` command without its script on PATH."""

import sys

from service.cli.main import main

sys.exit(main())
