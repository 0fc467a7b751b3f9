"""The one error hierarchy of crmkit.

Every error raised through the public API is a :class:`CrmkitError`.  Each
subclass also inherits the builtin exception with the same meaning (as attrs
does), so ``except ValueError`` keeps working for callers that know nothing of
crmkit.  Errors carry structure (``.field``, ``.entity``, ``.id``...) and build
their message from it; the offending value is kept as an attribute and never
pasted into the message, so it cannot end up raw in markup or logs.

.. versionadded:: 0.1
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AccessDenied",
    "AutomationError",
    "ConcurrencyError",
    "CrmkitError",
    "CurrencyMismatchError",
    "DuplicateError",
    "HookError",
    "InvalidTransition",
    "NotFoundError",
    "PluginError",
    "StorageError",
    "TemplateError",
    "ValidationError",
]


class CrmkitError(Exception):
    """Base class of every error crmkit raises."""


class ValidationError(CrmkitError, ValueError):
    """Input was rejected; nothing was changed.

    Attributes:
        field: dotted path of the offending field (``"emails[1]"``,
            ``"address.country"``); ``""`` when the input as a whole is wrong.
        reason: a human sentence saying what is wrong.
        code: a stable machine-readable code (``"required"``, ``"invalid"``...).
        value: the offending value, kept for programs; never in the message.
    """

    def __init__(self, field: str, reason: str, *, code: str = "invalid", value: Any = None):
        self.field = field
        self.reason = reason
        self.code = code
        self.value = value
        super().__init__(f"{field}: {reason}" if field else reason)

    def at(self, prefix: str) -> ValidationError:
        """Return the same error with its field nested under ``prefix``."""
        if not prefix:
            return self
        if not self.field:
            field = prefix
        elif self.field.startswith("["):
            field = f"{prefix}{self.field}"
        else:
            field = f"{prefix}.{self.field}"
        return type(self)(field, self.reason, code=self.code, value=self.value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_validation_error, (type(self), self.field, self.reason, self.code))


def _rebuild_validation_error(
    cls: type[ValidationError], field: str, reason: str, code: str
) -> ValidationError:
    return cls(field, reason, code=code)


class TemplateError(ValidationError):
    """An e-mail template that cannot be rendered; nothing was saved or sent.

    A :class:`ValidationError` whose ``code`` says why: ``template_syntax``
    (the template does not parse), ``template_variable`` (it names a variable
    or attribute the context lacks), ``template_sandbox`` (it reaches for
    something the sandbox forbids, such as ``__class__``) or
    ``template_render`` (rendering failed otherwise).

    Attributes:
        template: the template's name.
        language: the variant's language.
        part: ``"subject"``, ``"text"`` or ``"html"``.
        line: the template line at fault, when known.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        field: str,
        reason: str,
        *,
        code: str = "template_render",
        value: Any = None,
        template: str | None = None,
        language: str | None = None,
        part: str | None = None,
        line: int | None = None,
    ):
        super().__init__(field, reason, code=code, value=value)
        self.template = template
        self.language = language
        self.part = part
        self.line = line

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_template_error,
            (
                self.field,
                self.reason,
                self.code,
                self.template,
                self.language,
                self.part,
                self.line,
            ),
        )


def _rebuild_template_error(
    field: str,
    reason: str,
    code: str,
    template: str | None,
    language: str | None,
    part: str | None,
    line: int | None,
) -> TemplateError:
    return TemplateError(
        field, reason, code=code, template=template, language=language, part=part, line=line
    )


class CurrencyMismatchError(CrmkitError, ValueError):
    """Two amounts in different currencies were combined without a rate."""

    def __init__(self, left: str, right: str):
        self.left = left
        self.right = right
        super().__init__(f"cannot combine {left} with {right} without an exchange rate")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.left, self.right))


class InvalidTransition(CrmkitError, ValueError):
    """A state change the rules do not allow (e.g. moving a won opportunity)."""

    def __init__(self, entity: str, source: str, target: str, reason: str):
        self.entity = entity
        self.source = source
        self.target = target
        self.reason = reason
        super().__init__(f"{entity}: cannot go from {source!r} to {target!r}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.entity, self.source, self.target, self.reason))


class NotFoundError(CrmkitError, LookupError):
    """No record of that entity type has that id (or key)."""

    def __init__(self, entity: str, id: object):
        self.entity = entity
        self.id = id
        super().__init__(f"{entity} {id} not found")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.entity, self.id))


class DuplicateError(CrmkitError, ValueError):
    """A value that must be unique (``external_ref``, a master key) exists already,
    or a new record looks like one that exists (the duplicate check on create).

    Attributes:
        entity: the entity type.
        field: the unique field; for a likely duplicate, the field that agreed
            most (``"email"``, ``"phone"``, ``"name"``...).
        value: the offending value (never in the message).
        candidates: for a likely duplicate, the
            :class:`~crmkit.core.duplicates.Candidate` pairs (new record,
            existing record) with their probability and reasons, most likely
            first; ``()`` otherwise.
    """

    def __init__(
        self, entity: str, field: str, value: object = None, *, candidates: tuple[Any, ...] = ()
    ):
        self.entity = entity
        self.field = field
        self.value = value
        self.candidates = candidates
        if candidates:
            super().__init__(f"{entity}: probably the same as an existing record ({field} agrees)")
        else:
            super().__init__(f"{entity}: another record has the same {field}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_duplicate_error, (type(self), self.entity, self.field, self.candidates))


def _rebuild_duplicate_error(
    cls: type[DuplicateError], entity: str, field: str, candidates: tuple[Any, ...]
) -> DuplicateError:
    return cls(entity, field, candidates=candidates)


class ConcurrencyError(CrmkitError):
    """The record changed since it was read: reload it and try again.

    Attributes:
        entity: the entity type.
        id: the record's id.
        expected_version: the version the caller had.
        actual_version: the version found, or ``None`` when unknown.
    """

    def __init__(
        self, entity: str, id: object, expected_version: int, actual_version: int | None = None
    ):
        self.entity = entity
        self.id = id
        self.expected_version = expected_version
        self.actual_version = actual_version
        found = "" if actual_version is None else f", found version {actual_version}"
        super().__init__(
            f"{entity} {id} changed concurrently: expected version {expected_version}{found}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.entity, self.id, self.expected_version, self.actual_version))


class AccessDenied(CrmkitError, PermissionError):
    """The current principal may not perform ``action`` on ``entity``."""

    def __init__(self, action: str, entity: str):
        self.action = action
        self.entity = entity
        super().__init__(f"not allowed to {action} {entity}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.action, self.entity))


class HookError(CrmkitError):
    """A plugin hook raised.

    Attributes:
        hook: the hook's name.
        committed: ``True`` when the change had already been committed (the
            hook was a notification fired after commit).
    """

    def __init__(self, hook: str, reason: str, *, committed: bool = False):
        self.hook = hook
        self.reason = reason
        self.committed = committed
        state = " (the change was committed)" if committed else ""
        super().__init__(f"hook {hook} failed: {reason}{state}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_hook_error, (self.hook, self.reason, self.committed))


def _rebuild_hook_error(hook: str, reason: str, committed: bool) -> HookError:
    return HookError(hook, reason, committed=committed)


class PluginError(CrmkitError):
    """A plugin could not be registered or does not match the hook specs."""


class StorageError(CrmkitError):
    """The store failed for a reason that is not the caller's input.

    Attributes:
        retryable: ``True`` for a transient conflict (lock timeout, deadlock,
            serialization failure, SQLite busy): the same work may succeed if
            tried again.  crmkit retries these itself where it owns the whole
            transaction; inside ``crm.transaction()`` the caller decides.
    """

    def __init__(self, message: str, *, retryable: bool = False):
        self.retryable = retryable
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_storage_error, (type(self), str(self), self.retryable))


def _rebuild_storage_error(cls: type[StorageError], message: str, retryable: bool) -> StorageError:
    return cls(message, retryable=retryable)


class AutomationError(CrmkitError):
    """An automation rule's action failed; the firing was undone and recorded.

    Never raised by the write that triggered the rule (that write stays
    committed): it is reported in ``crm.automation.last_report`` (and, for
    rules heard after a commit, in ``crm.last_delivery``).  The original
    exception is its ``__cause__``.

    Attributes:
        rule: the rule's name.
        key: the firing's idempotency key.
        action: the failing action's position in the rule (``None``: the
            failure was not in an action, such as a journal write).
        kind: the failing action's kind (``"plan_interaction"``).
        reason: the original error's type and message.

    .. versionadded:: 0.1
    """

    def __init__(self, rule: str, key: str, action: int | None, kind: str | None, reason: str):
        self.rule = rule
        self.key = key
        self.action = action
        self.kind = kind
        self.reason = reason
        where = "" if action is None else f" in action {action} ({kind})"
        super().__init__(f"an automation rule failed{where}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.rule, self.key, self.action, self.kind, self.reason))
