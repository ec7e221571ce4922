"""``python -m glm``: the ``glm`` command."""
import sys

from .cli import main

sys.exit(main())
