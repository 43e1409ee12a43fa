"""Copy the files the chart must carry from their sources in the repository.

Helm can only read files inside the chart directory, so the packaged policy, the generated Grafana
dashboards and the generated alert rules are committed as exact copies under
helm/model-router/files/. Run this after changing any of them:

    python helm/sync_files.py            # copy the sources into the chart
    python helm/sync_files.py --check    # exit 1 and name every file that differs (CI, tests)
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHART_FILES = REPO / "helm" / "model-router" / "files"


@dataclass(frozen=True, slots=True)
class Copy:
    """One source file in the repository and its copy in the chart."""

    source: Path
    target: Path


def planned_copies(repo: Path = REPO, chart_files: Path = CHART_FILES) -> list[Copy]:
    """Every (source, target) pair; the dashboards are whatever dashboards/generated/ holds."""
    copies = [
        Copy(repo / "policies" / "default.yaml", chart_files / "policy.yaml"),
        Copy(repo / "dashboards" / "alerts" / "model-router.rules.yaml",
             chart_files / "prometheus-rules.yaml"),
    ]
    for source in sorted((repo / "dashboards" / "generated").glob("*.json")):
        copies.append(Copy(source, chart_files / "dashboards" / source.name))
    return copies


def drift(repo: Path = REPO, chart_files: Path = CHART_FILES) -> list[str]:
    """One line per problem: a missing source, a missing or different copy, a stale dashboard."""
    problems: list[str] = []
    copies = planned_copies(repo, chart_files)
    for copy in copies:
        source, target = copy.source.relative_to(repo), copy.target.relative_to(repo)
        if not copy.source.is_file():
            problems.append(f"{source}: source is missing (the chart's {target} is not backed by it)")
        elif not copy.target.is_file():
            problems.append(f"{target}: missing; copy of {source}")
        elif copy.source.read_bytes() != copy.target.read_bytes():
            problems.append(f"{target}: differs from {source}")
    if not any(c.target.parent == chart_files / "dashboards" for c in copies):
        problems.append("dashboards/generated/: no *.json dashboards to carry")
    wanted = {c.target for c in copies}
    for extra in sorted((chart_files / "dashboards").glob("*.json")):
        if extra not in wanted:
            problems.append(f"{extra.relative_to(repo)}: stale; no dashboards/generated/{extra.name}")
    return problems


def sync(repo: Path = REPO, chart_files: Path = CHART_FILES) -> list[str]:
    """Copy every source present, remove stale dashboards; return what changed."""
    changed: list[str] = []
    copies = planned_copies(repo, chart_files)
    for copy in copies:
        if not copy.source.is_file():
            continue
        if copy.target.is_file() and copy.target.read_bytes() == copy.source.read_bytes():
            continue
        copy.target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(copy.source, copy.target)
        changed.append(f"copied {copy.source.relative_to(repo)} -> {copy.target.relative_to(repo)}")
    if any(c.target.parent == chart_files / "dashboards" for c in copies):
        wanted = {c.target for c in copies}
        for extra in sorted((chart_files / "dashboards").glob("*.json")):
            if extra not in wanted:
                extra.unlink()
                changed.append(f"removed stale {extra.relative_to(repo)}")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report drift and exit 1; change nothing")
    args = parser.parse_args(argv)
    if args.check:
        problems = drift()
        for line in problems:
            print(f"drift: {line}", file=sys.stderr)
        if problems:
            print("fix: python helm/sync_files.py", file=sys.stderr)
        return 1 if problems else 0
    for line in sync():
        print(line)
    problems = drift()
    for line in problems:
        print(f"still wrong: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
