from pyci.cli import main

raise SystemExit(main())
