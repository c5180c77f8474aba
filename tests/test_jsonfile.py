"""load_json_model: one line naming the file and the problem, or the validated model."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from ungrok.errors import UngrokError
from ungrok.jsonfile import load_json_model


class Thing(BaseModel):
    name: str
    count: int


def test_reads_a_valid_file(tmp_path):
    p = tmp_path / "t.json"
    p.write_text('{"name": "a", "count": 3}')
    assert load_json_model(p, Thing, "thing file") == Thing(name="a", count=3)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "thing file not found"),
        ("{not json", "the thing file is not valid JSON"),
        ('{"name": "a", "count": "many"}', "thing file: count: Input should be a valid integer"),
        ("[]", "thing file: top level:"),
    ],
)
def test_bad_input_is_one_line(tmp_path, text, message):
    p = tmp_path / "t.json"
    if text is not None:
        p.write_text(text)
    with pytest.raises(UngrokError) as e:
        load_json_model(p, Thing, "thing file")
    assert message in str(e.value) and str(p) in str(e.value) and "\n" not in str(e.value)
