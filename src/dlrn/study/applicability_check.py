"""The applicability check of a bundle, applied to new cases (``dlrn predict``, ``dlrn
serve``) exactly as the study applied it to its test and external cases.

The bundle holds, where the study fitted them (stage ``applicability``): the feature
domain (:class:`dlrn.applicability.ApplicabilityDomain`, JSON + safetensors) of the
nomogram's image model's selected features, and the U-Net's lesion-evidence rule
(:class:`dlrn.segmentation.evidence.LesionEvidenceRule`, JSON). Nothing is fitted here.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from dlrn.applicability import ApplicabilityDomain, combine
from dlrn.study.bundle import Bundle

#: the bundle's files (names without suffix)
DOMAIN = "applicability/domain"
EVIDENCE = "applicability/evidence"


def bundle_domain(bundle: Bundle) -> ApplicabilityDomain | None:
    """The feature domain the study fitted, or None (none fitted, or an older bundle)."""
    if not bundle.has(DOMAIN, ".json"):
        return None
    return ApplicabilityDomain.from_parts(bundle.json(DOMAIN), bundle.arrays(DOMAIN))


def bundle_evidence_rule(bundle: Bundle) -> Any:
    """The U-Net's lesion-evidence rule the study calibrated, or None."""
    if not bundle.has(EVIDENCE, ".json") or bundle.segmentation() is None:
        return None
    from dlrn.segmentation.evidence import LesionEvidenceRule

    return LesionEvidenceRule.from_dict(bundle.json(EVIDENCE))


def lesion_assessment(rule: Any, model: Any, cases: pd.DataFrame, *,
                      frame: int = 0) -> pd.DataFrame:
    """The evidence rule's verdict on each case's image (``cases``: column ``image``)."""
    from dlrn.imaging import read_image
    from dlrn.segmentation.evidence import lesion_evidence

    images = [read_image(path, frame=frame) for path in cases["image"]]
    return rule.assess(lesion_evidence(model, images, index=list(cases.index)))


def assess_cases(bundle: Bundle, cases: pd.DataFrame,
                 features: pd.DataFrame | None) -> pd.DataFrame:
    """:data:`dlrn.applicability.COLUMNS` for each case: the U-Net's lesion evidence on its
    image and its image ``features`` (every column the models were given: the domain
    picks its own) against the training cases'."""
    settings = bundle.json("settings")
    domain = bundle_domain(bundle)
    rule = bundle_evidence_rule(bundle)
    lesion = (None if rule is None else
              lesion_assessment(rule, bundle.segmentation(), cases,
                                frame=settings.get("frame", 0)))
    assessed = None if domain is None or features is None else domain.assess(features)
    return combine(cases.index, lesion, assessed)


def limits(bundle: Bundle) -> dict[str, float]:
    """The thresholds a case is held against (for the page and the API): the feature
    distance and outside share of the domain, the lesion-evidence cut-off; those the bundle
    has."""
    domain, found = bundle_domain(bundle), {}
    if domain is not None:
        found.update(feature_distance=domain.threshold_,
                     features_outside_share=domain.max_outside_share)
    if bundle.has(EVIDENCE, ".json"):
        found["lesion_evidence"] = float(bundle.json(EVIDENCE)["threshold"])
    return found
