"""Compare every CSV under two study folders' report/tables: same files, same numbers.

    python benchmarks/compare_tables.py BEFORE/study AFTER/study [--rtol 1e-9]

Prints one line per difference (missing file, other columns or rows, text cells that
differ, numbers beyond the tolerance) and exits 1 when there is any.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def compare(before: Path, after: Path, rtol: float) -> list[str]:
    problems = []
    old = {p.relative_to(before) for p in before.rglob("*.csv")}
    new = {p.relative_to(after) for p in after.rglob("*.csv")}
    problems += [f"{name}: only before" for name in sorted(old - new)]
    problems += [f"{name}: only after" for name in sorted(new - old)]
    for name in sorted(old & new):
        a, b = pd.read_csv(before / name), pd.read_csv(after / name)
        if list(a.columns) != list(b.columns) or a.shape != b.shape:
            problems.append(f"{name}: columns/shape {list(a.columns)} {a.shape} -> "
                            f"{list(b.columns)} {b.shape}")
            continue
        for column in a.columns:
            x, y = a[column], b[column]
            if x.dtype.kind in "biuf" and y.dtype.kind in "biuf":
                same = np.isclose(x, y, rtol=rtol, atol=rtol, equal_nan=True)
            else:
                same = (x.isna() & y.isna()) | (x.astype(object) == y.astype(object))
                same = same.to_numpy()
            for row in np.flatnonzero(~same)[:3]:
                problems.append(f"{name} row {row} {column}: {x.iloc[row]!r} -> {y.iloc[row]!r}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rtol", type=float, default=1e-9)
    args = parser.parse_args()
    tables = Path("report") / "tables"
    problems = compare(args.before / tables, args.after / tables, args.rtol)
    count = len(list((args.before / tables).rglob("*.csv")))
    print("\n".join(problems) or f"all {count} tables equal (rtol {args.rtol:g})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
