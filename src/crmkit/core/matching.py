"""Normalized keys that find the same organization written differently.

``"ACME, S.A."``, ``"Acme SA"`` and ``"acmé s.a"`` all have the name key
``"acme"``: case and accents are folded, punctuation dropped, and company
legal-form suffixes (S.A., S.L., SRL, Ltd, GmbH...) removed.  Organizations
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
)

_WORD: Final = re.compile(r"[a-z0-9]+")


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


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
