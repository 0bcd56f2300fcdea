"""Run every benchmark and write results/benchmarks/*.json and README.md.

Usage (from the repository root): ``python benchmarks/run.py [--quick] [--repeats N]``; the
same as ``python -m seamlib.bench``. See seamlib/bench.py for what each variant measures.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seamlib.bench import main  # noqa: E402

if __name__ == "__main__":
    main()
