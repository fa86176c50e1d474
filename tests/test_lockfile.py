"""The lock: pyproject.toml and requirements.lock agree (CI fails otherwise), a run can say
whether its versions are the lock's, and `make venv` installs exactly the lock."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from dlrn.lockfile import (
    LOCK_NAME,
    installed_versions,
    lock_problems,
    lock_status,
    platform_problems,
    read_lock,
    status_text,
    write_lock,
)

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
LOCK = ROOT / LOCK_NAME


def test_the_lock_agrees_with_pyproject():
    assert lock_problems(PYPROJECT, LOCK) == []


def _changed_pyproject(tmp_path: Path, old: str, new: str) -> Path:
    text = PYPROJECT.read_text()
    assert old in text
    path = tmp_path / "pyproject.toml"
    path.write_text(text.replace(old, new))
    return path


def test_a_requirement_added_to_pyproject_fails_the_check_until_the_lock_is_refreshed(tmp_path):
    pyproject = _changed_pyproject(tmp_path, '"psutil>=5.9",', '"psutil>=5.9",\n    "einops>=0.7",')
    problems = lock_problems(pyproject, LOCK)
    assert "pyproject.toml requires einops>=0.7, which the lock was not made from" in problems
    assert "einops (einops>=0.7) is not pinned in the lock" in problems


def test_a_pin_outside_a_changed_range_and_a_removed_requirement_are_named(tmp_path):
    pinned = read_lock(LOCK).pins["numpy"]
    pyproject = _changed_pyproject(tmp_path, '"numpy>=1.26",', f'"numpy>{pinned}",')
    problems = lock_problems(pyproject, LOCK)
    assert f"the lock pins numpy=={pinned}, outside numpy>{pinned}" in problems
    assert "the lock was made from numpy>=1.26, which pyproject.toml no longer requires" \
        in problems


def test_a_lock_of_this_environment_matches_it_and_one_changed_pin_is_named(tmp_path):
    lock = tmp_path / LOCK_NAME
    count = write_lock(lock, PYPROJECT)
    assert read_lock(lock).pins == installed_versions() and count == len(installed_versions())
    assert lock_status(lock)["matches"]
    assert status_text(lock_status(lock)).startswith(f"the exact versions of {LOCK_NAME}")
    lock.write_text(lock.read_text().replace(f"numpy=={installed_versions()['numpy']}",
                                             "numpy==1.0.0"))
    status = lock_status(lock)
    assert not status["matches"]
    assert status["differ"] == {"numpy": {"locked": "1.0.0",
                                          "installed": installed_versions()["numpy"]}}
    assert "1 package(s) differ: numpy" in status_text(status)


def test_make_venv_installs_exactly_the_locks_versions():
    """CI builds .venv from the lock (`make test`); elsewhere there is nothing to check."""
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        pytest.skip(f"not running in {ROOT / '.venv'} (made by `make venv` from the lock)")
    pins = read_lock(LOCK).pins
    assert installed_versions() == pins


def test_a_lock_made_on_another_platform_is_refused_before_anything_installs(tmp_path):
    lock = tmp_path / LOCK_NAME
    lock.write_text(LOCK.read_text().replace(f"# platform: {read_lock(LOCK).platform}",
                                             "# platform: darwin arm64"))
    assert platform_problems(LOCK) == []
    [problem] = platform_problems(lock)
    assert problem.startswith("the lock was made on darwin arm64 with Python ")
    assert "`make lock` makes a lock for this machine" in problem
