"""The one formatter of pydantic's first validation error."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from ungrok.errors import UngrokError, failure_line, first_error, first_error_line


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int


class Doc(BaseModel):
    inner: Inner | None = None

    @model_validator(mode="after")
    def _needs_inner(self) -> Doc:
        if self.inner is None:
            raise ValueError("give inner")
        return self


def _err(data) -> ValidationError:
    with pytest.raises(ValidationError) as e:
        Doc.model_validate(data)
    return e.value


def test_location_is_a_dotted_path_and_the_message_loses_the_value_error_prefix():
    bad_n = _err({"inner": {"n": "x"}})
    assert first_error(bad_n) == ("inner.n", bad_n.errors()[0]["msg"])
    assert "integer" in first_error(bad_n)[1]
    assert first_error(_err({})) == ("", "give inner")
    assert first_error(_err({}), top="top level", raw=True) == ("top level", "Value error, give inner")


def test_one_line_names_where_then_what():
    assert first_error_line(_err({}), "f.json") == "f.json: top level: give inner"
    assert first_error_line(_err({}), "f.json", top="", raw=True) == "f.json: : Value error, give inner"
    assert first_error_line(_err({"inner": {"n": 1, "m": 2}}), "f.json") == "f.json: inner.m: Extra inputs are not permitted"


def test_a_failed_task_is_one_line_and_only_foreign_errors_name_their_type():
    assert failure_line(UngrokError("cannot load m at revision 'step1'\nmore detail")) == "cannot load m at revision 'step1'"
    assert failure_line(RuntimeError("out of memory\ntraceback-ish")) == "RuntimeError: out of memory"
    assert failure_line(KeyError()) == "KeyError"


def test_first_line_quotes_a_library_error_in_one_line():
    from ungrok.errors import first_line

    assert first_line(OSError("no such revision 'step9'\nTraceback detail\n")) == "no such revision 'step9'"
    assert first_line(ValueError("  \n  ")) == "ValueError"  # no message: the type's name
