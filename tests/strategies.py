"""Hypothesis strategies for every core type, built through the public constructors.

Every strategy here yields *valid* values: the property tests use them as the
starting point for round trips and, mutated, as malformed input.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from typing import Any, Final, TypeVar
from uuid import UUID

import phonenumbers
from hypothesis import strategies as st

from crmkit.core.contact_points import Address, AddressKind, EmailAddress, PhoneNumber, is_country
from crmkit.core.entities import (
    MASTER_TYPES,
    Channel,
    Contact,
    ContactRole,
    Entity,
    Lifecycle,
    Market,
    Master,
    MasterSeed,
    Organization,
    OrganizationKind,
    OrganizationStatus,
    Position,
    Role,
    Source,
    User,
    Zone,
)
from crmkit.core.errors import ValidationError
from crmkit.core.ids import (
    MarketId,
    OrganizationId,
    PositionId,
    SourceId,
    UserId,
    ZoneId,
)
from crmkit.core.money import MAX_MINOR_UNITS, Money, currency_exponent

__all__ = [
    "CURRENCIES",
    "CURRENCIES_BY_EXPONENT",
    "ENTITY_TYPES",
    "MASTER_CLASSES",
    "SAMPLES",
    "addresses",
    "aimed_garbage",
    "any_garbage",
    "aware_datetimes",
    "contacts",
    "currencies",
    "email_addresses",
    "emails",
    "entities",
    "entity_of",
    "garbage",
    "keys",
    "markets",
    "master_seeds",
    "masters",
    "money",
    "names_field",
    "optional",
    "organizations",
    "phone_numbers",
    "phone_texts",
    "positions",
    "samples",
    "sources",
    "starting_points",
    "tags",
    "texts",
    "users",
    "valid_or_rejected_at",
    "zones",
]

T = TypeVar("T")

#: Currencies with 0, 2 and 3 minor digits (checked against Babel at import).
CURRENCIES_BY_EXPONENT: Final[dict[int, tuple[str, ...]]] = {
    0: ("JPY", "CLP", "KRW", "ISK", "VND"),
    2: ("EUR", "USD", "GBP", "MXN", "CHF"),
    3: ("BHD", "KWD", "JOD", "OMR", "TND"),
}
for _exponent, _codes in CURRENCIES_BY_EXPONENT.items():
    for _code in _codes:
        assert currency_exponent(_code) == _exponent, _code

CURRENCIES: Final = tuple(c for codes in CURRENCIES_BY_EXPONENT.values() for c in codes)

currencies: st.SearchStrategy[str] = st.sampled_from(CURRENCIES)


def money(
    currency: str | st.SearchStrategy[str] | None = None, *, max_units: int = MAX_MINOR_UNITS
) -> st.SearchStrategy[Money]:
    """Any valid amount (up to ``max_units`` minor units either way) in ``currency``."""
    if currency is None:
        codes = currencies
    elif isinstance(currency, str):
        codes = st.just(currency)
    else:
        codes = currency
    units = st.one_of(
        st.integers(-max_units, max_units),
        st.integers(-1000, 1000),
        st.sampled_from([0, 1, -1, max_units, -max_units]),
    )
    return st.builds(Money.from_minor_units, units, codes)


# ------------------------------------------------------------------- text

#: Printable text: no surrogates, no control characters (which are refused).
_CHARS: Final = st.characters(exclude_categories=("Cs", "Cc"))


def texts(*, min_size: int = 1, max_size: int = 40) -> st.SearchStrategy[str]:
    """Non-blank text that survives ``strip()`` (the entities strip text)."""
    return (
        st.text(_CHARS, min_size=min_size, max_size=max_size)
        .map(str.strip)
        .filter(lambda s: len(s) >= min_size)
    )


def optional(strategy: st.SearchStrategy[T]) -> st.SearchStrategy[T | None]:
    """``None`` or a value of ``strategy``."""
    return st.none() | strategy


tags: st.SearchStrategy[str] = texts(max_size=64)

_KEY_HEAD: Final = "abcdefghijklmnopqrstuvwxyz0123456789"
#: master keys: ``[a-z0-9][a-z0-9_-]{0,63}``
keys: st.SearchStrategy[str] = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from(_KEY_HEAD),
    st.text(_KEY_HEAD + "_-", max_size=20),
)

# ---------------------------------------------------------------- datetimes

#: Fixed offsets from -12:00 to +14:00 in quarter hours, UTC included.
_offsets: st.SearchStrategy[timezone] = st.one_of(
    st.just(UTC),
    st.integers(-12 * 4, 14 * 4).map(lambda q: timezone(timedelta(minutes=15 * q))),
)


def aware_datetimes() -> st.SearchStrategy[datetime]:
    """Timezone-aware datetimes (UTC and other fixed offsets), 1970 to 2200."""
    return st.datetimes(
        min_value=datetime(1970, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=_offsets,
    )


# ---------------------------------------------------------- contact points

_LOCAL_CHARS: Final = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-"
_DOMAINS: Final = (
    "acme.es",
    "example.com",
    "ventas.acme-iberica.com",
    "correo.gob.es",
    "mail.co.uk",
    "ACME.ES",
    "xn--espaa-rta.es",
    "españa.es",
)


@st.composite
def emails(draw: st.DrawFn) -> str:
    """E-mail text that is valid (local part with dots, optional non-ASCII letter)."""
    atoms = draw(st.lists(st.text(_LOCAL_CHARS, min_size=1, max_size=10), min_size=1, max_size=3))
    local = ".".join(atoms)
    if draw(st.booleans()):
        local += draw(st.sampled_from(["é", "ñ", "ü"]))
    return f"{local}@{draw(st.sampled_from(_DOMAINS))}"


email_addresses: st.SearchStrategy[EmailAddress] = emails().map(EmailAddress)


_PHONE_TYPES: Final = (
    phonenumbers.PhoneNumberType.FIXED_LINE,
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    phonenumbers.PhoneNumberType.TOLL_FREE,
    phonenumbers.PhoneNumberType.VOIP,
    phonenumbers.PhoneNumberType.PERSONAL_NUMBER,
    phonenumbers.PhoneNumberType.UAN,
)


@cache
def _example_numbers() -> tuple[tuple[str, str, str], ...]:
    """``(region, e164, national)`` for the example numbers of every region and type."""
    found: dict[str, tuple[str, str, str]] = {}
    for region in sorted(r for r in phonenumbers.SUPPORTED_REGIONS if is_country(r)):
        for kind in _PHONE_TYPES:
            number = phonenumbers.example_number_for_type(region, kind)
            if number is None or not phonenumbers.is_valid_number(number):
                continue
            e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
            found.setdefault(e164, (str(region), str(e164), str(national)))
    return tuple(found.values())


#: Spanish mobiles (6 and 8 digits): every one is in the numbering plan.
_spanish_mobiles: st.SearchStrategy[tuple[str, str, str]] = st.integers(0, 10**8 - 1).map(
    lambda n: ("ES", f"+346{n:08d}", f"6{n:08d}")
)


def phone_texts() -> st.SearchStrategy[tuple[str, str, str]]:
    """``(region, e164, national text)`` of valid numbers from many regions."""
    return st.sampled_from(_example_numbers()) | _spanish_mobiles


phone_numbers: st.SearchStrategy[PhoneNumber] = phone_texts().map(lambda t: PhoneNumber(t[1]))

_COUNTRIES: Final = tuple(
    sorted(c for c in ("ES", "PT", "FR", "DE", "GB", "US", "MX", "AR", "CL", "JP") if is_country(c))
)

addresses: st.SearchStrategy[Address] = st.builds(
    Address,
    street=optional(texts(max_size=60)),
    city=optional(texts(max_size=40)),
    region=optional(texts(max_size=40)),
    postal_code=optional(texts(max_size=10)),
    country=optional(st.sampled_from(_COUNTRIES)),
    kind=st.sampled_from(AddressKind),
)

# -------------------------------------------------------------- entities

_urls: st.SearchStrategy[str] = st.builds(
    "{}://{}/{}".format, st.sampled_from(["http", "https"]), st.sampled_from(_DOMAINS[:4]), keys
)


def _base() -> dict[str, st.SearchStrategy[Any]]:
    return {
        "id": st.uuids(),
        "version": st.integers(1, 10**9),
        "created_at": aware_datetimes(),
        "updated_at": aware_datetimes(),
        "external_ref": optional(texts(max_size=30)),
        "archived": st.booleans(),
    }


def _master(cls: type[Master]) -> st.SearchStrategy[Any]:
    return st.builds(
        cls,
        **_base(),
        key=keys,
        name=texts(max_size=60),
        name_es=optional(texts(max_size=60)),
        description=optional(texts(max_size=100)),
    )


sources: st.SearchStrategy[Source] = _master(Source)
markets: st.SearchStrategy[Market] = _master(Market)
positions: st.SearchStrategy[Position] = _master(Position)
zones: st.SearchStrategy[Zone] = _master(Zone)

MASTER_CLASSES: Final[tuple[type[Master], ...]] = (Source, Market, Position, Zone)

masters: st.SearchStrategy[Master] = st.one_of(sources, markets, positions, zones)

users: st.SearchStrategy[User] = st.builds(
    User,
    **_base(),
    name=texts(max_size=60),
    email=optional(email_addresses),
    role=st.sampled_from(Role),
)

organizations: st.SearchStrategy[Organization] = st.builds(
    Organization,
    **_base(),
    name=texts(max_size=60),
    legal_name=optional(texts(max_size=60)),
    kinds=st.frozensets(st.sampled_from(OrganizationKind)),
    status=st.sampled_from(OrganizationStatus),
    lifecycle=st.sampled_from(Lifecycle),
    tax_id=optional(texts(max_size=16)),
    addresses=st.lists(addresses, max_size=2).map(tuple),
    phones=st.lists(phone_numbers, max_size=2).map(tuple),
    emails=st.lists(email_addresses, max_size=2).map(tuple),
    website=optional(_urls),
    market_id=optional(st.uuids()),
    source_id=optional(st.uuids()),
    zone_id=optional(st.uuids()),
    owner_id=optional(st.uuids()),
    parent_id=optional(st.uuids()),
    tags=st.lists(tags, max_size=3).map(tuple),
    notes=optional(texts(max_size=200)),
)

contacts: st.SearchStrategy[Contact] = st.builds(
    Contact,
    **_base(),
    first_name=texts(max_size=40),
    last_name=optional(texts(max_size=40)),
    email=optional(email_addresses),
    phones=st.lists(phone_numbers, max_size=2).map(tuple),
    organization_id=optional(st.uuids()),
    position_id=optional(st.uuids()),
    department=optional(texts(max_size=40)),
    role=optional(st.sampled_from(ContactRole)),
    preferred_channel=optional(st.sampled_from(Channel)),
    do_not_contact=st.booleans(),
    language=optional(st.sampled_from(["es", "en", "es-ES", "pt-BR"])),
    social_profiles=st.lists(_urls, max_size=2).map(tuple),
    owner_id=optional(st.uuids()),
    tags=st.lists(tags, max_size=3).map(tuple),
    notes=optional(texts(max_size=200)),
)

master_seeds: st.SearchStrategy[MasterSeed] = st.builds(
    MasterSeed,
    kind=st.sampled_from(tuple(MASTER_TYPES)),
    key=keys,
    name=texts(max_size=60),
    name_es=optional(texts(max_size=60)),
    description=optional(texts(max_size=100)),
)

#: Every concrete entity type.
ENTITY_TYPES: Final[tuple[type[Entity], ...]] = (
    Organization,
    Contact,
    Source,
    Market,
    Position,
    Zone,
    User,
)

_BY_TYPE: Final[dict[type[Entity], st.SearchStrategy[Any]]] = {
    Organization: organizations,
    Contact: contacts,
    Source: sources,
    Market: markets,
    Position: positions,
    Zone: zones,
    User: users,
}


def entity_of(cls: type[Entity]) -> st.SearchStrategy[Any]:
    """Valid entities of type ``cls``."""
    return _BY_TYPE[cls]


entities: st.SearchStrategy[Entity] = st.one_of(*_BY_TYPE.values())


# ------------------------------------------------------- hand-made samples
# Fixed valid records, every optional field filled in or left empty: cheap starting
# points for the 1,000-example malformed-input tests (drawing a whole random
# entity per example would dominate their run time).

_T1 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
_T2 = datetime(2026, 3, 1, 18, 30, 15, 250, tzinfo=timezone(timedelta(hours=-3, minutes=-30)))
_IDS = [UUID(int=(7 << 76) | (0b10 << 62) | n) for n in range(1, 12)]


def _system(n: int, *, full: bool) -> dict[str, Any]:
    if not full:
        return {"id": _IDS[n], "created_at": _T1, "updated_at": _T1}
    return {
        "id": _IDS[n],
        "version": 7,
        "created_at": _T1,
        "updated_at": _T2,
        "external_ref": "ERP-0042",
        "archived": True,
    }


def _master_samples(cls: type[Master]) -> tuple[Any, ...]:
    return (
        cls(**_system(0, full=False), key="web", name="Web"),
        cls(
            **_system(1, full=True),
            key="feria_2026-madrid",
            name="Trade fair",
            name_es="Feria comercial",
            description="Stands at IFEMA, Madrid.",
        ),
    )


SAMPLES: Final[dict[type[Any], tuple[Any, ...]]] = {
    Organization: (
        Organization(**_system(2, full=False), name="Acme"),
        Organization(
            **_system(3, full=True),
            name="Acme Ibérica",
            legal_name="Acme Ibérica S.A.",
            kinds=frozenset({OrganizationKind.CUSTOMER, OrganizationKind.PARTNER}),
            status=OrganizationStatus.INACTIVE,
            lifecycle=Lifecycle.CUSTOMER,
            tax_id="A12345678",
            addresses=(
                Address(
                    street="Calle Mayor 1",
                    city="Madrid",
                    region="Madrid",
                    postal_code="28013",
                    country="ES",
                    kind=AddressKind.BILLING,
                ),
                Address(city="Lisboa", country="PT"),
            ),
            phones=(PhoneNumber("+34911234567"), PhoneNumber("+351212345678")),
            emails=(EmailAddress("ventas@acme.es"), EmailAddress("info@acme.pt")),
            website="https://acme.es",
            market_id=MarketId(_IDS[4]),
            source_id=SourceId(_IDS[5]),
            zone_id=ZoneId(_IDS[6]),
            owner_id=UserId(_IDS[7]),
            parent_id=OrganizationId(_IDS[8]),
            tags=("vip", "erp"),
            notes="Prefers calls in the morning.",
        ),
    ),
    Contact: (
        Contact(**_system(2, full=False), first_name="Ana"),
        Contact(
            **_system(3, full=True),
            first_name="Ana",
            last_name="Pérez",
            email=EmailAddress("ana.perez@acme.es"),
            phones=(PhoneNumber("+34612345678"),),
            organization_id=OrganizationId(_IDS[4]),
            position_id=PositionId(_IDS[5]),
            department="Compras",
            role=ContactRole.DECISION_MAKER,
            preferred_channel=Channel.WHATSAPP,
            do_not_contact=True,
            language="es-ES",
            social_profiles=("https://www.linkedin.com/in/ana", "https://x.com/ana"),
            owner_id=UserId(_IDS[6]),
            tags=("compras",),
            notes="Met at the trade fair.",
        ),
    ),
    User: (
        User(**_system(2, full=False), name="Ana"),
        User(
            **_system(3, full=True),
            name="Luis",
            email=EmailAddress("luis@acme.es"),
            role=Role.MANAGER,
        ),
    ),
    Source: _master_samples(Source),
    Market: _master_samples(Market),
    Position: _master_samples(Position),
    Zone: _master_samples(Zone),
    MasterSeed: (
        MasterSeed(kind="source", key="web", name="Web"),
        MasterSeed(kind="zone", key="norte", name="North", name_es="Norte", description="N"),
    ),
    Address: (Address(), Address(street="Rua 1", city="Porto", country="PT")),
}


def samples(cls: type[T]) -> st.SearchStrategy[T]:
    """One of the hand-made valid values of ``cls``."""
    return st.sampled_from(SAMPLES[cls])


# ----------------------------------------------------------- malformed input
# Garbage for the "every failure is a ValidationError naming the field" tests.

_CONTROL_TEXT: Final = st.builds(
    "{}{}{}".format, texts(max_size=5), st.sampled_from(["\x00", "\x01", "\x1b", "\x07"]), texts()
)
_HUGE_TEXT: Final = st.sampled_from([2_001, 10_001, 100_000, 1_000_000]).map(lambda n: "x" * n)
_NAIVE: Final = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1))

#: Values of the wrong type or shape for almost any field.
garbage: st.SearchStrategy[object] = st.one_of(
    st.integers(),
    st.integers(min_value=2**63),
    st.floats(allow_nan=True, allow_infinity=True),
    st.none(),
    st.booleans(),
    st.binary(max_size=8),
    st.text(max_size=8),  # any code point, surrogates included
    _CONTROL_TEXT,
    _HUGE_TEXT,
    st.lists(st.integers() | st.none() | st.text(max_size=3), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers() | st.none(), max_size=3),
    st.lists(st.lists(st.integers(), max_size=2), min_size=1, max_size=2),
    st.sampled_from(["NaN", "-Infinity", "sNaN", "1e999999", "", " ", "\t"]),
    _NAIVE,
    _NAIVE.map(datetime.isoformat),
    st.sampled_from(["not-a-uuid", "0" * 31, "{}", "12345678-1234-1234-1234-1234567890123"]),
    st.just(object()),
    st.sets(st.integers(), max_size=2),
)

#: Per field name, garbage aimed at what the field holds.
_AIMED: Final[dict[str, st.SearchStrategy[object]]] = {
    "uuid": st.one_of(
        st.sampled_from(["not-a-uuid", "", "g" * 32, "01234567-89ab-cdef-0123-456789abcdeX"]),
        st.uuids().map(lambda u: str(u)[:-1]),
        st.uuids().map(lambda u: u.bytes),
        st.integers(),
    ),
    "datetime": st.one_of(
        _NAIVE,
        _NAIVE.map(datetime.isoformat),
        st.sampled_from(
            [
                "2026-13-01T00:00:00+00:00",
                "yesterday",
                "2026-01-01",
                datetime.min.replace(tzinfo=timezone(timedelta(hours=14))),
                datetime.max.replace(tzinfo=timezone(timedelta(hours=-14))),
                "0001-01-01T00:00:00+14:00",
                "9999-12-31T23:59:59-14:00",
            ]
        ),
        st.integers(),
        st.floats(),
    ),
    "text": st.one_of(_CONTROL_TEXT, _HUGE_TEXT, st.text(max_size=8), st.integers(), st.binary()),
}


_AIMED_BY_KEY: Final[dict[str, st.SearchStrategy[object]]] = {
    "email": st.sampled_from(
        ["a@", "@acme.es", "a@b", "a..b@acme.es", "a@-acme.es", "a b@acme.es", "a@acme.es\x00"]
    ),
    "phone": st.sampled_from(
        ["+34 12", "+1", "+999 123456789", "911234567", "+34 911 23 45 67 89 01", "+" + "9" * 70]
    ),
    "url": st.sampled_from(
        [
            "http://[::1",
            "http://[x]",
            "http://acme.es:99999",
            "ftp://acme.es",
            "javascript:x()",
            "//",
        ]
    ),
    "key": st.sampled_from(["web\n", "Web", "-web", "", "a" * 65, "wéb", "a b"]),
    "choice": st.sampled_from(["", "CUSTOMER", "unknown", "Customer ", "zone "])
    | st.sampled_from(Role),
    "version": st.sampled_from([0, -1, True, False, "1", 1.0]),
    "country": st.sampled_from(["XX", "ESP", "es ", "EU", "ZZ", "", "1"]),
}
_KEY_GROUPS: Final[dict[str, str]] = {
    "email": "email",
    "emails": "email",
    "value": "email",
    "phones": "phone",
    "e164": "phone",
    "text": "phone",
    "website": "url",
    "social_profiles": "url",
    "key": "key",
    "kinds": "choice",
    "status": "choice",
    "lifecycle": "choice",
    "role": "choice",
    "preferred_channel": "choice",
    "kind": "choice",
    "version": "version",
    "country": "country",
    "region": "country",
}


@cache
def aimed_garbage(key: str) -> st.SearchStrategy[object]:
    """Garbage for the field ``key``: bad UUIDs for ids, naive datetimes for times..."""
    if key == "id" or key.endswith("_id"):
        return _AIMED["uuid"] | garbage
    if key.endswith("_at"):
        return _AIMED["datetime"] | garbage
    if key in _KEY_GROUPS:
        return _AIMED_BY_KEY[_KEY_GROUPS[key]] | _AIMED["text"]
    return _AIMED["text"] | garbage


@cache
def any_garbage(key: str) -> st.SearchStrategy[object]:
    """Generic or aimed garbage for the field ``key``."""
    return garbage | aimed_garbage(key)


def names_field(field: str, key: str) -> bool:
    """Whether the error path ``field`` is ``key`` or a path inside it."""
    return field == key or field.startswith((f"{key}.", f"{key}["))


def valid_or_rejected_at(call: Callable[[], T], key: str) -> T | None:
    """Run ``call``: it must succeed, or raise a ValidationError whose field names ``key``.

    Any other exception propagates, which fails the calling test.

    Returns:
        What ``call`` returned, or ``None`` when it raised ValidationError.
    """
    try:
        return call()
    except ValidationError as exc:
        error = exc
    assert error.field, f"no field in {error!r} (mutated {key!r})"
    assert names_field(error.field, key), f"{error.field!r} does not name {key!r}: {error}"
    assert error.code, f"no code in {error!r}"
    return None


def starting_points(cls: type[T]) -> st.SearchStrategy[T]:
    """Valid values of ``cls`` to mutate: mostly hand-made samples, one in forty random.

    Random records cost ~20 times more to draw than the samples, and the property
    under test is about the mutation, not the record mutated.
    """
    others: dict[type[Any], st.SearchStrategy[Any]] = {MasterSeed: master_seeds, Address: addresses}
    random = {**_BY_TYPE, **others}[cls]
    return st.integers(0, 39).flatmap(lambda n: random if n == 0 else samples(cls))
