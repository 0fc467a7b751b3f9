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

__all__ = ["LEGAL_SUFFIXES", "name_key"]

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

#: Multi-word legal forms, as folded word tuples ("s. de r.l." -> s de rl).
_MULTI_WORD: Final = (
    ("sa", "de", "cv"),
    ("s", "de", "rl"),
    ("s", "de", "rl", "de", "cv"),
    ("s", "coop"),  # "S. Coop." (sociedad cooperativa)
)

#: a word: letters and digits of any script (``\w`` without the underscore)
_WORD: Final = re.compile(r"[^\W_]+")


def _fold(text: str) -> str:
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
    folded = _fold(name)
    # join dotted initials first: "s.a." -> "sa", "s. l." -> "sl"
    folded = re.sub(r"\b([a-z])\.\s?(?=[a-z]\b\.?)", r"\1", folded)
    words = _WORD.findall(folded)
    changed = True
    while changed and len(words) > 1:
        changed = False
        for form in sorted(_MULTI_WORD, key=len, reverse=True):
            if len(words) > len(form) and tuple(words[-len(form) :]) == form:
                words = words[: -len(form)]
                changed = True
                break
        else:
            if words[-1] in LEGAL_SUFFIXES:
                words = words[:-1]
                changed = True
    return " ".join(words)
