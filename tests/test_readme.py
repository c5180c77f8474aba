"""The README's user-rule example is a valid rule (docs that drift are bugs)."""

from __future__ import annotations

import re
from pathlib import Path

from ungrok.rules.expand import expand_probes
from ungrok.rules.registry import get_rule, lists_for

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_user_rule_loads_and_expands(tmp_path):
    text = README.read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(name: there_were.*?)```", text, re.S)
    assert block, "README lost its user-rule example"
    (tmp_path / "there_were.yaml").write_text(block.group(1))
    spec = get_rule("there_were", tmp_path)
    items = expand_probes(spec, lists_for(spec, tmp_path))
    assert [(i["prefix"], i["correct"], i["distractor"]) for i in items] == [("There", " were", " was")]
