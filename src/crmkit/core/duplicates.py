"""Finding duplicate contacts and organizations: normalizers, blocking, a calibrated model.

The pipeline, pure and in memory:

1. **Profiles.**  Each record becomes a small :class:`ContactProfile` or
   :class:`OrganizationProfile` of normalized values: names case- and
   accent-folded, e-mail addresses case-folded without ``+tags``, phones in
   E.164, organization names without legal suffixes
   (:func:`~crmkit.core.matching.name_key`).
2. **Blocking.**  Records that share a blocking key (the same e-mail, phone,
   set of name words, tax id, web domain...) become candidate pairs; a key
   shared by more than ``max_block`` records says nothing and is skipped.  The
   work grows with the number of records, not its square.
3. **Comparison.**  Each candidate pair gets a comparison vector: one level
   per field (``"same"``, ``"very similar"``, ``"similar"``, ``"different"``,
   or missing), the fuzzy ones scored with :mod:`rapidfuzz`.
4. **Model.**  An unsupervised Fellegi-Sunter model, fitted with EM on the
   vectors of the candidate pairs, gives each level of each field its
   probability among matches (``m``) and among non-matches (``u``), and the
   share of matches.  A pair's match probability follows by Bayes' rule; the
   default decision (probability >= 0.5) is therefore calibrated on the data
   at hand, not a hand-picked similarity cut-off.  With too few pairs to fit,
   the shipped :data:`DEFAULT_CONTACT_MODEL` / :data:`DEFAULT_ORGANIZATION_MODEL`
   are used (``model.fitted`` says which).

Every :class:`Candidate` carries its probability, its weight of evidence
(log2 of the likelihood ratio) and its :class:`Reason`\\ s: which field agreed
how, and how much that counted.

.. versionadded:: 0.1
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Final, Generic, Literal, TypeVar
from uuid import UUID

import phonenumbers
from attrs import field, frozen
from rapidfuzz.distance import JaroWinkler
from rapidfuzz.fuzz import token_sort_ratio

from crmkit.core.entities import Contact, Organization
from crmkit.core.errors import ValidationError
from crmkit.core.matching import fold_text, name_key

__all__ = [
    "DEFAULT_CONTACT_MODEL",
    "DEFAULT_MAX_BLOCK",
    "DEFAULT_ORGANIZATION_MODEL",
    "DEFAULT_THRESHOLD",
    "FREE_MAIL_DOMAINS",
    "MIN_PAIRS_TO_FIT",
    "Candidate",
    "Comparison",
    "ContactProfile",
    "DuplicateEntity",
    "Matching",
    "Model",
    "OrganizationProfile",
    "Reason",
    "Spec",
    "candidate_pairs",
    "clusters",
    "contact_spec",
    "email_key",
    "find_duplicates",
    "fit_model",
    "organization_spec",
    "phone_key",
    "score_pairs",
]

P = TypeVar("P", "ContactProfile", "OrganizationProfile")

#: What can be deduplicated.
DuplicateEntity = Literal["contact", "organization"]

#: The default decision: a pair is a duplicate when its match probability,
#: under the fitted model, is at least this (the Bayes decision for equal costs).
DEFAULT_THRESHOLD: Final = 0.5
#: A blocking key shared by more records than this is skipped (too common to
#: tell anything, and its pairs would grow with the square of its size).
DEFAULT_MAX_BLOCK: Final = 100
#: Fewer candidate pairs than this and EM is not fitted: the default model is used.
MIN_PAIRS_TO_FIT: Final = 500
#: EM stops after this many iterations, or when no parameter moves by 1e-7.
MAX_EM_ITERATIONS: Final = 200

#: Web-mail domains: an organization's address there says nothing about which
#: organization it is, so they are not organization blocking keys nor evidence.
FREE_MAIL_DOMAINS: Final = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "hotmail.com",
        "hotmail.es",
        "outlook.com",
        "outlook.es",
        "live.com",
        "msn.com",
        "yahoo.com",
        "yahoo.es",
        "icloud.com",
        "me.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "gmx.com",
        "gmx.es",
        "telefonica.net",
    }
)

# ================================================================ normalizers


def email_key(address: str | None) -> str | None:
    """The matching key of an e-mail address: case-folded, without a ``+tag``.

    ``"Ana.Perez+News@ACME.es"`` and ``"ana.perez@acme.es"`` share the key
    ``"ana.perez@acme.es"``.  ``None`` for ``None``, blank text or text
    without ``@``.

    >>> email_key(" Ana+crm@ACME.es ")
    'ana@acme.es'
    """
    if address is None:
        return None
    text = address.strip().casefold()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        return None
    base = local.split("+", 1)[0] or local
    return f"{base}@{domain}"


#: characters people put in phone numbers around the digits
_PHONE_PUNCTUATION: Final = re.compile(r"[\s.\-/()]")


def phone_key(text: str | None, region: str | None = None) -> str | None:
    """The E.164 form of a phone number as written (``None`` if it cannot be read).

    International forms (``+34 612 34 56 78``, ``0034 612-345-678``) are read
    directly; national ones (``612 34 56 78``) with ``phonenumbers`` for
    ``region``.

    >>> phone_key("0034 612-34-56-78")
    '+34612345678'
    >>> phone_key("612 34 56 78", "ES")
    '+34612345678'
    """
    if text is None:
        return None
    compact = _PHONE_PUNCTUATION.sub("", text)
    if "(0)" not in text:  # "+44 (0)20...": the trunk 0 must go, let phonenumbers do it
        digits = compact[1:] if compact.startswith("+") else None
        if digits is None and compact.startswith("00"):
            digits = compact[2:]
        if digits is not None and digits.isdigit() and 8 <= len(digits) <= 15:
            return f"+{digits}"
        if digits is None and region is not None and compact.isdigit():
            national = _national_prefixes(region)
            if national is not None:
                country, trunk = national
                if trunk and compact.startswith(trunk):
                    compact = compact[len(trunk) :]
                if 6 <= len(compact) <= 14:
                    return f"+{country}{compact}"
    return _parsed_phone(text, region)


@lru_cache(maxsize=256)
def _national_prefixes(region: str) -> tuple[int, str | None] | None:
    """The country calling code and trunk prefix of a region (``("ES")`` -> ``(34, None)``)."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region.upper())
    if metadata is None:
        return None
    prefix = metadata.national_prefix
    return int(metadata.country_code or 0), str(prefix) if prefix else None


@lru_cache(maxsize=65536)
def _parsed_phone(text: str, region: str | None) -> str | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def _domain(url_or_address: str) -> str | None:
    """The registrable-looking host of a URL or e-mail address, without ``www.``."""
    text = url_or_address.strip().casefold()
    if "@" in text:
        host = text.rpartition("@")[2]
    else:
        host = text.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    host = host.removeprefix("www.")
    return host or None


# ================================================================== profiles


@lru_cache(maxsize=65536)
def _folded(value: str) -> str:
    return " ".join(fold_text(value).split())


def _text(value: str | None) -> str:
    return _folded(value) if value else ""


@frozen
class ContactProfile:
    """What duplicate detection compares of a contact, normalized.

    Build one with :meth:`of` (a stored :class:`~crmkit.Contact`) or
    :meth:`from_values` (raw text, e.g. a draft or an import row).
    """

    id: UUID
    #: first name, folded (lower case, no accents, single spaces)
    first: str
    #: last name, folded
    last: str
    #: the e-mail address as written (for reasons), and its :func:`email_key`
    email: str | None
    email_key: str | None
    #: phone numbers in E.164
    phones: frozenset[str]

    @classmethod
    def of(cls, contact: Contact) -> ContactProfile:
        """The profile of a stored contact."""
        email = contact.email.value if contact.email is not None else None
        return cls(
            contact.id,
            _text(contact.first_name),
            _text(contact.last_name),
            email,
            email_key(contact.email.match_key) if contact.email is not None else None,
            frozenset(p.e164 for p in contact.phones),
        )

    @classmethod
    def from_values(
        cls,
        id: UUID,
        *,
        first_name: str | None,
        last_name: str | None = None,
        email: str | None = None,
        phones: Iterable[str] = (),
        region: str | None = None,
    ) -> ContactProfile:
        """A profile from raw values; phones in national form are read for ``region``."""
        keys = (phone_key(p, region) for p in phones)
        return cls(
            id,
            _text(first_name),
            _text(last_name),
            email.strip() if email else None,
            email_key(email),
            frozenset(k for k in keys if k is not None),
        )


@frozen
class OrganizationProfile:
    """What duplicate detection compares of an organization, normalized."""

    id: UUID
    #: :func:`~crmkit.core.matching.name_key` of the name (legal suffix dropped)
    name: str
    #: the tax id without spaces, dots or dashes, upper case
    tax_id: str | None
    phones: frozenset[str]
    #: web and e-mail domains, web-mail providers left out
    domains: frozenset[str]

    @classmethod
    def of(cls, organization: Organization) -> OrganizationProfile:
        """The profile of a stored organization."""
        return cls.from_values(
            organization.id,
            name=organization.name,
            tax_id=organization.tax_id,
            phones=(),
            emails=(e.value for e in organization.emails),
            website=organization.website,
            e164=frozenset(p.e164 for p in organization.phones),
        )

    @classmethod
    def from_values(
        cls,
        id: UUID,
        *,
        name: str,
        tax_id: str | None = None,
        phones: Iterable[str] = (),
        emails: Iterable[str] = (),
        website: str | None = None,
        region: str | None = None,
        e164: frozenset[str] = frozenset(),
    ) -> OrganizationProfile:
        """A profile from raw values; phones in national form are read for ``region``."""
        keys = {phone_key(p, region) for p in phones}
        hosts = {_domain(e) for e in emails}
        if website:
            hosts.add(_domain(website))
        tax = re.sub(r"[\s.\-/]", "", tax_id).upper() if tax_id else None
        return cls(
            id,
            name_key(name),
            tax or None,
            e164 | {k for k in keys if k is not None},
            frozenset(h for h in hosts if h is not None and h not in FREE_MAIL_DOMAINS),
        )


# =============================================================== comparisons

#: One level per compared field (``None``: missing on either side).
Vector = tuple[int | None, ...]

#: How many records share each blocking key (a phone held by several records
#: is a switchboard, weaker evidence than a personal number).
KeyCounts = Mapping[str, int]


@frozen
class Comparison(Generic[P]):
    """One field of the comparison vector: its levels, how to reach them, how to say so.

    Attributes:
        field: the name reasons give (``"name"``, ``"email"``...).
        levels: the level labels, from 0 (the values disagree) upwards.
        level: ``(a, b, key_counts) -> level``, or ``None`` when a value is missing.
        explain: ``(a, b, level) -> detail``: what was seen, in words (only
            called for the pairs reported).
    """

    field: str
    levels: tuple[str, ...]
    level: Callable[[P, P, KeyCounts], int | None]
    explain: Callable[[P, P, int], str]


@frozen
class Spec(Generic[P]):
    """How to deduplicate one entity type: its blocking keys and comparisons."""

    entity: DuplicateEntity
    keys: Callable[[P], Iterable[str]]
    comparisons: tuple[Comparison[P], ...]
    default_model: Model
    #: the whole comparison vector at once (a faster equivalent of calling
    #: each comparison's ``level``), if the entity has one
    vector: Callable[[P, P, KeyCounts], Vector] | None = None

    def compare(self, a: P, b: P, counts: KeyCounts) -> Vector:
        """The comparison vector of two profiles."""
        if self.vector is not None:
            return self.vector(a, b, counts)
        return tuple([comparison.level(a, b, counts) for comparison in self.comparisons])


_JW = JaroWinkler.normalized_similarity


def _similarity_level(score: float) -> int:
    if score >= 0.92:
        return 2
    if score >= 0.80:
        return 1
    return 0


def _name_similarity(a: ContactProfile, b: ContactProfile) -> tuple[float, bool]:
    """How alike two people's names are (0-1), and whether best read swapped."""
    if not a.last or not b.last:  # compare whole names
        return _JW(f"{a.first} {a.last}".strip(), f"{b.first} {b.last}".strip()), False
    straight = min(_JW(a.first, b.first), _JW(a.last, b.last))
    crossed = min(_JW(a.first, b.last), _JW(a.last, b.first))
    return max(straight, crossed), crossed > straight


def _person_name(a: ContactProfile, b: ContactProfile, counts: KeyCounts) -> int:
    if a.first == b.first and a.last == b.last:
        return 3
    if a.last and a.first == b.last and a.last == b.first:
        return 3
    return _similarity_level(_name_similarity(a, b)[0])


def _explain_person_name(a: ContactProfile, b: ContactProfile, level: int) -> str:
    if a.first == b.first and a.last == b.last:
        return "same first and last name"
    if a.last and a.first == b.last and a.last == b.first:
        return "same names, first and last swapped"
    score, swapped = _name_similarity(a, b)
    return f"names {score:.0%} alike" + (", first and last swapped" if swapped else "")


def _email(a: ContactProfile, b: ContactProfile, counts: KeyCounts) -> int | None:
    # no "similar" level: addresses are built from names, so two namesakes'
    # addresses look alike ("ana.perez@" and "ana.perez7@") without being one
    if a.email_key is None or b.email_key is None:
        return None
    return 1 if a.email_key == b.email_key else 0


def _explain_email(a: ContactProfile, b: ContactProfile, level: int) -> str:
    if level == 0:
        return "different e-mail addresses"
    if a.email == b.email:
        return "same e-mail address"
    return "same e-mail address up to case or +tag"


def _phone(
    a: ContactProfile | OrganizationProfile,
    b: ContactProfile | OrganizationProfile,
    counts: KeyCounts,
) -> int | None:
    if not a.phones or not b.phones:
        return None
    if a.phones.isdisjoint(b.phones):
        return 0
    common = a.phones & b.phones
    # a number more than two records share is a switchboard: weaker evidence
    return 2 if any(counts.get(f"p:{phone}", 2) <= 2 for phone in common) else 1


def _explain_phone(
    a: ContactProfile | OrganizationProfile, b: ContactProfile | OrganizationProfile, level: int
) -> str:
    return (
        "no phone number in common",
        "a shared number in common (switchboard)",
        "same phone number",
    )[level]


def _contact_vector(a: ContactProfile, b: ContactProfile, counts: KeyCounts) -> Vector:
    """``(name, email, phone)`` levels: the contact comparisons inlined (hot loop)."""
    if (a.first == b.first and a.last == b.last) or (
        a.last and a.first == b.last and a.last == b.first
    ):
        name = 3
    else:
        name = _similarity_level(_name_similarity(a, b)[0])
    if a.email_key is None or b.email_key is None:
        email = None
    else:
        email = 1 if a.email_key == b.email_key else 0
    if not a.phones or not b.phones:
        return name, email, None
    if a.phones.isdisjoint(b.phones):
        return name, email, 0
    return name, email, _phone(a, b, counts)


def _contact_keys(p: ContactProfile) -> list[str]:
    keys = [f"p:{phone}" for phone in p.phones]
    if p.email_key is not None:
        keys.append(f"e:{p.email_key}")
    words = sorted(f"{p.first} {p.last}".split())
    if words:
        keys.append("n:" + " ".join(words))
    return keys


def _organization_name(
    a: OrganizationProfile, b: OrganizationProfile, counts: KeyCounts
) -> int | None:
    if not a.name or not b.name:
        return None
    if a.name == b.name:
        return 3
    return _similarity_level(token_sort_ratio(a.name, b.name) / 100)


def _explain_organization_name(a: OrganizationProfile, b: OrganizationProfile, level: int) -> str:
    if a.name == b.name:
        return "same name (legal form ignored)"
    return f"names {token_sort_ratio(a.name, b.name) / 100:.0%} alike"


def _tax_id(a: OrganizationProfile, b: OrganizationProfile, counts: KeyCounts) -> int | None:
    if a.tax_id is None or b.tax_id is None:
        return None
    return 1 if a.tax_id == b.tax_id else 0


def _explain_tax_id(a: OrganizationProfile, b: OrganizationProfile, level: int) -> str:
    return ("different tax ids", "same tax id")[level]


def _domain_level(a: OrganizationProfile, b: OrganizationProfile, counts: KeyCounts) -> int | None:
    if not a.domains or not b.domains:
        return None
    return 1 if a.domains & b.domains else 0


def _explain_domain(a: OrganizationProfile, b: OrganizationProfile, level: int) -> str:
    return ("different domains", "a web or e-mail domain in common")[level]


def _organization_keys(p: OrganizationProfile) -> list[str]:
    keys = [f"p:{phone}" for phone in p.phones]
    keys.extend(f"d:{domain}" for domain in p.domains)
    if p.tax_id is not None:
        keys.append(f"t:{p.tax_id}")
    if p.name:
        keys.append(f"n:{p.name}")
        words = sorted(p.name.split())
        if len(words) > 1:
            keys.append("w:" + " ".join(words))
    return keys


_NAME_LEVELS: Final = ("different", "similar", "very similar", "same")
_PHONE_LEVELS: Final = ("different", "shared number", "same")

# ===================================================================== model


@frozen
class Model:
    """A Fellegi-Sunter model: per field, each level's probability among matches and non-matches.

    Attributes:
        fields: the compared fields, in vector order.
        m: per field, ``P(level | the pair is a duplicate)``.
        u: per field, ``P(level | the pair is not a duplicate)``.
        prior: the share of duplicates among the candidate pairs.
        fitted: ``True`` when EM fitted it on the data; ``False`` for a default
            model (too few pairs, or EM did not find a match class).
        pairs: how many candidate pairs it was fitted on (0 for a default).
        iterations: EM iterations run.
    """

    fields: tuple[str, ...]
    m: tuple[tuple[float, ...], ...]
    u: tuple[tuple[float, ...], ...]
    prior: float
    fitted: bool = False
    pairs: int = 0
    iterations: int = 0

    def field_weight(self, index: int, level: int) -> float:
        """The weight of evidence (log2 m/u) of ``level`` of field ``index``."""
        return math.log2(self.m[index][level] / self.u[index][level])

    def weight(self, vector: Sequence[int | None]) -> float:
        """The total weight of evidence of a comparison vector, prior odds included."""
        total = math.log2(self.prior / (1 - self.prior))
        for index, level in enumerate(vector):
            if level is not None:
                total += self.field_weight(index, level)
        return total

    def probability(self, vector: Sequence[int | None]) -> float:
        """The probability that a pair with this comparison vector is a duplicate."""
        return _logistic2(self.weight(vector))


def _logistic2(weight: float) -> float:
    if weight > 60:
        return 1.0
    if weight < -60:
        return 0.0
    return float(1 / (1 + 2.0 ** (-weight)))


def fit_model(
    vectors: Mapping[Vector, float],
    start: Model,
    *,
    pairs: int,
    min_pairs: int = MIN_PAIRS_TO_FIT,
    max_iterations: int = MAX_EM_ITERATIONS,
) -> Model:
    """Fit ``m``, ``u`` and the prior by EM on comparison vectors.

    ``vectors`` should describe every pair of records, not only the
    candidates: the candidate pairs' vectors with weight 1, plus a random
    sample of pairs weighted to stand for all the others (what
    :func:`find_duplicates` passes).  Blocking then only saves work; the
    model is the Fellegi-Sunter model of the whole book, so its match
    probabilities are calibrated, and pairs that agree on one thing only (two
    namesakes, two colleagues sharing a switchboard) are weighed against the
    many pairs that agree on nothing.

    Fields are taken as independent given the class (the Fellegi-Sunter
    assumption); a missing level counts for neither class.  EM starts from
    ``start``'s ``m``, the observed level frequencies as ``u`` and a prior of
    half the candidate share; half a pair of pseudo-count per level keeps
    every probability above zero.

    Args:
        vectors: the (weighted) number of pairs with each comparison vector.
        start: the model to start from, and to return when fitting is not
            possible: fewer than ``min_pairs`` candidate pairs, or EM
            converging to a "match" class that holds less than one pair or
            whose best levels are not more likely than among non-matches.
        pairs: how many candidate pairs there are.

    Returns:
        The fitted model (``fitted=True``), or ``start``.
    """
    total = sum(vectors.values())
    if pairs < min_pairs or total <= pairs:
        return start
    sizes = [len(levels) for levels in start.m]
    patterns = list(vectors.items())
    m = [list(levels) for levels in start.m]
    u = _level_frequencies(patterns, sizes)
    prior = pairs / total / 2
    iterations = 0
    for iterations in range(1, max_iterations + 1):  # noqa: B007 - reported on the model
        m_counts = [[0.5] * size for size in sizes]
        u_counts = [[0.5] * size for size in sizes]
        matches = 0.0
        for vector, count in patterns:
            a, b = prior, 1 - prior
            for i, level in enumerate(vector):
                if level is not None:
                    a *= m[i][level]
                    b *= u[i][level]
            share = a / (a + b) if a + b > 0 else 0.0
            matched, unmatched = count * share, count * (1 - share)
            matches += matched
            for i, level in enumerate(vector):
                if level is not None:
                    m_counts[i][level] += matched
                    u_counts[i][level] += unmatched
        new_m = [_normalized(c) for c in m_counts]
        new_u = [_normalized(c) for c in u_counts]
        new_prior = min(max(matches / total, 1e-12), 0.5)
        moved = max(
            abs(math.log(new_prior / prior)),
            *(
                abs(x - y)
                for old, new in zip(m, new_m, strict=True)
                for x, y in zip(old, new, strict=True)
            ),
        )
        m, u, prior = new_m, new_u, new_prior
        if moved < 1e-6:
            break
    # a match class must hold at least one pair, and agree more than the other
    evidence = sum(math.log(mi[-1] / ui[-1]) for mi, ui in zip(m, u, strict=True))
    if prior * total < 1 or evidence <= 0:
        return start
    return Model(
        start.fields,
        tuple(tuple(levels) for levels in m),
        tuple(tuple(levels) for levels in u),
        prior,
        fitted=True,
        pairs=pairs,
        iterations=iterations,
    )


def _normalized(counts: list[float]) -> list[float]:
    total = sum(counts)
    return [c / total for c in counts]


def _level_frequencies(patterns: list[tuple[Vector, float]], sizes: list[int]) -> list[list[float]]:
    counts = [[0.5] * size for size in sizes]
    for vector, count in patterns:
        for i, level in enumerate(vector):
            if level is not None:
                counts[i][level] += count
    return [_normalized(c) for c in counts]


# ================================================================ matching


@frozen
class Reason:
    """How one field of a candidate pair compared.

    Attributes:
        field: ``"name"``, ``"email"``, ``"phone"``, ``"organization"``,
            ``"tax_id"``, ``"domain"``.
        level: the level label (``"same"``, ``"similar"``, ``"different"``,
            ``"missing"``...).
        detail: what was seen, in words (``"same names, first and last swapped"``).
        weight: its weight of evidence, log2(m/u): positive for a duplicate,
            negative against, 0 when missing.
    """

    field: str
    level: str
    detail: str
    weight: float


@frozen
class Candidate:
    """A pair of records that may be the same person or organization.

    Attributes:
        left, right: the records' ids (``left`` the smaller).
        probability: the model's probability that they are duplicates.
        weight: the total weight of evidence in bits (log2 odds).
        reasons: one :class:`Reason` per compared field.
    """

    left: UUID
    right: UUID
    probability: float
    weight: float
    reasons: tuple[Reason, ...]

    def reason(self, field: str) -> Reason:
        """The reason for ``field``.

        Raises:
            KeyError: no such field.
        """
        for reason in self.reasons:
            if reason.field == field:
                return reason
        raise KeyError(field)


@frozen
class Matching:
    """What a duplicate search found and how.

    Attributes:
        entity: ``"contact"`` or ``"organization"``.
        candidates: the pairs at or above ``threshold``, most likely first.
        model: the model that scored them (``model.fitted`` says whether EM
            fitted it on these records or the default was used).
        threshold: the match probability a pair needed.
        records: how many records were searched.
        pairs_compared: how many candidate pairs blocking produced.
        skipped_keys: blocking keys skipped for being shared by more than
            ``max_block`` records.
    """

    entity: DuplicateEntity
    candidates: tuple[Candidate, ...]
    model: Model
    threshold: float
    records: int
    pairs_compared: int
    skipped_keys: int = field(default=0)

    def pairs(self) -> set[frozenset[UUID]]:
        """The candidates as unordered id pairs."""
        return {frozenset((c.left, c.right)) for c in self.candidates}

    def clusters(self) -> list[frozenset[UUID]]:
        """The candidates grouped into sets of records linked by a chain of pairs."""
        return clusters(self.candidates)


def candidate_pairs(
    profiles: Sequence[P], keys: Callable[[P], Iterable[str]], *, max_block: int
) -> tuple[set[tuple[int, int]], dict[str, int], int]:
    """The index pairs sharing a blocking key, each key's record count, the keys skipped.

    Returns:
        ``({(i, j), ...}, counts, skipped)``: ``i < j`` index ``profiles``;
        ``counts`` maps each key to how many records have it; ``skipped``
        counts the keys shared by more than ``max_block`` records.
    """
    codes, counts, skipped = _blocked(profiles, keys, max_block)
    n = len(profiles)
    return {divmod(code, n) for code in codes}, counts, skipped


def _blocked(
    profiles: Sequence[P], keys: Callable[[P], Iterable[str]], max_block: int
) -> tuple[set[int], dict[str, int], int]:
    """:func:`candidate_pairs` with each pair ``(i, j)`` coded as ``i * n + j`` (cheap to hash)."""
    blocks: defaultdict[str, list[int]] = defaultdict(list)
    for index, profile in enumerate(profiles):
        for key in keys(profile):
            blocks[key].append(index)
    codes: set[int] = set()
    n = len(profiles)
    counts: dict[str, int] = {}
    skipped = 0
    for key, members in blocks.items():
        size = len(members)
        if size < 2:
            continue
        counts[key] = size
        if size > max_block:
            skipped += 1
            continue
        if size == 2:  # indexes were appended in order: members[0] < members[1]
            codes.add(members[0] * n + members[1])
            continue
        for x in range(size - 1):
            base = members[x] * n
            codes.update([base + j for j in members[x + 1 :]])
    return codes, counts, skipped


def score_pairs(
    spec: Spec[P],
    pairs: Iterable[tuple[P, P]],
    model: Model,
    *,
    key_counts: KeyCounts | None = None,
    threshold: float = 0.0,
) -> list[Candidate]:
    """Score pairs with ``model``; those at or above ``threshold``, most likely first.

    ``key_counts`` (how many records share each blocking key) tells personal
    phone numbers from switchboards; without it every shared number counts as
    personal.
    """
    _check_threshold(threshold)
    counts = key_counts or {}
    compared = [(a, b, spec.compare(a, b, counts)) for a, b in pairs]
    return _candidates(spec, compared, model, threshold)


def _candidates(
    spec: Spec[P], compared: Iterable[tuple[P, P, Vector]], model: Model, threshold: float
) -> list[Candidate]:
    scores: dict[Vector, tuple[float, float] | None] = {}
    found: list[Candidate] = []
    for a, b, vector in compared:
        if vector in scores:
            score = scores[vector]
        else:
            weight = model.weight(vector)
            probability = _logistic2(weight)
            score = scores[vector] = (weight, probability) if probability >= threshold else None
        if score is None:
            continue
        weight, probability = score
        reasons = tuple(
            Reason(comparison.field, "missing", "not known for both", 0.0)
            if level is None
            else Reason(
                comparison.field,
                comparison.levels[level],
                comparison.explain(a, b, level),
                model.field_weight(i, level),
            )
            for i, (comparison, level) in enumerate(zip(spec.comparisons, vector, strict=True))
        )
        left, right = (a.id, b.id) if a.id <= b.id else (b.id, a.id)
        found.append(Candidate(left, right, probability, weight, reasons))
    found.sort(key=lambda c: (-c.weight, c.left, c.right))
    return found


def find_duplicates(
    spec: Spec[P],
    profiles: Sequence[P],
    *,
    model: Model | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    max_block: int = DEFAULT_MAX_BLOCK,
) -> Matching:
    """Find the likely duplicates among ``profiles``.

    Args:
        spec: :func:`contact_spec` or :func:`organization_spec`.
        profiles: the records, as profiles.
        model: score with this model instead of fitting one by EM on the
            candidate pairs (fitting falls back to ``spec.default_model``).
        threshold: the match probability a pair needs to be reported
            (default 0.5; 0 reports every candidate pair).
        max_block: skip blocking keys shared by more records than this.

    Raises:
        ValidationError: ``threshold`` not between 0 and 1, ``max_block`` below 2.
    """
    _check_threshold(threshold)
    if isinstance(max_block, bool) or not isinstance(max_block, int) or max_block < 2:
        raise ValidationError(
            "max_block", "must be an integer of at least 2", code="range", value=max_block
        )
    codes, counts, skipped = _blocked(profiles, spec.keys, max_block)
    compare = spec.vector or spec.compare
    n = len(profiles)
    compared: list[tuple[P, P, Vector]] = []
    append = compared.append
    for code in codes:
        i, j = divmod(code, n)
        a, b = profiles[i], profiles[j]
        append((a, b, compare(a, b, counts)))
    if model is None:
        model = fit_model(
            _population(spec, profiles, compared, counts),
            spec.default_model,
            pairs=len(compared),
        )
    return Matching(
        spec.entity,
        tuple(_candidates(spec, compared, model, threshold)),
        model,
        threshold,
        len(profiles),
        len(compared),
        skipped,
    )


#: how many random pairs stand for the pairs blocking did not compare
RANDOM_PAIRS: Final = 20_000


def _population(
    spec: Spec[P],
    profiles: Sequence[P],
    compared: Sequence[tuple[P, P, Vector]],
    counts: KeyCounts,
) -> dict[Vector, float]:
    """Vector counts for every pair of the book: the candidates, plus a seeded
    random sample of pairs weighted to stand for all the pairs not compared."""
    vectors: dict[Vector, float] = dict(Counter(vector for _, _, vector in compared))
    n = len(profiles)
    others = n * (n - 1) // 2 - len(compared)
    if others <= 0:
        return vectors
    rng = random.Random(n)  # deterministic: the same book gives the same model
    sample = min(RANDOM_PAIRS, others)
    weight = others / sample
    for _ in range(sample):
        i, j = rng.randrange(n), rng.randrange(n - 1)
        j += j >= i
        vector = spec.compare(profiles[i], profiles[j], counts)
        vectors[vector] = vectors.get(vector, 0.0) + weight
    return vectors


def _check_threshold(threshold: object) -> None:
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not 0 <= threshold <= 1
    ):
        raise ValidationError(
            "threshold", "must be a probability between 0 and 1", code="range", value=threshold
        )


def clusters(candidates: Iterable[Candidate]) -> list[frozenset[UUID]]:
    """Group pairs into clusters (connected components), largest first."""
    parent: dict[UUID, UUID] = {}

    def root(x: UUID) -> UUID:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for candidate in candidates:
        a, b = root(candidate.left), root(candidate.right)
        if a != b:
            parent[max(a, b)] = min(a, b)
    groups: defaultdict[UUID, set[UUID]] = defaultdict(set)
    for member in list(parent):
        groups[root(member)].add(member)
    return sorted((frozenset(g) for g in groups.values()), key=lambda g: (-len(g), min(g)))


# ============================================================ default models

#: The contact model used when EM cannot be fitted (fewer than
#: :data:`MIN_PAIRS_TO_FIT` candidate pairs): the parameters EM found on the
#: book of :func:`crmkit.testing.duplicates.planted_contacts` (100,000
#: contacts, 5% planted duplicates, seed 2026), to three significant digits.
#: Its prior is per pair of the whole book, and its ``u`` of an exact
#: agreement is about the chance two random records agree; both shrink as a
#: book grows, so their ratio, which decides, carries over to other sizes.
DEFAULT_CONTACT_MODEL: Final = Model(
    ("name", "email", "phone"),
    m=((0.0001, 0.0288, 0.175, 0.796), (0.221, 0.779), (0.0002, 0.0085, 0.991)),
    u=((0.999, 5.5e-4, 1e-10, 4.85e-5), (1.0, 1.25e-10), (1.0, 3.34e-7, 2.91e-7)),
    prior=1.06e-6,
)

#: The organization model used when EM cannot be fitted.  No generated book
#: of organizations exists yet, so it is set by hand on the contact model's
#: scale (see docs/decisions.md): a shared tax id or personal phone is near
#: proof, the same name (legal form ignored) strong evidence on its own.
DEFAULT_ORGANIZATION_MODEL: Final = Model(
    ("name", "tax_id", "phone", "domain"),
    m=((0.01, 0.05, 0.24, 0.70), (0.05, 0.95), (0.1, 0.05, 0.85), (0.2, 0.8)),
    u=((0.99999, 5e-6, 1e-7, 2e-7), (1.0, 1e-7), (1.0, 1e-6, 1e-7), (1.0, 1e-5)),
    prior=1e-6,
)


def contact_spec() -> Spec[ContactProfile]:
    """How contacts are deduplicated: by name, e-mail and phone."""
    return Spec(
        "contact",
        _contact_keys,
        (
            Comparison("name", _NAME_LEVELS, _person_name, _explain_person_name),
            Comparison("email", ("different", "same"), _email, _explain_email),
            Comparison("phone", _PHONE_LEVELS, _phone, _explain_phone),
        ),
        DEFAULT_CONTACT_MODEL,
        _contact_vector,
    )


def organization_spec() -> Spec[OrganizationProfile]:
    """How organizations are deduplicated: by name, tax id, phone and domain."""
    return Spec(
        "organization",
        _organization_keys,
        (
            Comparison("name", _NAME_LEVELS, _organization_name, _explain_organization_name),
            Comparison("tax_id", ("different", "same"), _tax_id, _explain_tax_id),
            Comparison("phone", _PHONE_LEVELS, _phone, _explain_phone),
            Comparison("domain", ("different", "same"), _domain_level, _explain_domain),
        ),
        DEFAULT_ORGANIZATION_MODEL,
    )
