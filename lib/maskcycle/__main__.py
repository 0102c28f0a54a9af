from maskcycle.cli import main

raise SystemExit(main())
