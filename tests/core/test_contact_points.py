"""E-mail addresses, phone numbers and postal addresses: normalized values or a named error."""

from __future__ import annotations

import pickle
from typing import Any

import attrs
import phonenumbers
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from crmkit import Address, AddressKind, EmailAddress, PhoneNumber, ValidationError
from crmkit.core.contact_points import is_country, normalize_text
from tests.strategies import (
    aimed_garbage,
    any_garbage,
    email_addresses,
    emails,
    garbage,
    phone_texts,
    starting_points,
    valid_or_rejected_at,
)

# ------------------------------------------------------------------ e-mail


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (" Ana@ACME.es ", "Ana@acme.es"),
        ("ana.perez+crm@Acme.ES", "ana.perez+crm@acme.es"),
        ("user@xn--espaa-rta.es", "user@españa.es"),
        ("josé@acme.es", "josé@acme.es"),
    ],
)
def test_email_addresses_are_normalized(text: str, expected: str) -> None:
    """The domain is lower-cased (and IDNA-decoded); the local part keeps its case."""
    assert expected == EmailAddress(text).value
    assert expected == str(EmailAddress.parse(text))


def test_email_match_key_ignores_case() -> None:
    """Two spellings of one mailbox share a match key."""
    assert EmailAddress("ANA@acme.es").match_key == EmailAddress("ana@ACME.ES").match_key
    assert "acme.es" == EmailAddress("ana@ACME.ES").domain


@pytest.mark.parametrize(
    "text", ["", "ana", "ana@", "@acme.es", "a b@acme.es", "ana@acme", "a..b@acme.es", "a@b@c.es"]
)
def test_invalid_email_addresses_are_rejected(text: str) -> None:
    """Text that is not an address raises with field ``email`` and code ``invalid_email``."""
    with pytest.raises(ValidationError) as info:
        EmailAddress(text)
    assert ("email", "invalid_email") == (info.value.field, info.value.code)
    assert text == info.value.value


@pytest.mark.parametrize("size", [1_001, 1_000_000])
def test_huge_email_input_is_rejected_before_parsing(size: int) -> None:
    """Input far beyond the 254 characters of an address is refused as too long."""
    with pytest.raises(ValidationError) as info:
        EmailAddress("a" * size + "@acme.es")
    assert ("email", "invalid_email", "is too long") == (
        info.value.field,
        info.value.code,
        info.value.reason,
    )


@given(email_addresses)
def test_email_normalization_is_idempotent(email: EmailAddress) -> None:
    """Normalizing a normalized address changes nothing; it pickles by value."""
    assert email == EmailAddress(email.value)
    assert email == pickle.loads(pickle.dumps(email))


# ------------------------------------------------------------------- phone


@settings(max_examples=300)
@given(phone_texts())
def test_phone_numbers_parse_from_national_and_international_text(
    case: tuple[str, str, str],
) -> None:
    """A national number read for its region equals the E.164 form of the same number."""
    region, e164, national = case
    number = PhoneNumber(e164)
    assert e164 == number.e164 == str(number)
    assert number == PhoneNumber.parse(national, region=region)
    assert number == PhoneNumber.parse(number.international())
    assert number == PhoneNumber(number.international())
    assert number.region is not None


def test_spanish_numbers_read_with_the_default_region() -> None:
    """``911 23 45 67`` in Spain is ``+34911234567``."""
    number = PhoneNumber.parse("911 23 45 67", region="ES")
    assert "+34911234567" == number.e164
    assert "ES" == number.region
    assert "+34 911 23 45 67" == number.international()


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("abc", "unparseable"),
        ("+1", "unparseable"),
        ("911234567", "unparseable"),  # national, and no region given
        ("+34 12", "impossible"),
        ("+34 911 23 45 67 89 01", "impossible"),
        ("+34 999 999 999", "invalid"),
        ("+" + "9" * 70, "unparseable"),
    ],
)
def test_bad_phone_numbers_say_why(text: str, code: str) -> None:
    """Unparseable, impossible (wrong length) and invalid (not in the plan) are told apart."""
    with pytest.raises(ValidationError) as info:
        PhoneNumber(text)
    assert ("phone", code) == (info.value.field, info.value.code)


@pytest.mark.parametrize("region", ["XX", "es", "ESP", "", "EU"])
def test_parse_rejects_unknown_regions(region: str) -> None:
    """The default region must be an ISO 3166 country code."""
    with pytest.raises(ValidationError) as info:
        PhoneNumber.parse("911234567", region=region)
    assert ("region", "country") == (info.value.field, info.value.code)


# ----------------------------------------------------------------- address


def test_address_country_is_upper_cased_and_checked() -> None:
    """``country`` is an ISO 3166 code; lower case is accepted and normalized."""
    address = Address(street=" Calle Mayor 1 ", city="Madrid", country=" es ", kind="billing")
    assert ("Calle Mayor 1", "ES", AddressKind.BILLING) == (
        address.street,
        address.country,
        address.kind,
    )
    with pytest.raises(ValidationError) as info:
        Address(country="XX")
    assert ("country", "country") == (info.value.field, info.value.code)


def test_address_parts_are_optional() -> None:
    """An empty address is a valid main address."""
    assert Address(kind=AddressKind.MAIN) == Address()


@pytest.mark.parametrize(
    ("values", "field", "code"),
    [
        ({"postal_code": "1" * 33}, "postal_code", "too_long"),
        ({"city": 28013}, "city", "type"),
        ({"kind": "home"}, "kind", "choice"),
        ({"street": "a\x00"}, "street", "control_chars"),
    ],
)
def test_bad_address_parts_name_the_field(values: dict[str, Any], field: str, code: str) -> None:
    """Each part is checked and named in the error."""
    with pytest.raises(ValidationError) as info:
        Address(**values)
    assert (field, code) == (info.value.field, info.value.code)


def test_is_country_knows_iso_codes_only() -> None:
    """Real countries yes; pseudo-territories and non-strings no."""
    assert is_country("ES")
    assert is_country("PT")
    assert not is_country("EU")
    assert not is_country("ZZ")
    assert not is_country(None)


def test_normalize_text_rejects_non_text() -> None:
    """``normalize_text`` names the field it was given."""
    with pytest.raises(ValidationError) as info:
        normalize_text(12, "notes")
    assert ("notes", "type") == (info.value.field, info.value.code)
    assert normalize_text("  ", "notes") is None


# --------------------------------------------------------- malformed input


@st.composite
def _mangled(draw: st.DrawFn, valid: st.SearchStrategy[str]) -> str:
    """A valid text with one character inserted, replaced or removed."""
    text = draw(valid)
    index = draw(st.integers(0, len(text)))
    char = draw(st.characters())
    how = draw(st.sampled_from(["insert", "replace", "remove"]))
    if how == "insert":
        return text[:index] + char + text[index:]
    if how == "replace":
        return text[:index] + char + text[index + 1 :]
    return text[:index] + text[index + 1 :]


_bad_emails: st.SearchStrategy[object] = st.one_of(
    garbage, aimed_garbage("email"), _mangled(emails())
)
_bad_phones: st.SearchStrategy[object] = st.one_of(
    garbage, aimed_garbage("e164"), _mangled(phone_texts().map(lambda t: t[1]))
)


def _outcome(result: object) -> None:
    event("accepted" if result is not None else "rejected")


@settings(max_examples=1000)
@given(_bad_emails)
def test_malformed_email_input_raises_only_validation_error(value: object) -> None:
    """1,000 bad inputs to ``EmailAddress(...)``: valid, or ValidationError at ``email``."""
    _outcome(valid_or_rejected_at(lambda: EmailAddress(value), "email"))


@settings(max_examples=1000)
@given(_bad_emails)
def test_malformed_email_parse_input_raises_only_validation_error(value: object) -> None:
    """1,000 bad inputs to ``EmailAddress.parse``: valid, or ValidationError at ``email``."""
    _outcome(valid_or_rejected_at(lambda: EmailAddress.parse(value), "email"))  # type: ignore[arg-type]


@settings(max_examples=1000)
@given(_bad_phones)
def test_malformed_phone_input_raises_only_validation_error(value: object) -> None:
    """1,000 bad inputs to ``PhoneNumber(...)``: valid, or ValidationError at ``phone``."""
    _outcome(valid_or_rejected_at(lambda: PhoneNumber(value), "phone"))


@settings(max_examples=1000)
@given(case=phone_texts(), data=st.data())
def test_malformed_phone_parse_input_raises_only_validation_error(
    case: tuple[str, str, str], data: st.DataObject
) -> None:
    """1,000 bad texts or regions to ``PhoneNumber.parse``: valid, or rejected at that argument."""
    region, e164, national = case
    if data.draw(st.booleans(), label="bad region"):
        bad_region = data.draw(any_garbage("region"), label="region")
        result = valid_or_rejected_at(
            lambda: PhoneNumber.parse(e164, region=bad_region),  # type: ignore[arg-type]
            "region",
        )
    else:
        text = data.draw(_bad_phones | _mangled(st.just(national)), label="text")
        result = valid_or_rejected_at(
            lambda: PhoneNumber.parse(text, region=region),  # type: ignore[arg-type]
            "phone",
        )
    _outcome(result)


@settings(max_examples=1000)
@given(base=starting_points(Address), data=st.data())
def test_malformed_address_input_raises_only_validation_error(
    base: Address, data: st.DataObject
) -> None:
    """1,000 bad keyword values to ``Address(...)``: valid, or rejected at that keyword."""
    kwargs = attrs.asdict(base, recurse=False)
    key = data.draw(st.sampled_from(sorted(kwargs)), label="key")
    kwargs[key] = data.draw(any_garbage(key), label="value")
    result = valid_or_rejected_at(lambda: Address(**kwargs), key)
    _outcome(result)
    if result is not None:
        assert result == Address(**attrs.asdict(result, recurse=False))


def _checked_in_the_library_order(text: str, region: str | None) -> str:
    """A phone's outcome checking possible, then valid (what the floor does): the code or E.164."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return "unparseable"
    if not phonenumbers.is_possible_number(number):
        return "impossible"
    if not phonenumbers.is_valid_number(number):
        return "invalid"
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


@settings(max_examples=2000)
@given(
    text=st.from_regex(r"\+?[0-9 ]{1,18}", fullmatch=True)
    | st.sampled_from(["34", "1", "44", "49", "52", "54", "351"]).flatmap(
        lambda cc: st.from_regex(rf"\+{cc}[0-9]{{4,14}}", fullmatch=True)
    ),
    region=st.sampled_from([None, "ES", "US", "GB", "MX", "AR", "PT", "DE"]),
)
def test_a_phone_is_refused_for_the_same_reason_as_checking_possible_first(
    text: str, region: str | None
) -> None:
    """Validity is checked first (a valid number is always possible): same outcome."""
    expected = _checked_in_the_library_order(text, region)
    try:
        outcome = PhoneNumber.parse(text, region=region).e164
    except ValidationError as error:
        outcome = error.code
    event(outcome if outcome in ("unparseable", "impossible", "invalid") else "valid")
    assert expected == outcome
