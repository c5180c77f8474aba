"""The support forecast is printed with its caveat: the paper's registered frequency-theory tests
F1 and F2 failed, and the default thresholds were fitted to its measured cells (docs/method.md §9.2)."""

from __future__ import annotations

from cli_helpers import run
from ungrok.corpus.build import BuildOptions, build_corpus
from ungrok.corpus.ingest import iter_documents
from ungrok.corpus.tokenizer import build_word_tokenizer


def _corpus(tmp_path):  # noqa: ANN001, ANN202
    words = ["Sue", "went", "home", "and", "she", "he", "slept", "."]
    tok = build_word_tokenizer(words, ["."])
    tok.save(str(tmp_path / "tok.json"))
    (tmp_path / "d.txt").write_text("Sue went home and she slept.\n\nSue went home and he slept.")
    build_corpus(lambda: iter_documents([tmp_path / "d.txt"]), tmp_path / "c",
                 BuildOptions(tokenizer=str(tmp_path / "tok.json"), shard_tokens=100), {})
    return tmp_path / "c"


def test_support_prints_the_forecast_with_the_failed_registered_tests(tmp_path, capsys):
    code, out, err = run(["support", _corpus(tmp_path), "--rules", "pronoun_gender_ref"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith("forecast (the support law, not a verdict)"))
    caveat = lines[at + 1]  # one line, right under the thresholds it qualifies
    assert caveat.startswith("caveat: ")
    # F1: Spearman rho(support ratio, final conflict) > 0 in every web cell; observed +0.80, -0.50, -0.50
    assert "F1" in caveat and "+0.80, -0.50, -0.50" in caveat
    # F2: the gender families lowest on web; a/an 2.50 and negation 4.85 were below pronoun 6.94
    assert "F2" in caveat and all(x in caveat for x in ("2.50", "4.85", "6.94"))
    assert "failed" in caveat and "fitted to the paper's own measured cells" in caveat
    assert "not a tested law" in caveat

