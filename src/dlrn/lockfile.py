"""The lock file: the exact versions ``make venv`` installs, and whether a run has them.

``requirements.lock`` (beside pyproject.toml) pins every package of the environment
that ``make venv`` builds, in pip's requirements format; its header repeats the
requirements of pyproject.toml it was made from, and the Python and platform it was
made on. pyproject.toml keeps its ranges, for those who install dlrn as a library.

    python -m dlrn.lockfile write requirements.lock   # the running environment, pinned
    python -m dlrn.lockfile check                     # pyproject.toml against the lock
    python -m dlrn.lockfile platform                  # made for this platform and Python?
    python -m dlrn.lockfile verify                    # both, then installed == locked

``make lock`` runs ``write`` in a fresh environment, ``make lock-check`` (part of
``make test``, hence CI) runs ``check``, ``make venv`` ends with ``verify``; every
study's provenance records :func:`lock_status`, whether its versions are the lock's.
"""

from __future__ import annotations

import hashlib
import platform
import re
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

LOCK_NAME = "requirements.lock"
PYPROJECT = "pyproject.toml"
#: The package itself: installed from the checkout, never pinned.
SELF = "dlrn"
REFRESH = "run `make lock` and commit requirements.lock"
_HEADER = """\
# The exact versions `make venv` installs: pip's requirements format, every package
# pinned. Made by `make lock` from pyproject.toml's requirements (listed below); `make
# lock-check` (part of `make test`, hence CI) fails while the two disagree.
"""


@dataclass
class Lock:
    """A parsed lock: the pins, and the requirements, Python and platform it was made from."""

    pins: dict[str, str] = field(default_factory=dict)  # normalised name -> version
    requires: list[str] = field(default_factory=list)
    python: str = ""
    platform: str = ""


def normalized(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def this_platform() -> str:
    return f"{sys.platform} {platform.machine()}"


def source_root() -> Path:
    """The checkout this dlrn runs from (where pyproject.toml and the lock lie)."""
    return Path(__file__).resolve().parents[2]


def find_lock() -> Path | None:
    """The lock beside the checkout this dlrn runs from; None for an installed wheel."""
    root = source_root()
    lock = root / LOCK_NAME
    return lock if lock.is_file() and (root / PYPROJECT).is_file() else None


def read_lock(path: Path) -> Lock:
    lock = Lock()
    for line in path.read_text().splitlines():
        if line.startswith("# requires: "):
            lock.requires.append(line.removeprefix("# requires: ").strip())
        elif line.startswith("# python: "):
            lock.python = line.removeprefix("# python: ").strip()
        elif line.startswith("# platform: "):
            lock.platform = line.removeprefix("# platform: ").strip()
        elif line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            lock.pins[normalized(name.strip())] = version.split(";")[0].strip()
    return lock


def installed_versions() -> dict[str, str]:
    """Every distribution of the running environment but dlrn itself."""
    versions = {}
    for distribution in metadata.distributions():
        name = normalized(distribution.metadata["Name"] or "")
        if name and name != SELF:
            versions.setdefault(name, distribution.version)
    return versions


def pyproject_requirements(pyproject: Path) -> list[str]:
    """pyproject.toml's requirements, normalised; optional ones as ``[extra] requirement``."""
    from packaging.requirements import Requirement

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the dev extra installs tomli
        import tomli as tomllib

    project = tomllib.loads(pyproject.read_text())["project"]
    found = [str(Requirement(text)) for text in project.get("dependencies", [])]
    for extra, texts in sorted(project.get("optional-dependencies", {}).items()):
        found += [f"[{extra}] {Requirement(text)}" for text in texts]
    return found


def write_lock(path: Path, pyproject: Path) -> int:
    """Pin the running environment (made by ``make lock``); returns the number of pins."""
    versions = installed_versions()
    lines = [_HEADER.rstrip("\n"), f"# python: {platform.python_version()}",
             f"# platform: {this_platform()}",
             *(f"# requires: {text}" for text in pyproject_requirements(pyproject)),
             *(f"{name}=={versions[name]}" for name in sorted(versions))]
    path.write_text("\n".join(lines) + "\n")
    return len(versions)


def lock_problems(pyproject: Path, lock_path: Path) -> list[str]:
    """Where pyproject.toml and the lock disagree: a requirement added, removed or changed
    since the lock was made, or one its pinned version does not satisfy."""
    from packaging.markers import default_environment
    from packaging.requirements import Requirement

    lock = read_lock(lock_path)
    wanted = pyproject_requirements(pyproject)
    problems = [f"pyproject.toml requires {text}, which the lock was not made from"
                for text in wanted if text not in lock.requires]
    problems += [f"the lock was made from {text}, which pyproject.toml no longer requires"
                 for text in lock.requires if text not in wanted]
    for text in wanted:
        extra, _, spec = text.rpartition("] ")
        requirement = Requirement(spec)
        environment = {**default_environment(), "extra": extra.lstrip("[")}
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        pinned = lock.pins.get(normalized(requirement.name))
        if pinned is None:
            problems.append(f"{requirement.name} ({text}) is not pinned in the lock")
        elif not requirement.specifier.contains(pinned, prereleases=True):
            problems.append(f"the lock pins {requirement.name}=={pinned}, outside {text}")
    return problems


def lock_status(path: Path | None = None) -> dict[str, Any]:
    """Whether the running versions are the lock's: for a study's provenance and report.

    ``matches`` is true when every pinned package is installed at its pinned version and
    nothing else is installed; ``differ`` lists the others (``installed`` "not installed"
    for a missing one, ``locked`` "not locked" for an extra one).
    """
    path = path or find_lock()
    if path is None:
        return {"file": None, "matches": False,
                "note": f"no {LOCK_NAME} beside this dlrn (installed as a library): versions "
                        "within pyproject.toml's ranges"}
    lock, installed = read_lock(path), installed_versions()
    differ = {name: {"locked": lock.pins.get(name, "not locked"),
                     "installed": installed.get(name, "not installed")}
              for name in sorted(set(lock.pins) | set(installed))
              if lock.pins.get(name) != installed.get(name)}
    return {"file": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "python": lock.python, "platform": lock.platform,
            "matches": not differ, "differ": differ}


def _difference(package: str, versions: dict[str, str]) -> str:
    installed, locked = versions["installed"], versions["locked"]
    if locked == "not locked":
        return f"{package} {installed} (not in the lock)"
    return f"{package} {installed} (locked {locked})"


def status_text(status: dict[str, Any]) -> str:
    """One sentence for the report's methods: are these the lock's versions?"""
    if not status:
        return "no comparison with a lock file recorded"
    if status.get("file") is None:
        return status.get("note", f"no {LOCK_NAME} was found")
    name = Path(status["file"]).name
    if status["matches"]:
        return f"the exact versions of {name} (sha256 {status['sha256'][:12]})"
    differ = status["differ"]
    shown = ", ".join(_difference(package, versions) for package, versions in
                      list(differ.items())[:5])
    more = f" and {len(differ) - 5} more" if len(differ) > 5 else ""
    return (f"not the versions of {name} (sha256 {status['sha256'][:12]}): "
            f"{len(differ)} package(s) differ: {shown}{more}")


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def platform_problems(lock_path: Path) -> list[str]:
    """The lock's platform and Python (major.minor) against the running ones: its wheels
    (CUDA libraries, compiled extensions) exist for that platform only."""
    lock = read_lock(lock_path)
    if (lock.platform, _minor(lock.python)) == (this_platform(),
                                                _minor(platform.python_version())):
        return []
    return [f"the lock was made on {lock.platform} with Python {lock.python}; this is "
            f"{this_platform()} with Python {platform.python_version()}: `make lock` makes a "
            "lock for this machine (the newest versions within pyproject.toml's ranges)"]


def verify_problems(pyproject: Path, lock_path: Path) -> list[str]:
    """:func:`lock_problems`, the platform, then every installed version against its pin."""
    problems = lock_problems(pyproject, lock_path) + platform_problems(lock_path)
    for name, versions in lock_status(lock_path)["differ"].items():
        installed, locked = versions["installed"], versions["locked"]
        problems.append(f"{name} {installed} is installed but not in the lock"
                        if locked == "not locked" else
                        f"{name} is {installed}, the lock pins {locked}")
    return problems


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m dlrn.lockfile",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("write", "check", "platform", "verify"))
    parser.add_argument("lock", nargs="?", type=Path, default=source_root() / LOCK_NAME)
    parser.add_argument("--pyproject", type=Path, default=source_root() / PYPROJECT)
    args = parser.parse_args(argv)
    if args.action == "write":
        count = write_lock(args.lock, args.pyproject)
        print(f"wrote {args.lock}: {count} packages pinned")
        return 0
    if not args.lock.is_file():
        print(f"{args.lock} does not exist: {REFRESH}", file=sys.stderr)
        return 1
    problems, remedy, fine = {
        "check": (lambda: lock_problems(args.pyproject, args.lock), REFRESH,
                  "agrees with pyproject.toml"),
        "platform": (lambda: platform_problems(args.lock), "", "made for this platform"),
        "verify": (lambda: verify_problems(args.pyproject, args.lock),
                   "this environment is not the lock's", "every installed version is the "
                                                         "lock's"),
    }[args.action]
    found = problems()
    for problem in found:
        print(f"{args.lock.name}: {problem}", file=sys.stderr)
    if found:
        if remedy:
            print(f"{len(found)} problem(s): {remedy}", file=sys.stderr)
        return 1
    print(f"{args.lock.name}: {fine}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
