"""Pipelines as data: ordered stages, allowed transitions and their requirements.

A :class:`Pipeline` is plain, frozen data that plugins register
(``crmkit_register_pipelines``).  :func:`check_pipeline` rejects a definition
that could trap an opportunity: a stage no path reaches, a final (won or
lost) stage with exits, an on-hold stage with exits to stages of its own kind.

.. versionadded:: 0.1
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Final

import attrs
from attrs import field, frozen

from crmkit.core.errors import ValidationError
from crmkit.core.fields import KEY_RE, enum_field, text

__all__ = [
    "OPPORTUNITY_FIELDS_REQUIRABLE",
    "Pipeline",
    "Stage",
    "StageKind",
    "check_pipeline",
]


class StageKind(enum.Enum):
    """What a stage means for the opportunity in it."""

    OPEN = "open"  #: still being worked
    WON = "won"  #: closed, the customer bought (final)
    LOST = "lost"  #: closed, no sale (final)
    ON_HOLD = "on_hold"  #: paused; resumes to the stage it left


#: Opportunity fields a stage may require before it is entered.
OPPORTUNITY_FIELDS_REQUIRABLE: Final = frozenset(
    {"amount", "expected_close", "contact_id", "close_reason_id", "owner_id"}
)


def _key(value: object) -> str:
    if not isinstance(value, str) or not KEY_RE.fullmatch(value):
        raise ValidationError(
            "key", "must be 1-64 lower-case letters, digits, '-' or '_'", code="key", value=value
        )
    return value


def _probability(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise ValidationError(
            "probability", "must be a Decimal between 0 and 1", code="type", value=value
        )
    try:
        result = Decimal(value)
    except ArithmeticError:
        raise ValidationError("probability", "is not a number", value=value) from None
    if not result.is_finite() or not Decimal(0) <= result <= Decimal(1):
        raise ValidationError("probability", "must be between 0 and 1", value=value)
    return result


def _requires(value: object) -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValidationError("requires", "must be a list of field names", value=value)
    try:
        names = frozenset(value)
    except TypeError:  # unhashable items (a nested list)
        raise ValidationError(
            "requires", "must be a list of field names", code="type", value=value
        ) from None
    unknown = sorted(str(n) for n in names - OPPORTUNITY_FIELDS_REQUIRABLE)
    if unknown:
        raise ValidationError(
            "requires", f"cannot require {unknown[0]!r}", code="unknown_field", value=value
        )
    return names


@frozen(kw_only=True)
class Stage:
    """One step of a pipeline.

    Attributes:
        key: stable slug (``"proposal"``, ``"presentar-productos"``).
        label: English label; ``label_es`` the Spanish one.
        kind: open, won, lost or on_hold.
        probability: default win probability of opportunities in this stage
            (won stages 1, lost stages 0).
        requires: opportunity fields that must be set to enter the stage.
    """

    key: str = field(converter=_key)
    label: str = text("label", required=True, max_length=200)
    label_es: str = text("label_es", required=True, max_length=200)
    kind: StageKind = enum_field(StageKind, "kind", StageKind.OPEN)
    probability: Decimal = field(default=Decimal(0), converter=_probability)
    requires: frozenset[str] = field(factory=frozenset, converter=_requires)

    @property
    def is_final(self) -> bool:
        """Won and lost stages are final: only ``reopen`` leaves them."""
        return self.kind in (StageKind.WON, StageKind.LOST)

    def label_for(self, language: str = "en") -> str:
        """The label in ``language`` (``"es"`` or ``"en"``)."""
        return self.label_es if language.startswith("es") else self.label


def _stages(value: object) -> tuple[Stage, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValidationError("stages", "must be a list of Stage", value=value)
    stages = tuple(value)
    for i, stage in enumerate(stages):
        if not isinstance(stage, Stage):
            raise ValidationError(f"stages[{i}]", "must be a Stage", code="type", value=stage)
    return stages


def _transitions(value: object) -> frozenset[tuple[str, str]]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValidationError("transitions", "must be a list of (from, to) pairs", value=value)
    pairs: set[tuple[str, str]] = set()
    for i, pair in enumerate(value):
        if (
            not isinstance(pair, tuple | list)
            or len(pair) != 2
            or not all(isinstance(k, str) for k in pair)
        ):
            raise ValidationError(
                f"transitions[{i}]", "must be a (from, to) pair of stage keys", value=pair
            )
        pairs.add((pair[0], pair[1]))
    return frozenset(pairs)


@frozen(kw_only=True, cache_hash=True)  # hashed per deal by analytics caches
class Pipeline:
    """A sales process: ordered stages and the moves allowed between them.

    Attributes:
        key: stable slug (``"sales"``).
        name: English name; ``name_es`` the Spanish one.
        stages: in order; the first open stage is where opportunities start.
        transitions: allowed ``(from, to)`` moves between stage keys.  Holding
            (into an on-hold stage), resuming (back to the stage left) and
            reopening (out of a final stage) follow their own rules and need
            no entry here.
    """

    key: str = field(converter=_key)
    name: str = text("name", required=True, max_length=200)
    name_es: str = text("name_es", required=True, max_length=200)
    stages: tuple[Stage, ...] = field(converter=_stages)
    transitions: frozenset[tuple[str, str]] = field(converter=_transitions)

    def stage(self, key: str) -> Stage:
        """The stage with ``key``.

        Raises:
            ValidationError: the pipeline has no such stage (field ``stage``).
        """
        for stage in self.stages:
            if stage.key == key:
                return stage
        raise ValidationError(
            "stage", f"pipeline {self.key!r} has no such stage", code="stage", value=key
        )

    @property
    def initial(self) -> Stage:
        """The first open stage: where new opportunities start."""
        return next(s for s in self.stages if s.kind is StageKind.OPEN)

    def of_kind(self, kind: StageKind) -> tuple[Stage, ...]:
        """The stages of ``kind``, in order."""
        return tuple(s for s in self.stages if s.kind is kind)

    def allows(self, source: str, target: str) -> bool:
        """Whether the pipeline allows moving from ``source`` to ``target`` directly."""
        return (source, target) in self.transitions

    def evolve(self, **changes: Any) -> Pipeline:
        """A copy with ``changes`` (re-validated)."""
        return check_pipeline(attrs.evolve(self, **changes))


def check_pipeline(pipeline: Pipeline) -> Pipeline:
    """Check a pipeline definition and return it.

    Rules: stage keys are unique; there is at least one open stage; every
    transition names existing stages; every stage is reachable from the
    initial stage (on-hold stages count as reachable from every open stage);
    final stages have no exits; won stages have probability 1 and lost
    stages 0; every open stage can reach a final stage.

    Raises:
        ValidationError: the first rule broken, naming the stage.
    """
    keys = [s.key for s in pipeline.stages]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise ValidationError("stages", f"stage {duplicates[0]!r} appears twice", code="stage")
    if not pipeline.of_kind(StageKind.OPEN):
        raise ValidationError("stages", "needs at least one open stage", code="stage")
    if not pipeline.of_kind(StageKind.WON) or not pipeline.of_kind(StageKind.LOST):
        raise ValidationError("stages", "needs a won and a lost stage", code="stage")
    by_key = {s.key: s for s in pipeline.stages}
    for source, target in sorted(pipeline.transitions):
        if source == target:
            raise ValidationError(
                "transitions", f"a move from {source!r} to itself is not a move", code="stage"
            )
        for k in (source, target):
            if k not in by_key:
                raise ValidationError(
                    "transitions", f"names a stage that does not exist: {k!r}", code="stage"
                )
        if by_key[source].is_final:
            raise ValidationError(
                "transitions", f"final stage {source!r} cannot have exits", code="final"
            )
        if by_key[source].kind is StageKind.ON_HOLD or by_key[target].kind is StageKind.ON_HOLD:
            raise ValidationError(
                "transitions",
                f"on-hold stages are entered by hold() and left by resume(): {source!r} -> "
                f"{target!r}",
                code="on_hold",
            )
    for stage in pipeline.stages:
        expected = {StageKind.WON: Decimal(1), StageKind.LOST: Decimal(0)}.get(stage.kind)
        if expected is not None and stage.probability != expected:
            raise ValidationError(
                "stages", f"stage {stage.key!r} must have probability {expected}", code="stage"
            )
    reachable = _reachable(pipeline, pipeline.initial.key)
    for stage in pipeline.stages:
        if stage.kind is not StageKind.ON_HOLD and stage.key not in reachable:
            raise ValidationError(
                "stages", f"stage {stage.key!r} cannot be reached", code="unreachable"
            )
    finals = {s.key for s in pipeline.stages if s.is_final}
    for stage in pipeline.of_kind(StageKind.OPEN):
        if not (_reachable(pipeline, stage.key) & finals):
            raise ValidationError(
                "stages", f"stage {stage.key!r} cannot reach a final stage", code="dead_end"
            )
    return pipeline


def _reachable(pipeline: Pipeline, start: str) -> set[str]:
    seen = {start}
    queue = deque([start])
    while queue:
        current = queue.popleft()
        for source, target in pipeline.transitions:
            if source == current and target not in seen:
                seen.add(target)
                queue.append(target)
    return seen
