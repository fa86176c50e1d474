"""Write the inputs of the selection reference: a correlated descriptor table and its design.

``shared.csv``: 200 synthetic cases (labels and descriptors drawn with seed 13, about
36 % positive) with the descriptors of :func:`dlrn.synthetic_descriptors.descriptor_table` at
``shared_severity=0.9`` (Margin, Shape and Echogenicity read one latent severity), the
"not available" markers written blank. ``shared_design.csv``: its design matrix as
dlrn's encoder builds it (``ClinicalEncoder(DESCRIPTOR_COLUMNS)``: medians and
missing indicators, rare levels merged, tokens), ``shared_terms.json``: each
variable's columns. R (``r/make_refs.R``) fits on that design, so the reference tests
the selection procedure, not the encoding (``tests/data/descriptors`` tests that).

    cd tests/data/selection && PYTHONPATH=../../../src python make_inputs.py
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from dlrn.clinical import ClinicalEncoder
from dlrn.synthetic_descriptors import DESCRIPTOR_COLUMNS, NOT_AVAILABLE, descriptor_table


def main() -> None:
    rng = np.random.default_rng(13)
    labels = pd.Series((rng.random(200) < 0.36).astype(int),
                       index=[f"s{i:03d}" for i in range(200)], name="y")
    table = pd.concat([labels, descriptor_table(labels, seed=13, shared_severity=0.9)], axis=1)
    table = table.replace(NOT_AVAILABLE, np.nan)
    table.to_csv("shared.csv", index_label="case_id")
    encoder = ClinicalEncoder(DESCRIPTOR_COLUMNS).fit(table)
    design = encoder.transform(table)
    design.insert(0, "(Intercept)", 1.0)
    design.to_csv("shared_design.csv", index_label="case_id")
    terms = {name: list(encoder.terms_[name]) for name in DESCRIPTOR_COLUMNS}
    with open("shared_terms.json", "w") as handle:
        json.dump(terms, handle, indent=1)


if __name__ == "__main__":
    main()
