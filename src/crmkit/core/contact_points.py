"""Value objects for reaching people: e-mail addresses, phone numbers, addresses.

E-mail syntax and normalization come from ``email-validator`` (offline: no DNS
lookups), phone numbers from ``phonenumbers`` (Google's libphonenumber data),
country codes from the CLDR data in Babel.

.. versionadded:: 0.1
"""

from __future__ import annotations

import enum
import re
from functools import lru_cache
from typing import Any, Final

import phonenumbers
from attrs import field, frozen
from babel import Locale
from email_validator import EmailNotValidError, validate_email

from crmkit.core.errors import ValidationError

__all__ = ["Address", "AddressKind", "EmailAddress", "PhoneNumber", "is_country", "normalize_text"]

MAX_TEXT: Final = 500  #: default maximum length of a short text field
#: e-mail input longer than this is refused before parsing (an address has at most 254)
MAX_EMAIL_INPUT: Final = 1000

#: C0 control characters other than tab, newline and carriage return
_CONTROL_CHARS: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def normalize_text(
    value: object, field_name: str, *, required: bool = False, max_length: int = MAX_TEXT
) -> str | None:
    """Strip ``value``; ``""`` becomes ``None``.  Rejects non-strings and overlong text.

    Raises:
        ValidationError: not a string, empty when required, longer than
            ``max_length``, or containing NUL or other control characters.
    """
    if value is None:
        text = ""
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise ValidationError(field_name, "must be text", code="type", value=value)
    if not text:
        if required:
            raise ValidationError(field_name, "is required", code="required", value=value)
        return None
    if len(text) > max_length:
        raise ValidationError(
            field_name, f"is longer than {max_length} characters", code="too_long", value=value
        )
    if _CONTROL_CHARS.search(text):
        raise ValidationError(
            field_name, "contains control characters", code="control_chars", value=value
        )
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: no database can store them
            raise ValidationError(
                field_name, "is not valid Unicode text", code="encoding", value=value
            ) from None
    return text


# ---------------------------------------------------------------- e-mail


def _normalize_email(value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError("email", "must be text", code="type", value=value)
    if len(value) > MAX_EMAIL_INPUT:  # email-validator's parser is slow on huge input
        raise ValidationError("email", "is too long", code="invalid_email", value=value)
    return _normalize_email_text(value)


@lru_cache(maxsize=4096)
def _normalize_email_text(value: str) -> str:
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValidationError("email", str(exc), code="invalid_email", value=value) from None
    return str(result.normalized)


@frozen
class EmailAddress:
    """A syntactically valid e-mail address, normalized (domain lower-cased, IDNA).

    ``EmailAddress(" Ana@ACME.es ")`` normalizes to ``"Ana@acme.es"``; the
    local part keeps its case, as RFC 5321 requires.  :attr:`match_key` is the
    fully case-folded form used to find duplicates.

    Raises:
        ValidationError: ``field == "email"``, code ``invalid_email``.
    """

    value: str = field(converter=_normalize_email)

    @classmethod
    def parse(cls, text: str) -> EmailAddress:
        """Validate and normalize ``text``."""
        return cls(text)

    @property
    def domain(self) -> str:
        """The part after ``@``."""
        return self.value.rpartition("@")[2]

    @property
    def match_key(self) -> str:
        """The address case-folded, for duplicate matching."""
        return self.value.casefold()

    def __str__(self) -> str:
        return self.value


# ------------------------------------------------------------------ phone

_PHONE_REASONS: Final = {
    "unparseable": "could not be read as a phone number",
    "impossible": "has the wrong number of digits for its country",
    "invalid": "is not a number in use in its country's numbering plan",
}


def _phone_error(reason: str, value: object) -> ValidationError:
    return ValidationError("phone", _PHONE_REASONS[reason], code=reason, value=value)


def _parse_phone(value: object, region: str | None) -> str:
    if not isinstance(value, str):
        raise ValidationError("phone", "must be text", code="type", value=value)
    if len(value) > 64:
        raise _phone_error("unparseable", value)
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        raise _phone_error("unparseable", value) from None
    # A valid number is a possible one (its type's lengths are among its
    # country's): the length check only names why an invalid number fails.
    if not phonenumbers.is_valid_number(number):
        reason = "invalid" if phonenumbers.is_possible_number(number) else "impossible"
        raise _phone_error(reason, value)
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def _canonical_e164(value: object) -> str:
    return _parse_phone(value, None)


@frozen
class PhoneNumber:
    """A valid phone number in E.164 form (``+34911234567``).

    Build one with :meth:`parse`, which reads national formats given a default
    region.  Errors carry ``code`` ``unparseable``, ``impossible`` (wrong
    length) or ``invalid`` (not in the numbering plan).
    """

    e164: str = field(converter=_canonical_e164)

    @classmethod
    def parse(cls, text: str, *, region: str | None = None) -> PhoneNumber:
        """Read ``text`` (international, or national for ``region`` such as ``"ES"``).

        Raises:
            ValidationError: with ``field == "phone"`` and the reason code.
        """
        if region is not None and not is_country(region):
            raise ValidationError(
                "region", "is not an ISO 3166 country code", code="country", value=region
            )
        e164 = _parse_phone(text, region)
        number = object.__new__(cls)
        object.__setattr__(number, "e164", e164)  # already canonical: skip a second parse
        return number

    @property
    def region(self) -> str | None:
        """The ISO 3166 region the number belongs to (``"ES"``)."""
        result = phonenumbers.region_code_for_number(phonenumbers.parse(self.e164))
        return str(result) if result else None

    def international(self) -> str:
        """The number formatted for people: ``+34 911 23 45 67``."""
        return str(
            phonenumbers.format_number(
                phonenumbers.parse(self.e164), phonenumbers.PhoneNumberFormat.INTERNATIONAL
            )
        )

    def __str__(self) -> str:
        return self.e164


# ---------------------------------------------------------------- address


@lru_cache(maxsize=1)
def _countries() -> frozenset[str]:
    pseudo = {"ZZ", "EU", "EZ", "UN", "QO", "XA", "XB", "XK"}
    return frozenset(
        code
        for code in Locale("en").territories
        if isinstance(code, str) and len(code) == 2 and code not in pseudo
    )


def is_country(code: object) -> bool:
    """Whether ``code`` is an ISO 3166-1 alpha-2 country code (CLDR data)."""
    return isinstance(code, str) and code in _countries()


class AddressKind(enum.Enum):
    """What an address is for."""

    MAIN = "main"
    BILLING = "billing"
    SHIPPING = "shipping"
    OTHER = "other"


def _country(value: object) -> str | None:
    if value is None:
        return None
    code = value.strip().upper() if isinstance(value, str) else value
    if not is_country(code):
        raise ValidationError(
            "country", "is not an ISO 3166 country code", code="country", value=value
        )
    assert isinstance(code, str)
    return code


def _opt_text(name: str, max_length: int = MAX_TEXT) -> Any:
    def convert(value: object) -> str | None:
        return normalize_text(value, name, max_length=max_length)

    return field(default=None, converter=convert)


def _kind(value: object) -> AddressKind:
    try:
        return AddressKind(value)
    except ValueError:
        raise ValidationError(
            "kind", "is not an address kind", code="choice", value=value
        ) from None


@frozen(kw_only=True)
class Address:
    """A postal address; every part optional, the country an ISO 3166 code."""

    street: str | None = _opt_text("street")
    city: str | None = _opt_text("city", 200)
    region: str | None = _opt_text("region", 200)
    postal_code: str | None = _opt_text("postal_code", 32)
    country: str | None = field(default=None, converter=_country)
    kind: AddressKind = field(default=AddressKind.MAIN, converter=_kind)
