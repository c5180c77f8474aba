"""Headless Chromium for the report: check that every figure decodes, and take screenshots.

The report itself carries no script. To ask the browser what it rendered, a copy of the
report gets one appended script that, after the load event, writes each image's decoded
size, each section's place on the page and each <details> element's state into the DOM; `--dump-dom` then prints that DOM. `--virtual-time-budget` makes
Chromium run the page's timers and load handlers before it dumps, so the check does not
race the image decoder. Each call uses a fresh profile folder, so parallel test workers
never share a profile lock.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ungrok.errors import UngrokError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHECK_ID = "ungrok-render-check"
CHECK_SCRIPT = f"""<script>
window.addEventListener("load", function () {{
  var imgs = Array.prototype.map.call(document.images, function (im) {{
    var r = im.getBoundingClientRect();
    return {{alt: im.alt, complete: im.complete, width: im.naturalWidth, height: im.naturalHeight,
             shown_width: r.width, shown_height: r.height, folded: !!im.closest("details:not([open])")}};
  }});
  var place = {{}};
  document.querySelectorAll("section").forEach(function (s) {{
    var r = s.getBoundingClientRect();
    place[s.id] = {{top: r.top + window.scrollY, bottom: r.bottom + window.scrollY}};
  }});
  var details = Array.prototype.map.call(document.querySelectorAll("details"), function (d) {{
    var s = d.closest("section");
    return {{section: s ? s.id : null, open: d.open}};
  }});
  var out = document.createElement("pre");
  out.id = "{CHECK_ID}";
  out.textContent = JSON.stringify({{title: document.title, images: imgs,
    sections: Array.prototype.map.call(document.querySelectorAll("section"), function (s) {{ return s.id; }}),
    place: place, details: details, viewport_height: window.innerHeight,
    page_height: document.documentElement.scrollHeight}});
  document.body.appendChild(out);
}});
</script>"""


def browser_required(environ: Mapping[str, str] | None = None) -> bool:
    """Whether a missing Chromium is an error for the browser tests rather than a skip: under
    CI (`CI` set to true/1/yes, as `.ci/run` and CI services set it), where it must be there."""
    env = os.environ if environ is None else environ
    return env.get("CI", "").strip().lower() in ("true", "1", "yes")


def find_chromium() -> str | None:
    """$UNGROK_CHROMIUM if set, else the first Chromium/Chrome on PATH."""
    env = os.environ.get("UNGROK_CHROMIUM")
    if env:
        return env if shutil.which(env) else None
    return next(filter(None, map(shutil.which, CANDIDATES)), None)


def _chromium(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    exe = find_chromium()
    if exe is None:
        raise UngrokError("chromium not found; install the Debian 'chromium' package (.ci/ensure-chromium)")
    with tempfile.TemporaryDirectory(prefix="ungrok-chromium-") as profile:
        cmd = [exe, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--hide-scrollbars",
               "--force-device-scale-factor=1", f"--user-data-dir={profile}", *args]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise UngrokError(f"chromium did not finish within {timeout:g} s") from None
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise UngrokError(f"chromium exited with code {proc.returncode}: {tail[0]}")
    return proc


def render_check(report: str | Path, timeout: float = 60.0, width: int = 1280,
                 height: int = 900) -> dict[str, Any]:
    """Load the report in headless Chromium in a width × height window; return its title,
    section ids, each section's top and bottom on the page (`place`, px), each <details>
    element's section and whether it is open, the window's height, the page height and, per
    <img>, whether it loaded, its decoded (natural) and displayed sizes and whether a closed
    <details> hides it (`folded`: decoded, but not laid out)."""
    report = Path(report)
    text = report.read_text(encoding="utf-8")
    cut = text.rfind("</body>")
    if cut < 0:
        raise UngrokError(f"{report}: no </body>; not an HTML report")
    with tempfile.TemporaryDirectory(prefix="ungrok-render-") as d:
        probe = Path(d) / report.name
        probe.write_text(text[:cut] + CHECK_SCRIPT + text[cut:], encoding="utf-8")
        proc = _chromium([f"--window-size={width},{height}", "--virtual-time-budget=10000", "--dump-dom",
                          probe.as_uri()], timeout)
    m = re.search(rf'<pre id="{CHECK_ID}">(.*?)</pre>', proc.stdout, re.S)
    if m is None:
        raise UngrokError("chromium rendered the page but the render check did not run")
    return json.loads(html.unescape(m.group(1)))


def screenshot(report: str | Path, png: str | Path, width: int = 1280, height: int = 1600,
               timeout: float = 60.0) -> Path:
    """Save the top width × height pixels of the rendered report as a PNG."""
    report, png = Path(report).resolve(), Path(png).resolve()
    if not report.is_file():
        raise UngrokError(f"{report}: report not found")
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ungrok-shot-", dir=png.parent) as d:
        tmp = Path(d) / "shot.png"
        _chromium([f"--window-size={width},{height}", f"--screenshot={tmp}", report.as_uri()], timeout)
        if not tmp.is_file():
            raise UngrokError("chromium wrote no screenshot")
        os.replace(tmp, png)
    return png
