"""`python -m bench`: every benchmark in turn (each is also runnable alone as `python -m bench.NAME`), but the
side-by-side suite, which takes an hour and a venv of its own (`make bench-side`)."""
import importlib
import pkgutil
import sys
from pathlib import Path

for module in sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)])
                     if m.name.startswith("bench_") and m.name != "bench_side_by_side"):
    print(f"\n=== bench.{module} ===", flush=True)
    sys.argv = [module]
    importlib.import_module(f"bench.{module}").main()
