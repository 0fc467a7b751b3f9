"""Normalized keys that find the same organization written differently.

``"ACME, S.A."``, ``"Acme SA"`` and ``"acmé s.a"`` all have the name key
``"acme"``: case and accents are folded, punctuation dropped, and company
legal-form suffixes (S.A., S.L., SRL, Ltd, GmbH...) removed.  Letters of
every script count (``"Газпром"`` keeps its key), so only a name without any
letter or digit has the empty key, which matches nothing.  Organizations
store their key so a match is one indexed lookup.

.. versionadded:: 0.1
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

__all__ = ["LEGAL_SUFFIXES", "fold_text", "name_key"]

#: Legal-form suffixes dropped from the end of an organization name (already
#: folded and without dots): Spanish, Latin American, English, German, French,
#: Italian, Dutch and Portuguese forms.
LEGAL_SUFFIXES: Final = frozenset(
    {
        "sa",
        "sau",
        "sl",
        "slu",
        "sll",
        "slne",
        "srl",
        "sas",
        "sac",
        "saa",
        "sapi",
        "sadecv",
        "sderl",
        "scoop",
        "sc",
        "spa",
        "sarl",
        "ltd",
        "ltda",
        "limited",
        "llc",
        "llp",
        "plc",
        "inc",
        "corp",
        "corporation",
        "co",
        "company",
        "gmbh",
        "ag",
        "kg",
        "bv",
        "nv",
        "cb",
    }
)

#: Multi-word legal forms, as folded word tuples ("s. de r.l." -> s de rl),
#: longest first so "s de rl de cv" is dropped whole.
_MULTI_WORD: Final = tuple(
    sorted(
        (
            ("sa", "de", "cv"),
            ("s", "de", "rl"),
            ("s", "de", "rl", "de", "cv"),
            ("s", "coop"),  # "S. Coop." (sociedad cooperativa)
        ),
        key=len,
        reverse=True,
    )
)
#: the last word of every multi-word form: only these can end one
_MULTI_WORD_ENDS: Final = frozenset(form[-1] for form in _MULTI_WORD)

#: dotted initials to join: "s.a." -> "sa", "s. l." -> "sl"
_INITIALS: Final = re.compile(r"\b([a-z])\.\s?(?=[a-z]\b\.?)")

#: a word: letters and digits of any script (``\w`` without the underscore)
_WORD: Final = re.compile(r"[^\W_]+")


def fold_text(text: str) -> str:
    """``text`` lower-cased (case-folded) and without accents: ``"Pérez"`` -> ``"perez"``.

    .. versionadded:: 0.1
    """
    if text.isascii():  # the common case: NFKD is the identity, no marks to drop
        return text.lower()
    # compatibility caseless matching (Unicode 3.13): decompose, case-fold,
    # decompose again; then drop the accents (combining marks)
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    return "".join(c for c in folded if not unicodedata.combining(c))


def name_key(name: str) -> str:
    """The matching key of an organization name (``""`` if nothing is left).

    >>> name_key("Distribuciones Pérez, S.L.")
    'distribuciones perez'
    >>> name_key("ACME Ltd.") == name_key("acme")
    True
    """
    folded = fold_text(name)
    if "." in folded:  # join dotted initials first
        folded = _INITIALS.sub(r"\1", folded)
    words = _WORD.findall(folded)
    while len(words) > 1:
        last = words[-1]
        if last in _MULTI_WORD_ENDS and _drop_multi_word(words):
            continue
        if last not in LEGAL_SUFFIXES:
            break
        del words[-1]
    return " ".join(words)


def _drop_multi_word(words: list[str]) -> bool:
    """Drop a multi-word legal form ending ``words`` (in place); whether one was."""
    for form in _MULTI_WORD:
        if len(words) > len(form) and tuple(words[-len(form) :]) == form:
            del words[-len(form) :]
            return True
    return False
