"""python -m course_tools.site RUN_DIR [--check]: (re)build a run folder's course site."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from course_tools.site import SiteError, build_site, search_target
from course_tools.site.check import SiteCheckError, check_site


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_tools.site",
                                     description="Build RUN_DIR/site/ from a `make course` run folder.")
    parser.add_argument("run_dir", type=Path, help="a course_output/run-<date-time>/ folder")
    parser.add_argument("--check", action="store_true",
                        help="then open it in headless Chromium (writes RUN_DIR/site-check/)")
    args = parser.parse_args(argv)
    try:
        built = build_site(args.run_dir)
    except SiteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{built.pages} pages, {built.megabytes:.1f} MB in {built.seconds:.1f} s: {built.site / 'index.html'}")
    if not args.check:
        return 0
    try:
        report = check_site(built.site, args.run_dir / "site-check", **search_target(built))
    except SiteCheckError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for problem in report["problems"]:
        print(f"  {problem}")
    print(f"{len(report['problems'])} problem(s); {report['requests']} requests; screenshots in "
          f"{args.run_dir / 'site-check'}/")
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
