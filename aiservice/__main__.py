import sys

from aiservice.cli import main

sys.exit(main())
