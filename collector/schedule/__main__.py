from collector.schedule.cli import main

raise SystemExit(main())
