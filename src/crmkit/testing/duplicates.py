"""A generated address book with planted near-duplicates, to measure duplicate detection.

:func:`planted_contacts` builds, from a seed, people with Spanish and English
names (one or two surnames, common names repeating as they do in real books:
many "María García"), e-mail addresses, mobile phones, shared switchboard
numbers and organizations, then copies a share of them with the mistakes
people make when a contact is entered twice: a typo, first and last name
swapped, accents dropped, the e-mail in another case or with a ``+tag``, the
phone in another format, the e-mail or the phone left out, another e-mail
address.  It returns the
records as raw values and the true duplicate pairs, so recall and precision
can be measured exactly.

.. versionadded:: 0.1
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Callable
from typing import Final
from uuid import UUID

from attrs import evolve, frozen

from crmkit.core.duplicates import ContactProfile

__all__ = ["PlantedBook", "RawContact", "planted_contacts"]

_FIRST: Final = (
    "María",
    "José",
    "Antonio",
    "Manuel",
    "Carmen",
    "Ana",
    "Francisco",
    "David",
    "Juan",
    "Laura",
    "Javier",
    "Lucía",
    "Daniel",
    "Sofía",
    "Carlos",
    "Marta",
    "Miguel",
    "Elena",
    "Alejandro",
    "Paula",
    "Rafael",
    "Sara",
    "Pablo",
    "Cristina",
    "Sergio",
    "Isabel",
    "Fernando",
    "Pilar",
    "Jorge",
    "Raquel",
    "Luis",
    "Beatriz",
    "Alberto",
    "Rosa",
    "Álvaro",
    "Nuria",
    "Adrián",
    "Silvia",
    "Diego",
    "Patricia",
    "Raúl",
    "Mónica",
    "Iván",
    "Andrea",
    "Rubén",
    "Teresa",
    "Óscar",
    "Irene",
    "Ángel",
    "Inés",
    "Jesús",
    "Alicia",
    "Ramón",
    "Noelia",
    "Víctor",
    "Natalia",
    "Joaquín",
    "Eva",
    "Andrés",
    "Lorena",
    "Ignacio",
    "Rocío",
    "Emilio",
    "Susana",
    "Hugo",
    "Julia",
    "Mario",
    "Clara",
    "Gonzalo",
    "Marina",
    "Enrique",
    "Alba",
    "Tomás",
    "Lidia",
    "Ricardo",
    "Begoña",
    "Agustín",
    "Ainhoa",
    "James",
    "Mary",
    "John",
    "Patricia",
    "Robert",
    "Jennifer",
    "Michael",
    "Linda",
    "William",
    "Elizabeth",
    "Richard",
    "Barbara",
    "Joseph",
    "Susan",
    "Thomas",
    "Jessica",
    "Charles",
    "Sarah",
    "Christopher",
    "Karen",
    "Daniel",
    "Nancy",
    "Matthew",
    "Lisa",
    "Anthony",
    "Betty",
    "Mark",
    "Margaret",
    "Paul",
    "Sandra",
    "Steven",
    "Ashley",
    "Andrew",
    "Kimberly",
    "Kevin",
    "Emily",
    "Brian",
    "Donna",
    "George",
    "Michelle",
    "Edward",
    "Carol",
    "Ronald",
    "Amanda",
    "Timothy",
    "Melissa",
    "Jason",
    "Deborah",
)

_LAST: Final = (
    "García",
    "Fernández",
    "González",
    "Rodríguez",
    "López",
    "Martínez",
    "Sánchez",
    "Pérez",
    "Gómez",
    "Martín",
    "Jiménez",
    "Ruiz",
    "Hernández",
    "Díaz",
    "Moreno",
    "Muñoz",
    "Álvarez",
    "Romero",
    "Alonso",
    "Gutiérrez",
    "Navarro",
    "Torres",
    "Domínguez",
    "Vázquez",
    "Ramos",
    "Gil",
    "Ramírez",
    "Serrano",
    "Blanco",
    "Molina",
    "Morales",
    "Suárez",
    "Ortega",
    "Delgado",
    "Castro",
    "Ortiz",
    "Rubio",
    "Marín",
    "Sanz",
    "Núñez",
    "Iglesias",
    "Medina",
    "Garrido",
    "Cortés",
    "Castillo",
    "Santos",
    "Lozano",
    "Guerrero",
    "Cano",
    "Prieto",
    "Méndez",
    "Cruz",
    "Calvo",
    "Gallego",
    "Vidal",
    "León",
    "Márquez",
    "Herrera",
    "Peña",
    "Flores",
    "Cabrera",
    "Campos",
    "Vega",
    "Fuentes",
    "Carrasco",
    "Díez",
    "Caballero",
    "Reyes",
    "Nieto",
    "Aguilar",
    "Pascual",
    "Santana",
    "Herrero",
    "Lorenzo",
    "Montero",
    "Hidalgo",
    "Giménez",
    "Ibáñez",
    "Ferrer",
    "Durán",
    "Santiago",
    "Benítez",
    "Mora",
    "Vicente",
    "Vargas",
    "Arias",
    "Carmona",
    "Crespo",
    "Román",
    "Pastor",
    "Soto",
    "Sáez",
    "Velasco",
    "Moya",
    "Soler",
    "Parra",
    "Esteban",
    "Bravo",
    "Gallardo",
    "Rojas",
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Miller",
    "Davis",
    "Wilson",
    "Taylor",
    "Anderson",
    "Thomas",
    "Moore",
    "Martin",
    "Jackson",
    "Thompson",
    "White",
    "Harris",
    "Clark",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Hill",
    "Green",
    "Adams",
    "Baker",
    "Nelson",
    "Carter",
    "Mitchell",
    "Roberts",
    "Turner",
    "Phillips",
    "Campbell",
    "Parker",
    "Evans",
    "Edwards",
    "Collins",
    "Stewart",
    "Morris",
    "Murphy",
    "Cook",
    "Rogers",
    "Morgan",
    "Cooper",
    "Peterson",
    "Reed",
    "Bailey",
    "Bell",
    "Kelly",
    "Howard",
    "Ward",
    "Cox",
    "Richardson",
    "Wood",
    "Watson",
    "Brooks",
    "Bennett",
    "Gray",
    "James",
    "Hughes",
    "Price",
    "Sanders",
    "Myers",
    "Long",
    "Ross",
)

_MAIL_DOMAINS: Final = ("gmail.com", "hotmail.com", "yahoo.es", "outlook.com", "telefonica.net")


@frozen
class RawContact:
    """A contact as someone typed it (nothing normalized)."""

    id: UUID
    first_name: str
    last_name: str
    email: str | None
    phones: tuple[str, ...]
    organization: int | None


@frozen
class PlantedBook:
    """The generated contacts and which pairs of them are the same person.

    Attributes:
        contacts: originals and planted duplicates, shuffled.
        duplicates: the true duplicate pairs, as unordered id pairs.
        region: the country national phone numbers are written for (``"ES"``).
    """

    contacts: tuple[RawContact, ...]
    duplicates: frozenset[frozenset[UUID]]
    region: str = "ES"

    def profiles(self) -> list[ContactProfile]:
        """The contacts as the duplicate search's profiles (phones read for :attr:`region`)."""
        return [
            ContactProfile.from_values(
                c.id,
                first_name=c.first_name,
                last_name=c.last_name,
                email=c.email,
                phones=c.phones,
                region=self.region,
            )
            for c in self.contacts
        ]


def _ascii(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def _zipf(rng: random.Random, items: tuple[str, ...], shift: int = 8) -> Callable[[], str]:
    """A sampler favouring the first items, as name frequencies do."""
    weights = [1 / (rank + shift) for rank in range(len(items))]
    order = list(items)
    rng.shuffle(order)

    def draw() -> str:
        return rng.choices(order, weights)[0]

    return draw


def _mobile(rng: random.Random, taken: set[str]) -> str:
    while True:
        number = f"6{rng.randrange(10**8):08d}"
        if number not in taken:
            taken.add(number)
            return number


def _written(number: str, style: int) -> str:
    """A Spanish 9-digit number written one of several ways."""
    a, b, c, d = number[:3], number[3:5], number[5:7], number[7:]
    return (
        f"+34{number}",
        f"+34 {a} {b} {c} {d}",
        f"{a} {b} {c} {d}",
        f"0034 {a}-{number[3:6]}-{number[6:]}",
        f"({a}) {number[3:]}",
        f"{a}.{number[3:6]}.{number[6:]}",
    )[style]


def _typo(rng: random.Random, word: str) -> str:
    if len(word) < 4:
        return word + rng.choice("aeiou")
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(4)
    if kind == 0:  # substitution
        return word[:i] + rng.choice("abcdefghijklmnoprstuvz") + word[i + 1 :]
    if kind == 1:  # deletion
        return word[:i] + word[i + 1 :]
    if kind == 2:  # insertion
        return word[:i] + rng.choice("aeiourlns") + word[i:]
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]  # transposition


def _perturbed(rng: random.Random, c: RawContact, new_id: UUID, emails: set[str]) -> RawContact:
    dup = evolve(c, id=new_id)
    email_changed = False
    kinds = [
        "typo",
        "swap",
        "accents",
        "email_case",
        "plus",
        "phone_format",
        "drop",
        "case",
        "other_email",
    ]
    for kind in rng.sample(kinds, rng.choice((1, 2, 2, 3))):
        if kind == "typo":
            if rng.random() < 0.5:
                dup = evolve(dup, first_name=_typo(rng, dup.first_name))
            else:
                dup = evolve(dup, last_name=_typo(rng, dup.last_name))
        elif kind == "swap":
            dup = evolve(dup, first_name=dup.last_name, last_name=dup.first_name)
        elif kind == "accents":
            dup = evolve(dup, first_name=_ascii(dup.first_name), last_name=_ascii(dup.last_name))
        elif kind == "case":
            dup = evolve(dup, first_name=dup.first_name.upper(), last_name=dup.last_name.upper())
        elif kind == "email_case" and dup.email:
            local, _, domain = dup.email.partition("@")
            dup = evolve(dup, email=f"{local.title()}@{domain.upper()}")
        elif kind == "plus" and dup.email and not email_changed:
            local, _, domain = dup.email.partition("@")
            dup = evolve(dup, email=f"{local}+{rng.choice(('crm', 'news', 'work'))}@{domain}")
        elif kind == "phone_format" and dup.phones:
            digits = dup.phones[0].replace(" ", "")[-9:]
            dup = evolve(dup, phones=(_written(digits, rng.randrange(6)), *dup.phones[1:]))
        elif kind == "other_email" and dup.email and dup.phones:  # a personal address
            stem = c.email.partition("@")[0] if c.email else ""
            email = None
            while email is None or email in emails:
                email = f"{stem}{rng.randrange(10, 100)}@{rng.choice(_MAIL_DOMAINS)}"
            emails.add(email)
            dup = evolve(dup, email=email)
            email_changed = True
        elif kind == "drop":  # leave out the e-mail or the mobile, never both
            if dup.email and dup.phones and rng.random() < 0.5:
                dup = evolve(dup, email=None)
            elif dup.email and dup.phones and not email_changed:
                dup = evolve(dup, phones=dup.phones[1:])
    return dup


def planted_contacts(n: int = 100_000, *, rate: float = 0.05, seed: int = 2026) -> PlantedBook:
    """``n`` contacts of which ``rate`` are planted near-duplicates of others.

    The same ``n``, ``rate`` and ``seed`` give the same book.  Every original
    person is distinct (own e-mail address, own mobile); about 8% share an
    organization's switchboard number with colleagues; names repeat.  Each
    planted duplicate copies one original (no original is copied twice) with
    one to three of: a typo in a name, first and last name swapped, accents
    dropped, names in capitals, the e-mail in another case or with a ``+tag``,
    the mobile written another way, the e-mail or the mobile left out, another
    e-mail address (when the mobile is kept).
    """
    rng = random.Random(seed)
    first = _zipf(rng, _FIRST)
    last = _zipf(rng, _LAST)
    planted = round(n * rate)
    originals = n - planted
    organizations = max(1, originals // 6)
    switchboards = {  # landline ranges that are all valid numbers
        org: f"{rng.choice(('91', '93', '95', '96'))}{rng.randrange(10**7):07d}"
        for org in range(organizations)
    }
    mobiles: set[str] = set()
    emails: set[str] = set()
    people: list[RawContact] = []
    for _ in range(originals):
        given = first()
        surname = f"{last()} {last()}" if rng.random() < 0.5 else last()
        organization = rng.randrange(organizations) if rng.random() < 0.7 else None
        has_email = rng.random() < 0.9
        email = None
        if has_email:
            stem = f"{_ascii(given).lower()}.{_ascii(surname.split()[0]).lower()}"
            while email is None or email in emails:
                suffix = str(rng.randrange(1000)) if email is not None or rng.random() < 0.5 else ""
                email = f"{stem}{suffix}@{rng.choice(_MAIL_DOMAINS)}"
            emails.add(email)
        phones: list[str] = []
        if not has_email or rng.random() < 0.85:
            phones.append(_written(_mobile(rng, mobiles), rng.choice((0, 0, 1, 2))))
        if organization is not None and rng.random() < 0.12:
            phones.append(_written(switchboards[organization], 1))
        people.append(
            RawContact(
                UUID(int=rng.getrandbits(128)), given, surname, email, tuple(phones), organization
            )
        )
    pairs: set[frozenset[UUID]] = set()
    copies: list[RawContact] = []
    for original in rng.sample(people, planted):
        copy = _perturbed(rng, original, UUID(int=rng.getrandbits(128)), emails)
        copies.append(copy)
        pairs.add(frozenset((original.id, copy.id)))
    contacts = people + copies
    rng.shuffle(contacts)
    return PlantedBook(tuple(contacts), frozenset(pairs))
