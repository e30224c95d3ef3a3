"""`python -m deploy ...`: see deploy/cli.py."""

from deploy.cli import main

raise SystemExit(main())
