"""``dlrn extract``: a cohort table in, a handcrafted radiomics feature table out.

The cohort is validated first (all problems listed at once), then features are
extracted in parallel with a content-hash cache. Beside ``FEATURES.csv`` go
``FEATURES.params.yaml`` (the exact PyRadiomics parameters),
``FEATURES.provenance.json`` (versions, inputs, settings), and when needed
``FEATURES.failures.csv`` (cases PyRadiomics could not extract; exit code 1)
and ``FEATURES.exclusions.csv`` (cases excluded by validation).
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

import yaml

from dlrn.cli._cohort_args import add_cohort_arguments, cohort_columns, read_cohort_from_args
from dlrn.cli._console import Console, add_console_options, run_log
from dlrn.errors import ConfigError
from dlrn.study.config import RadiomicsSettings

log = logging.getLogger(__name__)

EXIT_SOME_CASES_FAILED = 1
_SHOWN_FAILURES = 20


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "extract",
        help="extract handcrafted radiomics features (PyRadiomics) for a cohort table",
        description=(
            "Validate a cohort table, then extract PyRadiomics features for every case in "
            "parallel, with a cache so that a re-run only extracts new or changed cases."
        ),
    )
    parser.add_argument("table", type=Path, help="cohort table (CSV, TSV or Excel)")
    parser.add_argument("--out", required=True, type=Path, help="features CSV to write")
    parser.add_argument(
        "--preset", default="seed",
        help="seed (1497 features), fast (original image, 102) or a PyRadiomics YAML file",
    )
    parser.add_argument("--jobs", type=int, default=None, help="parallel processes (all cores)")
    add_cohort_arguments(parser, on_error=True)
    parser.add_argument(
        "--mask-column", dest="repeat_mask_column", default=None,
        help="extract with this repeat-segmentation column instead of --mask (for ICC)",
    )
    parser.add_argument(
        "--cache", type=Path, default=None,
        help="feature cache folder (default: dlrn-cache/radiomics beside --out)",
    )
    parser.add_argument("--no-cache", action="store_true", help="do not read or write a cache")
    parser.add_argument("--scheduler", default=None,
                        help="address of an existing Dask scheduler (tcp://host:8786)")
    parser.add_argument("--overwrite", action="store_true", help="replace earlier outputs")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_console_options(parser)
    parser.set_defaults(func=run)


def output_paths(out: Path) -> dict[str, Path]:
    """Every file ``dlrn extract --out out`` may write."""
    stem = out.with_suffix("")
    return {
        "features": out,
        "params": Path(f"{stem}.params.yaml"),
        "provenance": Path(f"{stem}.provenance.json"),
        "failures": Path(f"{stem}.failures.csv"),
        "exclusions": Path(f"{stem}.exclusions.csv"),
    }


def radiomics_section(args: argparse.Namespace) -> RadiomicsSettings:
    """The options as the study file's ``radiomics`` section (validated the same way)."""
    from dlrn.study.validation import section_from_dict

    return section_from_dict(RadiomicsSettings, {
        "preset": args.preset, "jobs": args.jobs, "scheduler": args.scheduler,
        "cache_dir": None if args.cache is None else str(args.cache)},
        path="radiomics", source="the extract options")


def run(args: argparse.Namespace) -> int:
    from dlrn.radiomics import load_params
    from dlrn.study.stages.radiomics import extract

    paths = _prepare_outputs(args.out, args.overwrite)
    params = load_params(args.preset)  # a bad parameter file fails before validation
    repeat = args.repeat_mask_column
    mask_column = "mask" if repeat in (None, args.mask_column) else repeat
    columns = cohort_columns(args)
    if mask_column != "mask":
        columns = replace(columns, repeat_masks=(mask_column,))
    console = Console(args)
    progress = console.progress and not args.no_progress
    with run_log(args.out.parent, args) as log_path:
        cohort = read_cohort_from_args(args, columns)
        default_cache = args.out.parent / "dlrn-cache" / "radiomics"
        cache_dir = None if args.no_cache else (args.cache or default_cache)
        result = extract(cohort.cases, radiomics_section(args), preset=params,
                         cache_dir=cache_dir, mask_column=mask_column,
                         mask_label=args.mask_label, frame=args.frame, progress=progress)
        _write_outputs(paths, result, cohort, args, cache_dir)
    return _report(paths, result, cohort, console, log_path)


def _prepare_outputs(out: Path, overwrite: bool) -> dict[str, Path]:
    """Refuse to replace earlier results unless told to (checked before any long work)."""
    if out.suffix.lower() != ".csv":
        raise ConfigError(f"--out must name a .csv file, got {out}")
    paths = output_paths(out)
    existing = [path for path in paths.values() if path.exists()]
    if existing and not overwrite:
        raise ConfigError(
            "output already exists: " + ", ".join(map(str, existing))
            + "; choose another --out or add --overwrite"
        )
    return paths


def _write_outputs(paths, result, cohort, args, cache_dir) -> None:
    from dlrn.provenance import file_sha256, write_provenance
    from dlrn.tables import write_tables

    for path in paths.values():  # --overwrite: no stale failures/exclusions from an earlier run
        path.unlink(missing_ok=True)
    folder = paths["features"].parent
    stem = paths["features"].stem
    tables = {stem: result.features.reset_index()}
    if len(result.failures):
        tables[f"{stem}.failures"] = result.failures
    if len(cohort.exclusions):
        tables[f"{stem}.exclusions"] = cohort.exclusions
    write_tables(tables, folder, workbook=None)
    paths["params"].write_text(yaml.safe_dump(result.params, sort_keys=False))
    write_provenance(
        paths["provenance"],
        cohort_table=str(cohort.source),
        cohort_table_sha256=file_sha256(cohort.source),
        preset=str(args.preset),
        params=result.params,
        mask_column=args.repeat_mask_column or args.mask_column,
        mask_label=args.mask_label,
        frame=args.frame,
        min_roi_mm=args.min_roi_mm,
        min_roi_pixels=args.min_roi_pixels,
        cache=str(cache_dir) if cache_dir else None,
        jobs=args.jobs,
        scheduler=args.scheduler,
        n_cases=len(cohort.cases),
        n_features=result.features.shape[1],
        n_extracted=len(result.features),
        n_from_cache=len(result.from_cache),
        failed_cases=list(result.failures["case_id"]),
        excluded_cases=list(cohort.exclusions.get("case_id", [])),
    )


def _report(paths, result, cohort, console, log_path) -> int:
    console.say(
        f"dlrn extract: {len(result.features)} cases x {result.features.shape[1]} features "
        f"-> {paths['features']} ({len(result.from_cache)} from cache)"
    )
    if len(cohort.exclusions):
        console.say(f"dlrn extract: {len(cohort.exclusions)} cases excluded by validation, "
                    f"listed in {paths['exclusions']}")
    console.say(f"log: {log_path}")
    if result.failures.empty:
        return 0
    failed = list(result.failures["case_id"])
    shown = ", ".join(failed[:_SHOWN_FAILURES]) + (" ..." if len(failed) > _SHOWN_FAILURES else "")
    print(
        f"dlrn extract: {len(failed)} cases failed ({shown}); reasons in {paths['failures']}",
        file=sys.stderr,
    )
    return EXIT_SOME_CASES_FAILED
