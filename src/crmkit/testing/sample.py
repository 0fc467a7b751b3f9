"""A realistic sample book of organizations and contacts, for demos, docs and tests.

:func:`build_sample_book` fills a CRM through the public API only: zones,
markets, sales reps, then Spanish, British and American organizations, each
with 1-4 contacts::

    import crmkit
    from crmkit.testing import build_sample_book

    crm = crmkit.open(":memory:")
    book = build_sample_book(crm, organizations=40, seed=7)
    print(book.counts)

The book depends only on ``seed`` (a private :class:`random.Random`, never the
global one), and a longer book starts with the same organizations as a shorter
one.  Running it again on the same CRM (``crmkit demo`` on an existing
``crm.db``) reuses masters and users with the same keys and skips the
organizations it created before, which it recognizes by ``external_ref``
(``demo-org-0001``...).

Phone numbers are valid for ``phonenumbers``; British and American ones come
from the ranges Ofcom and the NANP keep for drama (``020 7946 0xxx``,
``555-01xx``), Spanish ones are random landlines and mobiles.

.. versionadded:: 0.1
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any, Final, TypeVar

from attrs import frozen

from crmkit import (
    CRM,
    Address,
    Channel,
    Contact,
    ContactRole,
    Lifecycle,
    Market,
    Master,
    MasterService,
    Money,
    NotFoundError,
    Organization,
    OrganizationKind,
    OrganizationStatus,
    PhoneNumber,
    Position,
    Role,
    Source,
    User,
    ValidationError,
    Zone,
)
from crmkit.core.cases import Case
from crmkit.core.interactions import Interaction
from crmkit.core.leads import Lead, LeadConversion
from crmkit.core.opportunities import Opportunity
from crmkit.core.pipelines import StageKind
from crmkit.plugins.builtin_masters import POSITIONS, SOURCES

__all__ = ["SampleBook", "build_sample_book"]

M = TypeVar("M", bound=Master)
T = TypeVar("T")

#: ``external_ref`` prefixes that mark the sample book's records.
ORG_REF: Final = "demo-org-"
USER_REF: Final = "demo-user-"


@frozen(kw_only=True)
class SampleBook:
    """What :func:`build_sample_book` made.

    Attributes:
        zones: the zones of the book (created now or found from an earlier run).
        markets: its markets, likewise.
        sources: the sources it uses, likewise.
        positions: the contact positions it uses, likewise.
        users: the sales reps who own the records, likewise.
        organizations: the organizations created by this call.
        contacts: the contacts created by this call.
        opportunities: the opportunities created by this call, moved through
            their pipelines (some won, lost or on hold).
        interactions: the interactions created by this call: calls, visits,
            e-mails logged in the last weeks, and their planned follow-ups.
        leads: the leads created by this call; some converted into the
            organization whose name they carry (written differently).
        cases: the post-sale cases opened by this call.
        skipped: organizations (with their contacts) left alone because an
            earlier run had created them.

    .. versionadded:: 0.1
    """

    zones: tuple[Zone, ...]
    markets: tuple[Market, ...]
    sources: tuple[Source, ...]
    positions: tuple[Position, ...]
    users: tuple[User, ...]
    organizations: tuple[Organization, ...]
    contacts: tuple[Contact, ...]
    skipped: int
    opportunities: tuple[Opportunity, ...] = ()
    interactions: tuple[Interaction, ...] = ()
    leads: tuple[Lead, ...] = ()
    cases: tuple[Case, ...] = ()

    @property
    def counts(self) -> dict[str, int]:
        """How many records of each kind the book holds, by entity name."""
        return {
            "zones": len(self.zones),
            "markets": len(self.markets),
            "sources": len(self.sources),
            "positions": len(self.positions),
            "users": len(self.users),
            "organizations": len(self.organizations),
            "contacts": len(self.contacts),
            "opportunities": len(self.opportunities),
            "interactions": len(self.interactions),
            "leads": len(self.leads),
            "cases": len(self.cases),
            "skipped": self.skipped,
        }


# ===================================================================== data
# (key, English label, Spanish label)

_ZONES: Final = (
    ("norte", "North", "Norte"),
    ("sur", "South", "Sur"),
    ("centro", "Centre", "Centro"),
    ("levante", "Levante", "Levante"),
    ("noreste", "North-east", "Noreste"),
    ("internacional", "International", "Internacional"),
)

_MARKETS: Final = (
    ("retail", "Retail", "Comercio minorista"),
    ("industry", "Manufacturing", "Industria"),
    ("professional-services", "Professional services", "Servicios profesionales"),
    ("public-sector", "Public sector", "Sector público"),
    ("hospitality", "Hospitality", "Hostelería"),
    ("healthcare", "Healthcare", "Sanidad"),
    ("logistics", "Logistics", "Logística"),
)

# The built-in plugin's masters; the sample book creates them itself when a CRM
# was opened without the built-ins.
_SOURCES: Final = SOURCES
_SOURCE_WEIGHTS: Final = (25, 20, 10, 15, 10, 10, 5, 5)

_POSITIONS: Final = POSITIONS

#: position key -> (role, English department, Spanish department)
_POSITION_ROLES: Final[Mapping[str, tuple[ContactRole, str, str]]] = {
    "ceo": (ContactRole.DECISION_MAKER, "Management", "Dirección"),
    "sales-director": (ContactRole.DECISION_MAKER, "Sales", "Comercial"),
    "purchasing": (ContactRole.DECISION_MAKER, "Purchasing", "Compras"),
    "finance": (ContactRole.ADMINISTRATIVE, "Finance", "Administración"),
    "it": (ContactRole.TECHNICAL, "IT", "Sistemas"),
    "operations": (ContactRole.TECHNICAL, "Operations", "Operaciones"),
    "marketing": (ContactRole.EXTERNAL, "Marketing", "Marketing"),
}

#: (external_ref suffix, name, e-mail, role, zone keys the rep covers)
_USERS: Final = (
    ("01", "Lucía Fernández Ríos", "lucia.fernandez@example.com", Role.MANAGER, ("centro",)),
    ("02", "Javier Moreno Ibáñez", "javier.moreno@example.com", Role.CONTRIBUTOR, ("norte",)),
    ("03", "Carmen Ruiz Delgado", "carmen.ruiz@example.com", Role.CONTRIBUTOR, ("sur",)),
    (
        "04",
        "Pau Soler Vidal",
        "pau.soler@example.com",
        Role.CONTRIBUTOR,
        ("levante", "noreste"),
    ),
    ("05", "Emma Clarke", "emma.clarke@example.com", Role.CONTRIBUTOR, ("internacional",)),
    ("06", "Sofía Navarro Gil", "sofia.navarro@example.com", Role.ADMIN, ()),
)


@frozen
class _City:
    name: str
    region: str
    country: str
    zone: str
    postcodes: tuple[str, ...]  #: Spain: the province's two digits; elsewhere, whole codes
    phone_prefix: str  #: national significant digits the landline starts with


_SPANISH_CITIES: Final = (
    _City("Bilbao", "Bizkaia", "ES", "norte", ("48",), "944"),
    _City("Santander", "Cantabria", "ES", "norte", ("39",), "942"),
    _City("Oviedo", "Asturias", "ES", "norte", ("33",), "985"),
    _City("Donostia-San Sebastián", "Gipuzkoa", "ES", "norte", ("20",), "943"),
    _City("A Coruña", "A Coruña", "ES", "norte", ("15",), "981"),
    _City("Sevilla", "Sevilla", "ES", "sur", ("41",), "954"),
    _City("Málaga", "Málaga", "ES", "sur", ("29",), "952"),
    _City("Granada", "Granada", "ES", "sur", ("18",), "958"),
    _City("Córdoba", "Córdoba", "ES", "sur", ("14",), "957"),
    _City("Madrid", "Madrid", "ES", "centro", ("28",), "91"),
    _City("Madrid", "Madrid", "ES", "centro", ("28",), "91"),
    _City("Toledo", "Toledo", "ES", "centro", ("45",), "925"),
    _City("Valladolid", "Valladolid", "ES", "centro", ("47",), "983"),
    _City("Valencia", "Valencia", "ES", "levante", ("46",), "963"),
    _City("Alicante", "Alicante", "ES", "levante", ("03",), "965"),
    _City("Murcia", "Murcia", "ES", "levante", ("30",), "968"),
    _City("Barcelona", "Barcelona", "ES", "noreste", ("08",), "93"),
    _City("Barcelona", "Barcelona", "ES", "noreste", ("08",), "93"),
    _City("Zaragoza", "Zaragoza", "ES", "noreste", ("50",), "976"),
    _City("Girona", "Girona", "ES", "noreste", ("17",), "972"),
)

# UK drama ranges: 020 7946 0xxx, 0113/0121/0161 496 0xxx (Ofcom).
_UK_CITIES: Final = (
    _City(
        "London",
        "Greater London",
        "GB",
        "internacional",
        ("EC2A 4NE", "SE1 9GF", "W1D 3QU"),
        "2079460",
    ),
    _City(
        "Manchester", "Greater Manchester", "GB", "internacional", ("M1 3HU", "M2 5DB"), "1614960"
    ),
    _City("Birmingham", "West Midlands", "GB", "internacional", ("B1 1BB", "B3 2DJ"), "1214960"),
    _City("Leeds", "West Yorkshire", "GB", "internacional", ("LS1 4AP", "LS2 7EY"), "1134960"),
)

# NANP: 555-0100 to 555-0199 are fictional in every area code.
_US_CITIES: Final = (
    _City("New York", "NY", "US", "internacional", ("10001", "10016", "10036"), "21255501"),
    _City("Chicago", "IL", "US", "internacional", ("60601", "60654"), "31255501"),
    _City("Boston", "MA", "US", "internacional", ("02108", "02110"), "61755501"),
)

_ES_SURNAMES: Final = (
    "García", "Martínez", "López", "Sánchez", "González", "Pérez", "Rodríguez", "Fernández",
    "Gómez", "Ruiz", "Díaz", "Hernández", "Álvarez", "Jiménez", "Moreno", "Muñoz", "Romero",
    "Navarro", "Torres", "Domínguez", "Vázquez", "Ramos", "Gil", "Serrano", "Molina", "Castro",
    "Ortega", "Rubio", "Sanz", "Iglesias", "Garrido", "Medina", "Cortés", "Aguirre", "Etxeberria",
)  # fmt: skip
_ES_FEMALE: Final = (
    "María", "Ana", "Lucía", "Carmen", "Laura", "Marta", "Elena", "Paula", "Sara", "Isabel",
    "Cristina", "Pilar", "Nuria", "Raquel", "Beatriz", "Rocío", "Irene", "Montserrat", "Ainhoa",
)  # fmt: skip
_ES_MALE: Final = (
    "José", "Antonio", "Manuel", "Francisco", "David", "Javier", "Daniel", "Carlos", "Miguel",
    "Alejandro", "Pablo", "Sergio", "Jorge", "Álvaro", "Raúl", "Íñigo", "Jordi", "Rubén",
)  # fmt: skip
_EN_SURNAMES: Final = (
    "Smith", "Johnson", "Taylor", "Brown", "Wilson", "Evans", "Thompson", "Walker", "Wright",
    "Hughes", "Carter", "Miller", "Davis", "Clarke", "Patel", "Murphy", "Bennett", "Harris",
)  # fmt: skip
_EN_FIRST: Final = (
    "Emma", "Olivia", "Sophie", "Charlotte", "Grace", "Emily", "Hannah", "Sarah", "Jennifer",
    "James", "Oliver", "George", "Harry", "Jack", "Thomas", "William", "Michael", "Robert",
)  # fmt: skip
_EN_WORDS: Final = (
    "Acme", "Riverside", "Northwind", "Brightwater", "Summit", "Oakridge", "Harbour",
    "Silverline", "Kingsway", "Greenfield", "Redstone", "Meridian", "Pinecrest", "Lakeside",
    "Bluebell", "Ironbridge", "Westfield", "Highgate",
)  # fmt: skip
_ES_PLACES: Final = (
    "El Mirador", "La Alameda", "Los Arcos", "Miramar", "Las Dunas", "El Puerto", "La Plaza",
    "San Telmo", "Casa Manolo", "La Bodeguilla", "Puerta Real",
)  # fmt: skip

#: market key -> Spanish name patterns; {fam} family name, {place}, {city}
_ES_PATTERNS: Final[Mapping[str, tuple[str, ...]]] = {
    "retail": (
        "Ferretería {fam}", "Librería {fam}", "Supermercados {fam}", "Muebles {fam}",
        "Óptica {fam}", "Electrodomésticos {fam}", "Calzados {fam}",
    ),
    "industry": (
        "Talleres {fam}", "Industrias {fam}", "Metalúrgica {fam}", "Plásticos {fam}",
        "Carpintería {fam}", "Conservas {fam}", "Construcciones {fam}",
    ),
    "professional-services": (
        "Asesoría {fam}", "{fam} Abogados", "Consultora {fam}", "Gestoría {fam}",
        "Arquitectos {fam}", "Ingeniería {fam}",
    ),
    "public-sector": (
        "Ayuntamiento de {city}", "Diputación de {region}", "Universidad de {city}",
        "Consorcio de Aguas de {city}",
    ),
    "hospitality": (
        "Hotel {place}", "Restaurante {place}", "Bodegas {fam}", "Cafetería {place}",
        "Hostal {place}",
    ),
    "healthcare": (
        "Clínica Dental {fam}", "Centro Médico {place}", "Farmacia {fam}", "Laboratorios {fam}",
    ),
    "logistics": (
        "Transportes {fam}", "Logística {fam}", "Mudanzas {fam}", "Distribuciones {fam}",
    ),
}  # fmt: skip

#: market key -> English name patterns; {word}, {surname}, {city}
_EN_PATTERNS: Final[Mapping[str, tuple[str, ...]]] = {
    "retail": ("{word} Home Stores", "{surname}'s Hardware", "{word} Books", "{word} Outfitters"),
    "industry": (
        "{word} Industrial", "{word} Engineering", "{word} Manufacturing", "{word} Plastics",
        "{surname} & Sons Fabrication",
    ),
    "professional-services": (
        "{surname} & {surname2}", "{word} Consulting", "{word} Advisory", "{surname} Accountants",
    ),
    "public-sector": ("{word} Borough Council", "{word} Community College"),
    "hospitality": ("The {word} Hotel", "{word} Inn", "{surname}'s Kitchen"),
    "healthcare": ("{word} Dental Care", "{word} Medical Centre", "{word} Clinic"),
    "logistics": ("{word} Logistics", "{word} Freight", "{surname} Haulage"),
}  # fmt: skip

_STOP_WORDS: Final = frozenset(
    {"de", "del", "la", "las", "los", "y", "e", "hermanos", "hijos", "the", "and", "sons", "s"}
)
_ES_STREETS: Final = (
    "Calle Mayor", "Avenida de la Constitución", "Calle Real", "Calle San Francisco",
    "Plaza de España", "Calle del Comercio", "Avenida de Andalucía", "Calle Colón",
    "Paseo de la Estación", "Calle Nueva",
)  # fmt: skip
_ES_ESTATES: Final = ("Los Llanos", "El Prado", "La Estrella", "San Cristóbal", "Las Arenas")
_EN_STREETS: Final = (
    "High Street", "Station Road", "Church Lane", "King Street", "Victoria Road", "Main Street",
    "Market Street", "Oak Avenue", "Broadway", "Park Avenue",
)  # fmt: skip
_TAGS: Final = ("vip", "newsletter", "key-account", "export", "multi-site")

_LIFECYCLES: Final = (Lifecycle.CUSTOMER, Lifecycle.PROSPECT, Lifecycle.TARGET, Lifecycle.FORMER)
_LIFECYCLE_WEIGHTS: Final = (40, 30, 20, 10)
_CHANNELS: Final = (
    Channel.EMAIL,
    Channel.PHONE,
    Channel.MOBILE,
    Channel.WHATSAPP,
    Channel.IN_PERSON,
)
_CHANNEL_WEIGHTS: Final = (40, 20, 15, 15, 10)


# ==================================================================== plans


@frozen(kw_only=True)
class _ContactPlan:
    first_name: str
    last_name: str
    email: str | None
    phones: tuple[PhoneNumber, ...]
    position: str
    department: str
    role: ContactRole
    preferred_channel: Channel
    language: str
    do_not_contact: bool
    social_profiles: tuple[str, ...]


@frozen(kw_only=True)
class _OrganizationPlan:
    external_ref: str
    name: str
    kinds: frozenset[OrganizationKind]
    status: OrganizationStatus
    lifecycle: Lifecycle
    tax_id: str
    address: Address
    phones: tuple[PhoneNumber, ...]
    emails: tuple[str, ...]
    website: str
    market: str
    source: str
    zone: str
    owner: str  #: the user's external_ref suffix
    tags: tuple[str, ...]
    contacts: tuple[_ContactPlan, ...]


def _ascii_slug(text: str, sep: str = "-") -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", sep, plain).strip(sep)


def _valid_phone(rng: random.Random, country: str, prefix: str, length: int) -> PhoneNumber:
    """A random number ``prefix`` + digits (``length`` national digits) that is valid."""
    code = {"ES": "34", "GB": "44", "US": "1"}[country]
    for _ in range(100):
        rest = "".join(rng.choice("0123456789") for _ in range(length - len(prefix)))
        try:
            return PhoneNumber.parse(f"+{code}{prefix}{rest}")
        except ValidationError:
            continue
    raise AssertionError(f"no valid phone number starts with +{code} {prefix}")  # pragma: no cover


def _landline(rng: random.Random, city: _City) -> PhoneNumber:
    length = 9 if city.country == "ES" else 10
    return _valid_phone(rng, city.country, city.phone_prefix, length)


def _direct_line(rng: random.Random, city: _City) -> PhoneNumber:
    """A contact's phone: a Spanish mobile, or a landline in the drama ranges elsewhere."""
    if city.country == "ES":
        return _valid_phone(rng, "ES", "6", 9)
    return _landline(rng, city)


def _spanish_cif(rng: random.Random, letter: str, province: str) -> str:
    """A Spanish company tax id (CIF) with a correct control character."""
    digits = province + f"{rng.randrange(100_000):05d}"
    even = sum(int(d) for d in digits[1::2])
    odd = sum(sum(divmod(int(d) * 2, 10)) for d in digits[0::2])
    control = (10 - (even + odd) % 10) % 10
    check = "JABCDEFGHI"[control] if letter in "PQRSNW" else str(control)
    return f"{letter}{digits}{check}"


def _pick(rng: random.Random, items: Sequence[T], weights: Sequence[int]) -> T:
    return rng.choices(items, weights=weights)[0]


def _spanish_name(rng: random.Random, market: str, city: _City) -> tuple[str, str, str]:
    """(name, CIF letter, domain stem) of a Spanish organization."""
    surname, surname2 = rng.sample(_ES_SURNAMES, 2)
    fam = rng.choice(
        (surname, surname, f"Hermanos {surname}", f"{surname} e Hijos", f"{surname} y {surname2}")
    )
    pattern = rng.choice(_ES_PATTERNS[market])
    base = pattern.format(fam=fam, place=rng.choice(_ES_PLACES), city=city.name, region=city.region)
    if market == "public-sector":
        return base, ("P" if pattern.startswith(("Ayunt", "Dipu")) else "Q"), base
    if "Abogados" in pattern or "Arquitectos" in pattern:
        suffix, letter = "S.L.P.", "B"
    elif market == "industry" and rng.random() < 0.15:
        suffix, letter = "S.Coop.", "F"
    else:
        suffix, letter = _pick(rng, (("S.L.", "B"), ("S.A.", "A")), (75, 25))
    return f"{base} {suffix}", letter, base


def _english_name(rng: random.Random, market: str, country: str, city: _City) -> tuple[str, str]:
    """(name, domain stem) of a British or American organization."""
    surname, surname2 = rng.sample(_EN_SURNAMES, 2)
    pattern = rng.choice(_EN_PATTERNS[market])
    base = pattern.format(
        word=rng.choice(_EN_WORDS), surname=surname, surname2=surname2, city=city.name
    )
    if market == "public-sector":
        return base, base
    if "&" in pattern and "Sons" not in pattern:
        suffix = "LLP"
    elif country == "GB":
        suffix = _pick(rng, ("Ltd.", "PLC"), (90, 10))
    else:
        suffix = _pick(rng, ("Inc.", "LLC"), (60, 40))
    return f"{base} {suffix}", base


def _domain(stem: str, country: str) -> str:
    words = [w for w in _ascii_slug(stem, " ").split() if w not in _STOP_WORDS]
    tld = {"ES": "es", "GB": "co.uk", "US": "com"}[country]
    return "-".join(words[:4]) + "." + tld


def _address(rng: random.Random, city: _City, market: str) -> Address:
    if city.country == "ES":
        if market in ("industry", "logistics") and rng.random() < 0.6:
            street = f"Polígono Industrial {rng.choice(_ES_ESTATES)}, nave {rng.randint(1, 40)}"
        else:
            street = f"{rng.choice(_ES_STREETS)}, {rng.randint(1, 180)}"
        postcode = f"{city.postcodes[0]}0{rng.randint(1, 80):02d}"
    else:
        street = f"{rng.randint(1, 400)} {rng.choice(_EN_STREETS)}"
        postcode = rng.choice(city.postcodes)
    return Address(
        street=street,
        city=city.name,
        region=city.region,
        postal_code=postcode,
        country=city.country,
    )


def _tax_id(rng: random.Random, city: _City, letter: str) -> str:
    if city.country == "ES":
        return _spanish_cif(rng, letter, city.postcodes[0])
    if city.country == "GB":
        return f"GB{rng.randrange(100_000_000, 1_000_000_000)}"
    return f"{rng.randint(10, 99)}-{rng.randrange(1_000_000, 10_000_000)}"


def _kinds(rng: random.Random, lifecycle: Lifecycle, source: str) -> frozenset[OrganizationKind]:
    kinds: set[OrganizationKind] = set()
    if lifecycle is Lifecycle.CUSTOMER:
        kinds.add(OrganizationKind.CUSTOMER)
    elif lifecycle is Lifecycle.PROSPECT:
        kinds.add(OrganizationKind.PROSPECT)
    if source == "partner" or rng.random() < 0.05:
        kinds.add(OrganizationKind.PARTNER)
    if source == "prescriber":
        kinds.add(OrganizationKind.PRESCRIBER)
    if rng.random() < 0.05:
        kinds.add(OrganizationKind.SUPPLIER)
    return frozenset(kinds)


def _plan_contacts(
    rng: random.Random, city: _City, domain: str, language: str
) -> tuple[_ContactPlan, ...]:
    count = rng.randint(1, 4)
    positions = rng.sample([key for key, _, _ in _POSITIONS], count)
    seen: set[str] = set()
    plans: list[_ContactPlan] = []
    for i, position in enumerate(positions):
        while True:
            if language == "es":
                first = rng.choice(_ES_FEMALE if rng.random() < 0.5 else _ES_MALE)
                last = " ".join(rng.sample(_ES_SURNAMES, 2))
            else:
                first, last = rng.choice(_EN_FIRST), rng.choice(_EN_SURNAMES)
            local = f"{_ascii_slug(first, '')}.{_ascii_slug(last.split()[0], '')}"
            if local not in seen:
                seen.add(local)
                break
        role, department_en, department_es = _POSITION_ROLES[position]
        # WhatsApp is how much of Spain does business; less so elsewhere
        weights = _CHANNEL_WEIGHTS if city.country == "ES" else (45, 30, 15, 0, 10)
        profile = (
            f"https://www.linkedin.com/in/{local.replace('.', '-')}-{rng.randrange(10**4):04d}"
        )
        plans.append(
            _ContactPlan(
                first_name=first,
                last_name=last,
                email=f"{local}@{domain}" if rng.random() < 0.9 else None,
                phones=(_direct_line(rng, city),) if rng.random() < 0.8 else (),
                position=position,
                department=department_es if language == "es" else department_en,
                role=ContactRole.PRIMARY if i == 0 else role,
                preferred_channel=_pick(rng, _CHANNELS, weights),
                language=language,
                do_not_contact=rng.random() < 0.08,
                social_profiles=(profile,) if rng.random() < 0.3 else (),
            )
        )
    return tuple(plans)


def _plan_organization(rng: random.Random, number: int, taken: set[str]) -> _OrganizationPlan:
    country = _pick(rng, ("ES", "GB", "US"), (70, 18, 12))
    cities = {"ES": _SPANISH_CITIES, "GB": _UK_CITIES, "US": _US_CITIES}[country]
    city = rng.choice(cities)
    market = rng.choice([key for key, _, _ in _MARKETS])
    for attempt in range(20):
        if country == "ES":
            name, letter, stem = _spanish_name(rng, market, city)
        else:
            (name, stem), letter = _english_name(rng, market, country, city), ""
        if attempt == 19:  # pragma: no cover - only for very large books
            name, stem = f"{name} ({city.name} {number})", f"{stem} {number}"
        if name not in taken:
            taken.add(name)
            break
    domain = _domain(stem, country)
    language = "es" if country == "ES" else "en"
    lifecycle = _pick(rng, _LIFECYCLES, _LIFECYCLE_WEIGHTS)
    source = _pick(rng, [key for key, _, _ in _SOURCES], _SOURCE_WEIGHTS)
    owners = [ref for ref, _, _, _, zones in _USERS if city.zone in zones]
    status = OrganizationStatus.ACTIVE
    if lifecycle is Lifecycle.FORMER:
        status = OrganizationStatus.INACTIVE
    mailboxes = {
        ("es", False): ("info", "ventas", "contacto"),
        ("es", True): ("info", "contacto", "registro"),
        ("en", False): ("info", "sales", "hello"),
        ("en", True): ("info", "enquiries", "customer.services"),
    }[language, market == "public-sector"]
    phones = [_landline(rng, city)]
    if rng.random() < 0.3:
        phones.append(_landline(rng, city))
    return _OrganizationPlan(
        external_ref=f"{ORG_REF}{number:04d}",
        name=name,
        kinds=_kinds(rng, lifecycle, source),
        status=status,
        lifecycle=lifecycle,
        tax_id=_tax_id(rng, city, letter),
        address=_address(rng, city, market),
        phones=tuple(dict.fromkeys(phones)),
        emails=tuple(f"{box}@{domain}" for box in rng.sample(mailboxes, rng.randint(1, 2))),
        website=f"https://www.{domain}",
        market=market,
        source=source,
        zone=city.zone,
        owner=rng.choice(owners),
        tags=tuple(rng.sample(_TAGS, _pick(rng, (0, 1, 2), (60, 30, 10)))),
        contacts=_plan_contacts(rng, city, domain, language),
    )


# ==================================================================== build


def _ensure(
    service: MasterService[M, Any], entries: Sequence[tuple[str, str, str]]
) -> tuple[M, ...]:
    """The masters with these keys, created when missing."""
    found: list[M] = []
    for key, name, name_es in entries:
        try:
            found.append(service.get_by_key(key))
        except NotFoundError:
            found.append(service.create(key=key, name=name, name_es=name_es))
    return tuple(found)


def _ensure_users(crm: CRM) -> dict[str, User]:
    users: dict[str, User] = {}
    for suffix, name, email, role, _ in _USERS:
        ref = f"{USER_REF}{suffix}"
        try:
            users[suffix] = crm.users.get_by_external_ref(ref)
        except NotFoundError:
            users[suffix] = crm.users.create(name=name, email=email, role=role, external_ref=ref)
    return users


def _check_count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(name, "must be a non-negative integer", code="type", value=value)
    return value


def build_sample_book(crm: CRM, *, organizations: int = 40, seed: int = 7) -> SampleBook:
    """Fill ``crm`` with a realistic, reproducible book of organizations and contacts.

    Everything happens in one transaction: the book is there completely or not
    at all.

    Args:
        crm: the CRM to fill.
        organizations: how many organizations the book has; each gets 1-4 contacts.
        seed: the random seed; the same seed gives the same book.

    Returns:
        The masters and users of the book and the records this call created.

    Raises:
        ValidationError: ``organizations`` or ``seed`` is not a suitable integer.
        DuplicateError: a record that is not the book's uses one of the book's
            ``external_ref`` values; nothing was created.

    .. versionadded:: 0.1
    """
    _check_count("organizations", organizations)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValidationError("seed", "must be an integer", code="type", value=seed)
    rng = random.Random(seed)
    taken: set[str] = set()
    # Plan first, from the seed alone, so what is already stored cannot change the book.
    plans = [_plan_organization(rng, n, taken) for n in range(1, organizations + 1)]

    created: list[Organization] = []
    contacts: list[Contact] = []
    opportunities: list[Opportunity] = []
    deals = random.Random(seed + 1)  # its own stream: the book above stays as it was
    activity = random.Random(seed + 2)  # and another for interactions, leads and cases
    interactions: list[Interaction] = []
    leads: list[Lead] = []
    cases: list[Case] = []
    skipped = 0
    with crm.transaction():
        zones = _ensure(crm.zones, _ZONES)
        markets = _ensure(crm.markets, _MARKETS)
        sources = _ensure(crm.sources, _SOURCES)
        positions = _ensure(crm.positions, _POSITIONS)
        users = _ensure_users(crm)
        for plan in plans:
            if _organization_exists(crm, plan.external_ref):
                skipped += 1
                continue
            organization = crm.organizations.create(
                name=plan.name,
                kinds=plan.kinds,
                status=plan.status,
                lifecycle=plan.lifecycle,
                tax_id=plan.tax_id,
                addresses=[plan.address],
                phones=plan.phones,
                emails=plan.emails,
                website=plan.website,
                market=plan.market,
                source=plan.source,
                zone=plan.zone,
                owner=users[plan.owner],
                tags=plan.tags,
                external_ref=plan.external_ref,
            )
            created.append(organization)
            for i, person in enumerate(plan.contacts, start=1):
                contacts.append(
                    crm.contacts.create(
                        first_name=person.first_name,
                        last_name=person.last_name,
                        email=person.email,
                        phones=person.phones,
                        organization=organization,
                        position=person.position,
                        department=person.department,
                        role=person.role,
                        preferred_channel=person.preferred_channel,
                        do_not_contact=person.do_not_contact,
                        language=person.language,
                        social_profiles=person.social_profiles,
                        owner=users[plan.owner],
                        external_ref=f"{plan.external_ref}-c{i}",
                    )
                )
            made = _sample_opportunities(
                crm, deals, organization, users[plan.owner], plan.external_ref
            )
            opportunities += made
            people = contacts[len(contacts) - len(plan.contacts) :]
            interactions += _sample_interactions(
                crm, activity, organization, people, users[plan.owner], plan.external_ref
            )
            lead, case = _sample_lead_and_case(
                crm, activity, organization, made, users[plan.owner], plan.external_ref
            )
            if lead is not None:
                leads.append(lead.lead if isinstance(lead, LeadConversion) else lead)
                if isinstance(lead, LeadConversion) and lead.created_contact:
                    assert lead.contact is not None
                    contacts.append(lead.contact)
            cases += [case] if case is not None else []
    return SampleBook(
        zones=zones,
        markets=markets,
        sources=sources,
        positions=positions,
        users=tuple(users.values()),
        organizations=tuple(created),
        contacts=tuple(contacts),
        opportunities=tuple(opportunities),
        interactions=tuple(interactions),
        leads=tuple(leads),
        cases=tuple(cases),
        skipped=skipped,
    )


#: (pipeline key, weight) of the sample's opportunities
_PIPELINE_WEIGHTS: Final = (("sales", 50), ("gestion-comercial", 35), ("expediente", 15))
_OUTCOMES: Final = (("open", 50), ("won", 20), ("lost", 20), ("hold", 10))
_DEAL_NAMES: Final = (
    "Renovación de licencias",
    "ERP para",
    "Ampliación de contrato",
    "Consultoría",
    "Support renewal",
    "New site rollout",
    "Formación",
    "Mantenimiento anual",
)


def _sample_opportunities(
    crm: CRM, rng: random.Random, organization: Organization, owner: User, ref: str
) -> list[Opportunity]:
    """0-2 opportunities for ``organization``, moved at random through their pipeline."""
    made: list[Opportunity] = []
    for n in range(rng.choice((0, 1, 1, 2))):
        key = _pick(rng, [k for k, _ in _PIPELINE_WEIGHTS], [w for _, w in _PIPELINE_WEIGHTS])
        pipeline = crm.pipelines.get(key)
        chain = [s.key for s in pipeline.of_kind(StageKind.OPEN)]
        opp = crm.opportunities.create(
            name=f"{rng.choice(_DEAL_NAMES)} {organization.name.split()[0]}",
            organization=organization,
            pipeline=key,
            amount=Money(rng.randrange(20, 1200) * 100, "EUR"),
            expected_close=date(2027, rng.randrange(1, 13), 1),
            owner=owner,
            external_ref=f"{ref}-o{n + 1}",
        )
        outcome = _pick(rng, [o for o, _ in _OUTCOMES], [w for _, w in _OUTCOMES])
        steps = len(chain) - 1 if outcome == "won" else rng.randrange(len(chain))
        for stage in chain[1 : steps + 1]:
            opp = crm.opportunities.advance(opp.id, to=stage)
        if outcome == "won":
            opp = crm.opportunities.win(opp.id)
        elif outcome == "lost":
            lost_stage = pipeline.of_kind(StageKind.LOST)[0].key
            reason = rng.choice(("price", "competitor", "no-budget", "no-decision"))
            opp = crm.opportunities.lose(opp.id, reason=reason, stage=lost_stage)
        elif outcome == "hold":
            opp = crm.opportunities.hold(opp.id)
        made.append(opp)
    return made


#: (kind, subject, outcome key, next step or None) of logged interactions
_LOGGED: Final = (
    ("call", "Primera llamada", "initial-interest", "Agendar reunión"),
    ("visit", "Visita comercial", "send-proposal", "Enviar propuesta"),
    ("email", "Envío de catálogo", "send-information", None),
    ("meeting", "Reunión de seguimiento", "schedule-meeting", "Presentar productos"),
    ("call", "Llamada de seguimiento", "no-answer", "Volver a llamar"),
    ("presentation", "Presentación de la solución", "initial-interest", None),
)


def _sample_interactions(
    crm: CRM,
    rng: random.Random,
    organization: Organization,
    people: Sequence[Contact],
    owner: User,
    ref: str,
) -> list[Interaction]:
    """0-3 interactions logged in the last weeks, with follow-ups due around now."""
    made: list[Interaction] = []
    now = crm.now()
    # follow-ups fall in office hours (09:00-18:00 on the CRM's wall clock)
    morning = now.astimezone(crm.timezone).replace(hour=9, minute=0, second=0, microsecond=0)
    for n in range(rng.choice((0, 1, 2, 3))):
        kind, subject, outcome, next_step = rng.choice(_LOGGED)
        occurred = now - timedelta(days=rng.randrange(3, 40), hours=rng.randrange(0, 8))
        logged = crm.interactions.log(
            kind=kind,
            organization=organization,
            contact=rng.choice(people) if people else None,
            subject=subject,
            occurred_at=occurred,
            outcome=outcome,
            next_step=next_step,
            next_due=morning + timedelta(days=rng.randrange(-4, 12), minutes=30 * rng.randrange(18))
            if next_step
            else None,
            assignee=owner,
            external_ref=f"{ref}-i{n + 1}",
        )
        made.append(logged)
        made += crm.interactions.follow_ups(logged)
    return made


def _sample_lead_and_case(
    crm: CRM,
    rng: random.Random,
    organization: Organization,
    deals: Sequence[Opportunity],
    owner: User,
    ref: str,
) -> tuple[Lead | LeadConversion | None, Case | None]:
    """Sometimes a lead that names the organization differently (converted by
    matching), and for some won deals a post-sale case."""
    lead = None
    roll = rng.random()
    if roll < 0.25:
        first = rng.choice(("Marta", "Diego", "Elena", "Tom", "Sarah", "Iker"))
        lead = crm.leads.create(
            first_name=first,
            company=organization.name.upper().replace(" S.L.", ", S.L."),
            job_title="Compras",
            source="web",
            owner=owner,
            channel="web_form",
            external_ref=f"{ref}-l1",
        )
        if roll < 0.15:
            return crm.leads.convert(lead.id), _sample_case(
                crm, rng, organization, deals, owner, ref
            )
    return lead, _sample_case(crm, rng, organization, deals, owner, ref)


def _sample_case(
    crm: CRM,
    rng: random.Random,
    organization: Organization,
    deals: Sequence[Opportunity],
    owner: User,
    ref: str,
) -> Case | None:
    """For some won deals, a post-sale case."""
    won = [d for d in deals if d.status is StageKind.WON]
    if won and rng.random() < 0.5:
        return crm.cases.open(
            subject=rng.choice(("Entrega incompleta", "Incidencia en la instalación")),
            case_type=rng.choice(("claim", "incident", "service_request")),
            priority=rng.choice(("low", "normal", "high", "urgent")),
            organization=organization,
            opportunity=won[0],
            owner=owner,
            external_ref=f"{ref}-k1",
        )
    return None


def _organization_exists(crm: CRM, external_ref: str) -> bool:
    try:
        crm.organizations.get_by_external_ref(external_ref)
    except NotFoundError:
        return False
    return True
