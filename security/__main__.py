import sys

from security.cli import main

sys.exit(main())
