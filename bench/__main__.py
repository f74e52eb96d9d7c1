"""``python -m bench [--size quick|full] [--n N]``: see docs/BENCH.md."""

from bench.run import main

raise SystemExit(main())
