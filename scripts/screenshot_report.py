"""Screenshot a report.html in headless Chromium (for the README figure).

    .venv/bin/python scripts/screenshot_report.py demo-out/report.html docs/report-screenshot.png \
        [--width 1280] [--height 1600]

The top WIDTH x HEIGHT pixels of the page are saved. Needs the Debian `chromium` package
(`.ci/ensure-chromium` installs it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ungrok.errors import UngrokError
from ungrok.report.browser import screenshot


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Screenshot a report.html in headless Chromium.")
    p.add_argument("report", type=Path)
    p.add_argument("png", type=Path)
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=1600)
    args = p.parse_args(argv)
    try:
        out = screenshot(args.report, args.png, args.width, args.height)
    except UngrokError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
