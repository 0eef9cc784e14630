"""``python -m samples.bert``: build or upload a BERT model repository."""

import sys

from samples.bert.cli import main

sys.exit(main())
