"""`python -m edge_agent ...`: the same commands as `mrv edge ...`."""

import sys

from edge_agent.cli import main

sys.exit(main(sys.argv[1:], prog="python -m edge_agent"))
