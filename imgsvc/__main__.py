from imgsvc.cli import main

raise SystemExit(main())
