"""`python -m finegpt ...` is the CLI; torchrun launches it this way too."""

from finegpt.cli import main

raise SystemExit(main())
