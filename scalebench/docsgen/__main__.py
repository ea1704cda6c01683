"""`python -m scalebench.docsgen [--check]`."""

from scalebench.docsgen import main

raise SystemExit(main())
