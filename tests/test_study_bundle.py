"""Model bundle: round trip without pickle, checksum and version checks, trusted types only."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.ensemble import ExtraTreesClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from dlrn.study.bundle import MANIFEST_NAME, Bundle, BundleError, BundleWriter


@pytest.fixture()
def bundle_dir(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(int)
    model = make_pipeline(StandardScaler(), ExtraTreesClassifier(n_estimators=5, random_state=0))
    model.fit(X, y)
    writer = BundleWriter(tmp_path / "bundle")
    writer.add_json("settings", {"features": ["a", "b", "c"], "threshold": np.float64(0.5)})
    writer.add_estimator("models/HCR-ExtraTrees", model)
    writer.add_arrays("pca", {"components": rng.normal(size=(2, 3)).astype(np.float32)})
    writer.finish(study="unit test")
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "proba.npy", model.predict_proba(X))
    return tmp_path / "bundle"


def test_round_trip_gives_identical_predictions(bundle_dir):
    bundle = Bundle.open(bundle_dir)
    X = np.load(bundle_dir.parent / "X.npy")
    model = bundle.estimator("models/HCR-ExtraTrees")
    np.testing.assert_array_equal(model.predict_proba(X), np.load(bundle_dir.parent / "proba.npy"))
    assert bundle.json("settings") == {"features": ["a", "b", "c"], "threshold": 0.5}
    assert bundle.arrays("pca")["components"].shape == (2, 3)
    assert bundle.manifest["study"] == "unit test"
    assert not list(bundle_dir.rglob("*.pkl")) and not list(bundle_dir.rglob("*.pickle"))


def test_tampered_file_is_refused_naming_it(bundle_dir):
    target = bundle_dir / "settings.json"
    target.write_text(target.read_text().replace("0.5", "0.1"))
    with pytest.raises(BundleError, match=r"settings\.json does not match its checksum"):
        Bundle.open(bundle_dir)


def test_missing_file_and_incompatible_version_are_refused(bundle_dir):
    manifest_path = bundle_dir / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    manifest["version"] = 999
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="bundle version 999"):
        Bundle.open(bundle_dir)
    manifest["version"] = 1
    manifest_path.write_text(json.dumps(manifest))
    (bundle_dir / "pca.safetensors").unlink()
    with pytest.raises(BundleError, match=r"pca\.safetensors is missing"):
        Bundle.open(bundle_dir)


def test_not_a_bundle_and_paths_outside_are_refused(tmp_path, bundle_dir):
    with pytest.raises(BundleError, match="not a dlrn bundle"):
        Bundle.open(tmp_path)
    manifest_path = bundle_dir / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["../X.npy"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="outside the bundle"):
        Bundle.open(bundle_dir)


def test_untrusted_types_are_refused_on_save_and_load(tmp_path, bundle_dir, monkeypatch):
    import dlrn.study.bundle as bundle_module

    monkeypatch.setattr(bundle_module, "TRUSTED_TYPES", ())
    with pytest.raises(BundleError, match=r"not trusted: .*sklearn\.tree\._tree\.Tree"):
        Bundle.open(bundle_dir).estimator("models/HCR-ExtraTrees")
    writer = BundleWriter(tmp_path / "other")
    with pytest.raises(BundleError, match="cannot bundle trees"):
        writer.add_estimator("trees", ExtraTreesClassifier(n_estimators=2).fit([[0], [1]], [0, 1]))


def test_existing_bundle_is_not_overwritten_silently(bundle_dir):
    with pytest.raises(BundleError, match="already holds a bundle"):
        BundleWriter(bundle_dir)
    BundleWriter(bundle_dir, overwrite=True)


def test_pandas_attributes_survive_the_skops_round_trip(tmp_path):
    import pandas as pd

    from dlrn.study.bundle import dump_estimator, load_trusted_estimator

    scaler = StandardScaler().fit(np.arange(6.0).reshape(3, 2))
    scaler.removed_ = pd.DataFrame({"feature": ["a"], "statistic": [0.5]},
                                   index=pd.Index([3], name="row"))
    scaler.icc = pd.Series([0.9, 0.7], index=["a", "b"], name="ICC(2,1)")
    dump_estimator(scaler, tmp_path / "scaler.skops")
    loaded = load_trusted_estimator(tmp_path / "scaler.skops")
    pd.testing.assert_frame_equal(loaded.removed_, scaler.removed_)
    pd.testing.assert_series_equal(loaded.icc, scaler.icc)
    assert isinstance(scaler.removed_, pd.DataFrame)  # the original is left untouched


def test_each_cnn_is_built_once_per_bundle_from_checked_weights(tmp_path):
    import torch

    from dlrn.deep.networks import build_model

    trained = build_model("resnet18", weights=None)
    writer = BundleWriter(tmp_path / "bundle")
    for name in ("deep/cnn", "deep/fold1/cnn"):  # any number of CNNs, by name
        writer.add_arrays(name, trained.state_dict())
    writer.finish()
    bundle = Bundle.open(tmp_path / "bundle")
    model = bundle.cnn("resnet18")
    assert bundle.cnn("resnet18") is model and not model.training
    assert bundle.cnn("resnet18", "deep/fold1/cnn") is not model
    for key, value in trained.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    weights = tmp_path / "bundle" / "deep" / "cnn.safetensors"
    later = Bundle.open(tmp_path / "bundle")
    changed = bytearray(weights.read_bytes())
    changed[-1] ^= 1  # one bit, after the bundle was opened
    weights.write_bytes(bytes(changed))
    with pytest.raises(BundleError, match="checksum"):
        later.cnn("resnet18")
