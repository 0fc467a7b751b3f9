"""The one cattrs converter: crmkit types to and from JSON-ready data.

Serialization lives at the edges (stores, import/export, plugins' payloads),
never in core.  The rules:

* datetimes are ISO 8601 strings and must carry a timezone;
* ``Decimal`` is a string (``"12.50"``), never a float; NaN and infinities are refused;
* UUIDs (every ``*Id``) are canonical strings;
* enums by value; sets as sorted lists; e-mails and phones as their text;
* ``Money`` is ``{"amount": "12.50", "currency": "EUR"}``;
* custom field values are an object of JSON values, the non-text strings
  named in ``"$types"`` (:mod:`crmkit.core.custom_fields`);
* a segment's criteria tree is tagged by ``"op"`` (``{"op": "eq", "field":
  "lifecycle", "value": "customer"}``); a filter value that JSON cannot tell
  apart from text is tagged by its type (``{"uuid": "..."}``, ``{"date":
  "..."}``, ``{"datetime": "..."}``, ``{"decimal": "..."}``, ``{"money": {...}}``);
* a rule's trigger is ``{"kind": "stage_changed", "stage": "negotiation",
  "pipeline": null, "every_minutes": null}``, each action ``{"kind":
  "plan_interaction", "params": {...}}`` (JSON scalars only);
* unknown keys, missing keys and wrong types are refused.

:meth:`CrmConverter.structure` raises only :class:`crmkit.ValidationError`,
whose ``field`` is the path of the offending value (``"emails[1]"``,
``"addresses[0].country"``): never a raw cattrs, attrs or ``TypeError``.

.. versionadded:: 0.1
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final, TypeVar, get_args, get_origin
from uuid import UUID

import cattrs
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
)

from crmkit.core.automation import Action, Trigger
from crmkit.core.contact_points import EmailAddress, PhoneNumber
from crmkit.core.custom_fields import CustomValues, custom_from_json, custom_to_json
from crmkit.core.errors import ValidationError
from crmkit.core.money import Money
from crmkit.core.query import Contains, Eq, Has, In, Range
from crmkit.core.segments import (
    CRITERIA_TYPES,
    And,
    Criteria,
    NoInteraction,
    Not,
    OpenedEmail,
    OpenOpportunity,
    Or,
    WonValue,
)

__all__ = [
    "CrmConverter",
    "converter",
    "make_converter",
    "structure_criteria",
    "unstructure_criteria",
]

T = TypeVar("T")


def _type_error(expected: str, value: object) -> ValidationError:
    return ValidationError(
        "", f"must be {expected}, not {type(value).__name__}", code="type", value=value
    )


def _strict(expected: type, label: str) -> Callable[[object, type], Any]:
    def structure(value: object, _: type) -> Any:
        if isinstance(value, bool) and expected is not bool:
            raise _type_error(label, value)
        if not isinstance(value, expected):
            raise _type_error(label, value)
        return value

    return structure


def _structure_datetime(value: object, _: type) -> datetime:
    if isinstance(value, datetime):
        result = value
    elif isinstance(value, str):
        try:
            result = datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError(
                "", "is not an ISO 8601 datetime", code="datetime", value=value
            ) from None
    else:
        raise _type_error("an ISO 8601 string", value)
    if result.tzinfo is None or result.utcoffset() is None:
        raise ValidationError("", "must be timezone-aware", code="naive_datetime", value=value)
    return result


def _structure_date(value: object, _: type) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValidationError("", "is not an ISO 8601 date", code="date", value=value)


def _structure_decimal(value: object, _: type) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise _type_error("a decimal string", value)
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise ValidationError("", "is not a decimal number", code="decimal", value=value) from None
    if not result.is_finite():
        raise ValidationError("", "must be a finite number", code="not_finite", value=value)
    return result


def _structure_uuid(value: object, _: type) -> UUID:
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            pass
    raise ValidationError("", "is not a UUID", code="uuid", value=value)


def _bare(exc: ValidationError) -> ValidationError:
    """A value object's own error, placed at the path of the value itself."""
    return ValidationError("", exc.reason, code=exc.code, value=exc.value)


def _structure_email(value: object, _: type) -> EmailAddress:
    if not isinstance(value, str):
        raise _type_error("text", value)
    try:
        return EmailAddress(value)
    except ValidationError as exc:
        raise _bare(exc) from None


def _structure_phone(value: object, _: type) -> PhoneNumber:
    if not isinstance(value, str):
        raise _type_error("text", value)
    try:
        return PhoneNumber(value)
    except ValidationError as exc:
        raise _bare(exc) from None


def _structure_money(value: object, _: type) -> Money:
    if not isinstance(value, dict):
        raise _type_error('an object {"amount": ..., "currency": ...}', value)
    extra = set(value) - {"amount", "currency"}
    if extra:
        raise ValidationError(
            sorted(map(str, extra))[0], "is not a field of Money", code="unknown_field"
        )
    for key in ("amount", "currency"):
        if key not in value:
            raise ValidationError(key, "is required", code="required")
    amount = value["amount"]
    if isinstance(amount, bool) or not isinstance(amount, str | int | Decimal):
        raise ValidationError("amount", "must be a decimal string", code="type", value=amount)
    return Money(amount, value["currency"])


def _unstructure_money(value: Money) -> dict[str, str]:
    return {"amount": str(value.amount), "currency": value.currency}


def _is_collection(t: Any) -> bool:
    origin = get_origin(t)
    if origin is frozenset:
        return True
    args = get_args(t)
    return origin is tuple and len(args) == 2 and args[1] is Ellipsis


class CrmConverter(cattrs.Converter):
    """A cattrs converter whose ``structure`` raises only :class:`ValidationError`."""

    def structure(self, obj: Any, cl: type[T]) -> T:
        """Structure ``obj`` into ``cl``.

        Raises:
            ValidationError: with the path of the first offending value in ``field``.
        """
        try:
            return super().structure(obj, cl)
        except Exception as exc:
            raise _translate(exc, "") from None

    def _structure_collection(self, t: Any) -> Callable[[object, type], Any]:
        item_type = get_args(t)[0]
        build: Callable[[list[Any]], Any] = frozenset if get_origin(t) is frozenset else tuple
        item_hook = self.get_structure_hook(item_type)

        def structure(value: object, _: type) -> Any:
            if isinstance(value, str | bytes | dict) or not isinstance(
                value, list | tuple | set | frozenset
            ):
                raise _type_error("a list", value)
            items = []
            for i, item in enumerate(value):
                try:
                    items.append(item_hook(item, item_type))
                except Exception as exc:
                    raise _translate(exc, f"[{i}]") from None
            return build(items)

        return structure


def _translate(exc: BaseException, path: str) -> ValidationError:
    if isinstance(exc, ValidationError):
        return exc.at(path)
    if isinstance(exc, ForbiddenExtraKeysError):
        extra = sorted(map(str, exc.extra_fields))[0]
        return ValidationError(_join(path, extra), "is not a known field", code="unknown_field")
    if isinstance(exc, ClassValidationError):
        with_notes, without = exc.group_exceptions()
        if with_notes:
            sub, note = with_notes[0]
            return _translate(sub, _join(path, note.name))
        return _translate(without[0], path)
    if isinstance(exc, IterableValidationError):
        indexed, rest = exc.group_exceptions()
        if indexed:
            sub, index_note = indexed[0]
            return _translate(sub, f"{path}[{index_note.index}]")
        return _translate(rest[0], path)
    if isinstance(exc, KeyError):
        return ValidationError(path, "is required", code="required")
    if isinstance(exc, ValueError):
        return ValidationError(path, "has an invalid value", code="invalid")
    return ValidationError(path, "has the wrong type or shape", code="type")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _structure_enum(value: object, cl: type[enum.Enum]) -> enum.Enum:
    try:
        return cl(value)
    except ValueError:
        choices = ", ".join(str(m.value) for m in cl)
        raise ValidationError(
            "", f"must be one of: {choices}", code="choice", value=value
        ) from None


# ------------------------------------------------------------ criteria trees


def _unstructure_value(value: object) -> object:
    """A filter value in JSON form, tagged when JSON text could not tell its type."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, EmailAddress):
        return value.value
    if isinstance(value, PhoneNumber):
        return value.e164
    if isinstance(value, UUID):
        return {"uuid": str(value)}
    if isinstance(value, datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    if isinstance(value, Money):
        return {"money": _unstructure_money(value)}
    raise ValidationError("value", "cannot be stored in a criteria tree", code="type", value=value)


_VALUE_TAGS: Final[dict[str, Callable[[object, type], Any]]] = {
    "uuid": _structure_uuid,
    "datetime": _structure_datetime,
    "date": _structure_date,
    "decimal": _structure_decimal,
    "money": _structure_money,
}


def _structure_value(value: object) -> object:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((tag, raw),) = value.items()
        build = _VALUE_TAGS.get(tag)
        if build is not None:
            try:
                return build(raw, object)
            except ValidationError as exc:
                raise exc.at(tag) from None
    raise ValidationError("", "is not a filter value", code="type", value=value)


def unstructure_criteria(node: Criteria) -> dict[str, Any]:
    """A criteria tree in its tagged JSON form."""
    if isinstance(node, Eq):
        return {"op": "eq", "field": node.field, "value": _unstructure_value(node.value)}
    if isinstance(node, In):
        return {
            "op": "in",
            "field": node.field,
            "values": [_unstructure_value(v) for v in node.values],
        }
    if isinstance(node, Range):
        return {
            "op": "range",
            "field": node.field,
            "low": _unstructure_value(node.low),
            "high": _unstructure_value(node.high),
            "include_high": node.include_high,
        }
    if isinstance(node, Contains):
        return {"op": "contains", "field": node.field, "text": node.text}
    if isinstance(node, Has):
        return {"op": "has", "field": node.field, "value": _unstructure_value(node.value)}
    if isinstance(node, And | Or):
        op = "and" if isinstance(node, And) else "or"
        return {"op": op, "parts": [unstructure_criteria(p) for p in node.parts]}
    if isinstance(node, Not):
        return {"op": "not", "part": unstructure_criteria(node.part)}
    if isinstance(node, NoInteraction):
        return {"op": "no_interaction", "days": node.days}
    if isinstance(node, WonValue):
        return {
            "op": "won_value",
            "at_least": _unstructure_money(node.at_least),
            "start": node.start.isoformat(),
            "end": node.end.isoformat(),
        }
    if isinstance(node, OpenOpportunity):
        return {"op": "open_opportunity", "stage": node.stage, "pipeline": node.pipeline}
    if isinstance(node, OpenedEmail):
        return {
            "op": "opened_email",
            "campaign": str(node.campaign),
            "start": None if node.start is None else node.start.isoformat(),
            "end": None if node.end is None else node.end.isoformat(),
        }
    raise ValidationError("", "is not a criteria tree", code="type", value=node)


#: each tag's node: its fields and how to build it from them
_OPS: Final[dict[str, tuple[tuple[str, ...], Callable[[dict[str, Any]], Criteria]]]] = {
    "eq": (("field", "value"), lambda d: Eq(_text(d["field"]), _structure_value(d["value"]))),
    "in": (
        ("field", "values"),
        lambda d: In(_text(d["field"]), [_structure_value(v) for v in _list(d["values"])]),
    ),
    "range": (
        ("field", "low", "high", "include_high"),
        lambda d: Range(
            _text(d["field"]),
            _structure_value(d["low"]),
            _structure_value(d["high"]),
            _strict(bool, "true or false")(d["include_high"], bool),
        ),
    ),
    "contains": (("field", "text"), lambda d: Contains(_text(d["field"]), _text(d["text"]))),
    "has": (("field", "value"), lambda d: Has(_text(d["field"]), _structure_value(d["value"]))),
    "and": (("parts",), lambda d: And(*_tree_list(d["parts"]))),
    "or": (("parts",), lambda d: Or(*_tree_list(d["parts"]))),
    "not": (("part",), lambda d: Not(_tree(d["part"], "part"))),
    "no_interaction": (
        ("days",),
        lambda d: NoInteraction(_strict(int, "an integer")(d["days"], int)),
    ),
    "won_value": (
        ("at_least", "start", "end"),
        lambda d: WonValue(
            _structure_money(d["at_least"], Money),
            _structure_datetime(d["start"], datetime),
            _structure_datetime(d["end"], datetime),
        ),
    ),
    "open_opportunity": (
        ("stage", "pipeline"),
        lambda d: OpenOpportunity(
            _text(d["stage"]), None if d["pipeline"] is None else _text(d["pipeline"])
        ),
    ),
    "opened_email": (
        ("campaign", "start", "end"),
        lambda d: OpenedEmail(
            _structure_uuid(d["campaign"], UUID),  # type: ignore[arg-type]
            None if d["start"] is None else _structure_datetime(d["start"], datetime),
            None if d["end"] is None else _structure_datetime(d["end"], datetime),
        ),
    ),
}


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise _type_error("text", value)
    return value


def _list(value: object) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise _type_error("a list", value)
    return list(value)


def _tree_list(value: object) -> list[Criteria]:
    return [_tree(v, f"parts[{i}]") for i, v in enumerate(_list(value))]


def _tree(value: object, path: str) -> Criteria:
    try:
        return structure_criteria(value)
    except ValidationError as exc:
        raise exc.at(path) from None


def structure_criteria(data: object) -> Criteria:
    """The criteria tree of its tagged JSON form.

    Raises:
        ValidationError: an unknown ``op``, a missing or unknown key, a wrong type.
    """
    if not isinstance(data, dict):
        raise _type_error("an object", data)
    op = data.get("op")
    found = _OPS.get(op) if isinstance(op, str) else None
    if found is None:
        raise ValidationError("op", f"must be one of: {', '.join(_OPS)}", code="choice", value=op)
    names, build = found
    extra = set(data) - {"op", *names}
    if extra:
        raise ValidationError(
            sorted(map(str, extra))[0], "is not a known field", code="unknown_field"
        )
    for name in names:
        if name not in data:
            raise ValidationError(name, "is required", code="required")
    try:
        return build(data)
    except ValidationError:
        raise
    except Exception as exc:  # an attrs converter's own error
        raise _translate(exc, "") from None


def _is_criteria(t: Any) -> bool:
    return t is Criteria or t in CRITERIA_TYPES


def make_converter() -> CrmConverter:
    """A fresh converter with crmkit's rules (plugins may extend their own copy)."""
    c = CrmConverter(forbid_extra_keys=True)
    c.register_structure_hook(str, _strict(str, "text"))
    c.register_structure_hook(int, _strict(int, "an integer"))
    c.register_structure_hook(bool, _strict(bool, "true or false"))
    c.register_structure_hook(datetime, _structure_datetime)
    c.register_unstructure_hook(datetime, datetime.isoformat)
    c.register_structure_hook(date, _structure_date)
    c.register_unstructure_hook(date, date.isoformat)
    c.register_structure_hook(Decimal, _structure_decimal)
    c.register_unstructure_hook(Decimal, str)
    c.register_structure_hook(UUID, _structure_uuid)
    c.register_unstructure_hook(UUID, str)
    c.register_structure_hook(EmailAddress, _structure_email)
    c.register_unstructure_hook(EmailAddress, lambda e: e.value)
    c.register_structure_hook(PhoneNumber, _structure_phone)
    c.register_unstructure_hook(PhoneNumber, lambda p: p.e164)
    c.register_structure_hook(Money, _structure_money)
    c.register_unstructure_hook(Money, _unstructure_money)
    c.register_structure_hook(CustomValues, lambda v, _: custom_from_json(v))
    c.register_unstructure_hook(CustomValues, custom_to_json)
    c.register_structure_hook_func(
        lambda t: isinstance(t, type) and issubclass(t, enum.Enum), _structure_enum
    )
    c.register_structure_hook_factory(_is_collection, c._structure_collection)
    c.register_unstructure_hook_func(_is_criteria, unstructure_criteria)
    c.register_unstructure_hook(Trigger, _unstructure_trigger)
    c.register_structure_hook(Trigger, _structure_trigger)
    c.register_unstructure_hook(Action, _unstructure_action)
    c.register_structure_hook(Action, _structure_action)
    c.register_structure_hook_func(_is_criteria, _structure_criteria_as)
    c.register_unstructure_hook_func(
        lambda t: get_origin(t) is frozenset or t is frozenset,  # type: ignore[comparison-overlap]
        lambda s: sorted((c.unstructure(v) for v in s), key=str),
    )
    return c


def _unstructure_trigger(trigger: Trigger) -> dict[str, Any]:
    return {
        "kind": trigger.kind.value,
        "stage": trigger.stage,
        "pipeline": trigger.pipeline,
        "every_minutes": trigger.every_minutes,
    }


_TRIGGER_KEYS: Final = frozenset({"kind", "stage", "pipeline", "every_minutes"})


def _structure_trigger(data: object, _: type) -> Trigger:
    if not isinstance(data, dict):
        raise _type_error("an object", data)
    unknown = set(data) - _TRIGGER_KEYS
    if unknown:
        raise ValidationError(
            sorted(unknown)[0], "is not a trigger field", code="unknown_field", value=data
        )
    if "kind" not in data:
        raise ValidationError("kind", "is required", code="required")
    every = data.get("every_minutes")
    if isinstance(every, bool) or (every is not None and not isinstance(every, int)):
        raise ValidationError("every_minutes", "must be a whole number", code="type", value=every)
    return Trigger(
        data["kind"], stage=data.get("stage"), pipeline=data.get("pipeline"), every_minutes=every
    )


def _unstructure_action(action: Action) -> dict[str, Any]:
    return {"kind": action.kind, "params": dict(action.params)}


def _structure_action(data: object, _: type) -> Action:
    if not isinstance(data, dict):
        raise _type_error("an object", data)
    unknown = set(data) - {"kind", "params"}
    if unknown:
        raise ValidationError(
            sorted(unknown)[0], "is not an action field", code="unknown_field", value=data
        )
    if "kind" not in data:
        raise ValidationError("kind", "is required", code="required")
    return Action(data["kind"], data.get("params", {}))


def _structure_criteria_as(data: object, cl: Any) -> Criteria:
    node = structure_criteria(data)
    if cl in CRITERIA_TYPES and not isinstance(node, cl):
        raise ValidationError("op", f"must be a {cl.__name__}", code="type", value=data)
    return node


#: The converter crmkit uses everywhere.
converter = make_converter()
