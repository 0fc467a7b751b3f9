"""Organization name keys: the same company written differently has one key."""

from __future__ import annotations

import unicodedata
from typing import Final

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmkit.core import matching
from crmkit.core.matching import LEGAL_SUFFIXES, name_key

#: Legal forms as people write them after a name.
WRITTEN_SUFFIXES: Final = (
    "S.A.",
    "SA",
    "S. A.",
    "s.a",
    "S.L.",
    "SL",
    "S.L.U.",
    "S.A.U.",
    "S.R.L.",
    "SRL",
    "S.A. de C.V.",
    "S. de R.L.",
    "S. de R.L. de C.V.",
    "S. Coop.",
    "Ltd.",
    "Limited",
    "LLC",
    "Inc.",
    "Corp.",
    "GmbH",
    "GmbH & Co. KG",
    "AG",
    "B.V.",
    "N.V.",
    "S.p.A.",
    "SARL",
    "plc",
    "C.B.",
)

#: Accented letters and what they fold to.
ACCENTS: Final[dict[str, str | int | None]] = {
    "á": "a",
    "é": "e",
    "í": "i",
    "ó": "o",
    "ú": "u",
    "ü": "u",
    "ñ": "n",
    "ç": "c",
}

_ASCII_WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
#: names whose words are not legal forms, so nothing is stripped from them
_PLAIN_NAMES = st.lists(
    _ASCII_WORDS.filter(lambda w: w not in LEGAL_SUFFIXES and len(w) > 1), min_size=1, max_size=4
)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("ACME, S.A.", "acme"),
        ("Acme SA", "acme"),
        ("acmé s.a", "acme"),
        ("Acme S. A.", "acme"),
        ("Distribuciones Pérez, S.L.", "distribuciones perez"),
        ("Ñandú S.L.U.", "nandu"),
        ("Müller GmbH & Co. KG", "muller"),
        ("Straße AG", "strasse"),
        ("Foo S.A. de C.V.", "foo"),
        ("Foo S. de R.L. de C.V.", "foo"),
        ("Cooperativa del Campo S. Coop.", "cooperativa del campo"),
        ("Acme (Spain) SL", "acme spain"),
        ("Acme Inc Ltd", "acme"),
        ("U.S. Steel", "us steel"),
        ("Coca-Cola", "coca cola"),
        ("Газпром ООО", "газпром ооо"),
        ("株式会社トヨタ", "株式会社トヨタ"),
        ("𝐀𝐂𝐌𝐄", "acme"),
    ],
)
def test_name_key_examples(name: str, key: str) -> None:
    """Case, accents, punctuation and legal forms are folded away; other scripts stay."""
    assert key == name_key(name)


@pytest.mark.parametrize("name", ["S.A.", "SA", "Ltd", "Company"])
def test_a_name_that_is_only_a_legal_form_keeps_it(name: str) -> None:
    """The last word is never stripped: "S.A." alone has the key "sa", not ""."""
    assert name_key(name) != ""
    assert name_key(name) == name_key(name.lower())


@pytest.mark.parametrize("name", ["", "   ", "***", "-- , .", "_"])
def test_a_name_without_letters_or_digits_has_the_empty_key(name: str) -> None:
    """Nothing to match on: "" (which the lead conversion never looks up)."""
    assert "" == name_key(name)


def test_the_docstring_examples_hold() -> None:
    """The examples in name_key's docstring."""
    assert "distribuciones perez" == name_key("Distribuciones Pérez, S.L.")
    assert name_key("ACME Ltd.") == name_key("acme")


# --------------------------------------------------------------- properties


@given(_PLAIN_NAMES, st.data())
def test_case_does_not_matter(words: list[str], data: st.DataObject) -> None:
    """Any mix of upper and lower case gives the same key."""
    name = " ".join(words)
    flips = data.draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    mixed = "".join(c.upper() if flip else c for c, flip in zip(name, flips, strict=True))
    assert name_key(name) == name_key(mixed)


@given(
    st.lists(
        st.text(alphabet="abcdelmnorstuz" + "".join(ACCENTS.keys()), min_size=2, max_size=8),
        min_size=1,
        max_size=4,
    )
)
def test_accents_do_not_matter(words: list[str]) -> None:
    """A name with accents has the key of the same name without them."""
    name = " ".join(words)
    plain = name.translate(str.maketrans(ACCENTS))
    assert name_key(plain) == name_key(name)


@given(
    _PLAIN_NAMES,
    st.lists(
        st.sampled_from([",", ";", ":", "!", "?", "(", ")", "-", "/", "&", "'", '"']), max_size=3
    ),
)
def test_punctuation_between_words_does_not_matter(words: list[str], marks: list[str]) -> None:
    """Commas, brackets, dashes... between or around the words leave the key alone."""
    separator = "".join(marks) + " "
    assert name_key(" ".join(words)) == name_key(separator + separator.join(words) + separator)


@given(_PLAIN_NAMES, st.sampled_from(WRITTEN_SUFFIXES), st.sampled_from(["", ",", " ,"]))
def test_a_legal_form_after_the_name_is_removed(words: list[str], suffix: str, comma: str) -> None:
    """ "<name>, S.A." and "<name> Ltd." have the key of "<name>"."""
    name = " ".join(words)
    assert name_key(name) == name_key(f"{name}{comma} {suffix}")


@given(_PLAIN_NAMES)
def test_a_plain_name_keeps_all_its_words(words: list[str]) -> None:
    """Without legal forms, the key is the words in order, joined by single spaces."""
    assert " ".join(words) == name_key("  ".join(w.capitalize() for w in words))


@given(st.text())
def test_name_key_is_idempotent(name: str) -> None:
    """A key is its own key: the folding is complete and suffix removal already stopped."""
    key = name_key(name)
    assert key == name_key(key)


@given(st.text())
def test_a_key_is_lower_case_words_separated_by_single_spaces(name: str) -> None:
    """No leading, trailing or double spaces, no punctuation, nothing left to fold."""
    key = name_key(name)
    assert key == " ".join(key.split())
    assert all(c.isalnum() or c == " " for c in key)
    assert key == key.casefold()


@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_the_ascii_fast_path_folds_as_the_full_unicode_fold(name: str) -> None:
    full = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", name).casefold())
    assert matching.fold_text(name) == "".join(c for c in full if not unicodedata.combining(c))
