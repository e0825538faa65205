from elastic_edu.cli import main

raise SystemExit(main())
