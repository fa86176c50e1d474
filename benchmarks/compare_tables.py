"""Compare every CSV under two study folders' report/tables: same files, same numbers.

    python benchmarks/compare_tables.py BEFORE/study AFTER/study [--rtol 1e-9]

Prints one line per table that differs (only in one folder, other columns or rows,
cells that differ: texts, or numbers beyond the relative tolerance; dlrn.result_diff,
as `dlrn reproduce` compares) and exits 1 when there is any.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dlrn.result_diff import compare_folders


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rtol", type=float, default=1e-9)
    args = parser.parse_args()
    tables = Path("report") / "tables"
    comparisons = compare_folders(args.before / tables, args.after / tables,
                                  tolerance=args.rtol)
    problems = [comparison.line() for comparison in comparisons if not comparison.same]
    print("\n".join(problems) or f"all {len(comparisons)} tables equal (rtol {args.rtol:g})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
