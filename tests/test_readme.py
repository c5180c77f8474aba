"""The README and docs/ stay true: the user-rule example is a valid rule, the README opens
with its two set-up commands, and every relative link resolves (docs that drift are bugs)."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

from ungrok.rules.expand import expand_probes
from ungrok.rules.registry import get_rule, lists_for

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RULES_DOC = ROOT / "docs" / "rules.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)


def test_rules_doc_user_rule_loads_and_expands(tmp_path):
    text = RULES_DOC.read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(name: there_were.*?)```", text, re.S)
    assert block, "docs/rules.md lost its user-rule example"
    (tmp_path / "there_were.yaml").write_text(block.group(1))
    spec = get_rule("there_were", tmp_path)
    items = expand_probes(spec, lists_for(spec, tmp_path))
    assert [(i["prefix"], i["correct"], i["distractor"]) for i in items] == [("There", " were", " was")]


def test_readme_opens_with_the_two_setup_commands():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "```bash"
    assert lines[1].split("#")[0].strip() == "make demo"
    assert lines[2].split("#")[0].strip() == "make test"
    assert lines[3] == "```"


def _prose(text: str) -> str:
    """The text outside fenced code blocks and inline code spans."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation removed, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    text = unicodedata.normalize("NFC", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for m in HEADING.finditer(FENCE.sub("", page.read_text(encoding="utf-8"))):
        base = _slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def _links(page: Path) -> list[str]:
    return [m.group(1) for m in LINK.finditer(_prose(page.read_text(encoding="utf-8")))]


def test_link_checker_sees_links_and_skips_code():
    text = "see [a](docs/a.md) and ![b](b.png#x)\n```\n[c](nope.md)\n```\n`[d](nope.md)`\n"
    assert [m.group(1) for m in LINK.finditer(_prose(text))] == ["docs/a.md", "b.png#x"]
    assert _slug("Fates and margins: `ungrok classify`") == "fates-and-margins-ungrok-classify"
    assert (
        _slug("Measured (shared 2-core machine, load ≈ 2.5–3)") == "measured-shared-2-core-machine-load--253"
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    broken = []
    for target in _links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not (dest.is_file() or (dest.is_dir() and path.endswith("/"))) or ROOT not in dest.parents:
            broken.append(f"{target}: no file {dest}")  # a folder link must say so with a trailing /
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)} has broken links:\n" + "\n".join(broken)
