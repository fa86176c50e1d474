"""The study file: defaults, validation messages and the commented template."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dlrn.errors import ConfigError
from dlrn.study.config import (
    CohortSettings,
    StudyConfig,
    load_study,
    study_from_dict,
)
from dlrn.study.template import study_template

MINIMAL = {"cohort": {"table": "cases.csv", "case_id": "id", "image": "img", "mask": "roi",
                      "label": "malignant"}}


def _problems(data: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        study_from_dict(data, source="study.yaml")
    return str(caught.value)


def test_minimal_study_gets_defaults_and_resolves_paths(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(MINIMAL))
    config = load_study(path)
    assert config.cohort.label == "malignant"
    assert config.split.test_size == 0.3
    assert config.classifiers.models[0] == "LR" and len(config.classifiers.models) == 7
    assert config.dl.enabled and config.dl.backbones == ["densenet121", "vgg19", "resnet50"]
    assert config.resolve(config.cohort.table) == tmp_path / "cases.csv"
    assert config.output_dir == tmp_path / "dlrn-study"
    assert config.split_seed == config.seed == 0


def test_unknown_key_names_its_path_and_suggests_the_closest():
    message = _problems({**MINIMAL, "classifers": {}})
    assert "classifers: unknown setting; did you mean 'classifiers'?" in message
    message = _problems({"cohort": {**MINIMAL["cohort"], "lable": "y"}})
    assert "cohort.lable: unknown setting; did you mean 'table' or 'label'?" in message


@pytest.mark.parametrize(("override", "expected"), [
    ({"split": {"test_size": 1.5}}, "split.test_size: 1.5 is above the maximum 0.95"),
    ({"split": {"test_size": "a third"}}, "split.test_size: expected a number"),
    ({"dl": {"epochs": 0}}, "dl.epochs: 0 is below the minimum 1"),
    ({"dl": {"enabled": "yes please"}}, "dl.enabled: expected true or false"),
    ({"seed": True}, "seed: expected an integer"),
    ({"cohort": {**MINIMAL["cohort"], "on_error": "skip"}},
     "cohort.on_error: 'skip' is not allowed"),
    ({"cohort": {**MINIMAL["cohort"], "clinical": {"age": "numeric"}}},
     "cohort.clinical.age: unknown column type 'numeric'; choose one of ['continuous', "
     "'categorical', 'ordinal', 'multilabel']"),
    ({"cohort": {**MINIMAL["cohort"], "clinical": {"birads": {"type": "ordinal"}}}},
     "cohort.clinical.birads: an ordinal column needs 'order'"),
    ({"cohort": {**MINIMAL["cohort"], "clinical": {"age": {"type": "continuous",
                                                           "missing": "drop"}}}},
     "cohort.clinical.age: missing is 'drop'; choose one of ['impute', 'exclude', 'stop']"),
    ({"cohort": {**MINIMAL["cohort"], "clinical": {"shape": {"type": "categorical",
                                                             "order": ["a", "b"]}}}},
     "cohort.clinical.shape: 'order' applies to ordinal columns only"),
    ({"cohort": {**MINIMAL["cohort"], "missing": "drop"}},
     "cohort.missing: 'drop' is not allowed; use one of 'impute', 'exclude', 'stop'"),
    ({"cohort": {**MINIMAL["cohort"], "min_level_count": 0}},
     "cohort.min_level_count: 0 is below the minimum 1"),
    ({"evaluation": {"clinical_regression": "penalised"}},
     "evaluation.clinical_regression: 'penalised' is not allowed; use one of 'auto', 'standard', "
     "'firth'"),
    ({"classifiers": {"models": ["LR", "ExtraTree"]}},
     "classifiers.models: unknown value 'ExtraTree'; did you mean 'ExtraTrees'?"),
    ({"classifiers": {"grids": {"SVN": {"C": [1]}}}}, "did you mean 'SVM'?"),
    ({"dl": {"backbones": []}}, "dl.backbones: at least one backbone"),
    ({"cohort": {**MINIMAL["cohort"], "external": [{"name": "test", "table": "b.csv"}]}},
     "cohort.external[0].name: 'test' must be unique and not train/test"),
    ({"cohort": {**MINIMAL["cohort"], "external": [{"name": "b"}]}},
     "cohort.external[0].table: required setting is missing"),
    ({"cohort": {**MINIMAL["cohort"], "mask": "img"}}, "column 'img' is used for two roles"),
    ({"cohort": {**MINIMAL["cohort"], "min_roi_mm": -1}},
     "cohort.min_roi_mm: -1.0 is below the minimum 0.0"),
    ({"cohort": {**MINIMAL["cohort"], "mask_label": "tumour"}},
     "cohort.mask_label: expected an integer or null, got 'tumour'"),
    ({"cohort": {**MINIMAL["cohort"], "frame": -1}}, "cohort.frame: -1 is below the minimum 0"),
    ({"dl": {"batch_size": 1}}, "dl.batch_size: 1 is below the minimum 2"),
    ({"radiomics": {"cache": "x"}}, "radiomics.cache: unknown setting; did you mean "
                                    "'cache_dir'?"),
])
def test_bad_values_name_the_setting_and_what_is_allowed(override, expected):
    assert expected in _problems({**MINIMAL, **override})


def test_missing_table_and_all_problems_reported_at_once():
    message = _problems({"cohort": {"label": "y"}, "seed": "x", "dl": {"epochs": -1}})
    assert "3 problem(s)" in message
    assert "cohort.table: required setting is missing" in message


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_study(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("cohort: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_study(broken)


def test_template_lists_every_key_and_loads_back_to_the_defaults(tmp_path):
    text = study_template()
    path = tmp_path / "study.yaml"
    path.write_text(text)
    loaded = load_study(path)
    expected = StudyConfig(cohort=CohortSettings(table="cases.csv"))
    assert loaded.to_dict() == expected.to_dict()
    for key in ("icc_threshold", "pca_components", "external", "repeat_masks", "grids"):
        assert f"\n  {key}:" in text
    commented = [line for line in text.splitlines() if line.strip().startswith("# ")]
    assert len(commented) >= len([ln for ln in text.splitlines() if ":" in ln and "#" not in ln])


def test_dlrn_init_writes_the_template_and_refuses_to_overwrite(tmp_path, capsys):
    from dlrn.cli import main

    path = tmp_path / "study.yaml"
    assert main(["init", str(path)]) == 0
    assert path.read_text() == study_template()
    assert main(["init", str(path)]) == 2
    assert "exists" in capsys.readouterr().err


def test_learning_rate_and_cache_default_to_the_modules_choices(tmp_path):
    config = study_from_dict(MINIMAL, base_dir=tmp_path)
    assert config.dl.learning_rate is None  # dlrn.deep picks it by the initial weights
    assert config.radiomics_cache_dir == tmp_path / "dlrn-study" / "cache" / "radiomics"
    shared = study_from_dict({**MINIMAL, "radiomics": {"cache_dir": "../features/cache"}},
                             base_dir=tmp_path / "studies")
    assert shared.radiomics_cache_dir == tmp_path / "features" / "cache"


def test_busbra_example_loads_and_points_at_the_shared_data():
    root = Path(__file__).resolve().parents[1]
    config = load_study(root / "examples" / "busbra.yaml")
    shared_table = root.parent / "shared" / "data" / "busbra" / "cases.csv"
    assert config.resolve(config.cohort.table).resolve() == shared_table.resolve()
    cache = root.parent / "busbra-features" / "cache"
    assert config.radiomics_cache_dir.resolve() == cache.resolve()
    assert config.cohort.label == "malignant" and config.cohort.patient == "patient_id"
    assert set(config.cohort.clinical) == {"birads", "device", "side"}
    assert config.dl.weights is None and config.dl.epochs == 1
    assert config.dl.backbones == ["densenet121", "vgg19", "resnet50"]
