"""The opportunity state machine: pure functions that move an opportunity.

Each function takes the opportunity as it is and the pipeline it lives in, and
returns the moved opportunity with a :class:`~crmkit.core.events.StageChanged`
event (or, for :func:`open_opportunity`, a :class:`~crmkit.core.events.Created`).
Nothing here reads a clock or a store: ``now`` and ``by`` are passed in, so a
call either returns a valid opportunity or raises and has no effect.

Rules shared by every move:

* the version goes up by one, ``updated_at`` becomes ``now``, and exactly one
  :class:`~crmkit.core.opportunities.StageChange` (from, to, at, by) is
  appended to the history;
* a move to the stage the opportunity is already in is refused;
* ``probability`` becomes the target stage's default unless the opportunity
  carries an override (``probability_override``); winning and losing fix it
  at 1 and 0 and clear the override;
* the target stage's ``requires`` must be set on the moved opportunity, else
  :class:`~crmkit.core.errors.ValidationError` (code ``"required"``) names the
  first missing field (in alphabetical order);
* the event's ``changes`` list every field that changed, old and new value,
  except ``version`` and ``updated_at`` (as :func:`crmkit.core.changes.update`).

Which moves exist:

| function | from | to |
| --- | --- | --- |
| advance | an open stage | an open stage the pipeline allows |
| win | an open stage | a won stage the pipeline allows |
| lose | an open stage | a lost stage the pipeline allows |
| lose | an on-hold stage | any lost stage (no transition entry needed) |
| hold | an open stage | an on-hold stage (remembered in ``held_from``) |
| resume | an on-hold stage | the stage in ``held_from`` |
| reopen | a won or lost stage | an open stage (``to``, or the last open one) |

Anything else raises :class:`~crmkit.core.errors.InvalidTransition` naming
both stages.  In particular a won or lost opportunity leaves its stage only
through :func:`reopen`.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

import attrs

from crmkit.core import changes
from crmkit.core.entities import LossReason
from crmkit.core.errors import InvalidTransition, ValidationError
from crmkit.core.events import Created, FieldChange, StageChanged, Updated
from crmkit.core.ids import OpportunityId
from crmkit.core.money import Money
from crmkit.core.opportunities import Opportunity, StageChange
from crmkit.core.pipelines import Pipeline, Stage, StageKind

__all__ = [
    "STAGE_FIELDS",
    "advance",
    "hold",
    "lose",
    "open_opportunity",
    "reopen",
    "replay",
    "resume",
    "set_probability",
    "stage_durations",
    "win",
]

#: Opportunity fields only the transitions set; :func:`open_opportunity`
#: refuses them (``stage`` and ``probability`` have their own arguments).
STAGE_FIELDS: Final = frozenset(
    {
        "pipeline",
        "stage",
        "status",
        "probability_override",
        "closed_at",
        "close_reason_id",
        "close_note",
        "held_from",
        "history",
    }
)

#: Fields left out of the :class:`StageChanged` diff, as in :func:`changes.update`.
_UNTRACKED: Final = frozenset({"version", "updated_at"})

_ENTITY: Final = Opportunity.ENTITY


# ===================================================================== open


def open_opportunity(
    pipeline: Pipeline,
    *,
    id: OpportunityId,
    now: datetime,
    by: str | None,
    stage: str | None = None,
    **fields: Any,
) -> tuple[Opportunity, Created[Opportunity]]:
    """A new opportunity at version 1 in an open stage of ``pipeline``.

    Args:
        pipeline: the pipeline it lives in.
        id: its id.
        now: creation time (also the time of the first history entry).
        by: who opens it, recorded in the history.
        stage: the open stage to start in; the pipeline's initial stage by default.
        **fields: the opportunity's other fields (``name`` is required).  A
            ``probability`` that is not ``None`` overrides the stage's default
            from then on.

    Returns:
        The opportunity (history: one change from ``None`` to ``stage``) and
        its :class:`Created` event.

    Raises:
        ValidationError: an invalid or missing value; a field only transitions
            set (code ``"read_only"``); an unknown stage or one that is not
            open (field ``"stage"``); the stage's requirements unmet (code
            ``"required"``, field named).
    """
    target = pipeline.initial if stage is None else pipeline.stage(stage)
    if target.kind is not StageKind.OPEN:
        raise ValidationError(
            "stage",
            f"a new opportunity starts in an open stage, not a {target.kind.value} one",
            code="stage",
            value=target.key,
        )
    for name in sorted(fields):
        if name in STAGE_FIELDS:
            raise ValidationError(name, "is set by the stage transitions", code="read_only")
    probability = fields.pop("probability", None)
    opp, event = changes.create(
        Opportunity,
        id=id,
        now=now,
        pipeline=pipeline.key,
        stage=target.key,
        status=target.kind,
        probability=target.probability if probability is None else probability,
        probability_override=probability is not None,
        history=(StageChange(source=None, target=target.key, at=now, by=by),),
        **fields,
    )
    _check_requires(opp, target)
    return opp, event


# ==================================================================== moves


def advance(
    opp: Opportunity, pipeline: Pipeline, *, to: str, now: datetime, by: str | None
) -> tuple[Opportunity, StageChanged]:
    """Move an open opportunity to another open stage.

    Args:
        opp: the opportunity as it is.
        pipeline: its pipeline.
        to: the open stage to enter; ``pipeline.allows(opp.stage, to)`` must hold.
        now: when.
        by: who, recorded in the history.

    Returns:
        The moved opportunity and its event.

    Raises:
        InvalidTransition: not in an open stage, ``to`` is not an open stage
            (winning, losing and holding have their own functions), the same
            stage, or a move the pipeline does not allow.
        ValidationError: unknown stage; the target's requirements unmet.
    """
    _check_pipeline(opp, pipeline)
    target = pipeline.stage(to)
    _check_status(opp, target, StageKind.OPEN)
    if target.kind is not StageKind.OPEN:
        use = {StageKind.WON: "win()", StageKind.LOST: "lose()", StageKind.ON_HOLD: "hold()"}
        raise _invalid(
            opp, target.key, f"a {target.kind.value} stage is entered by {use[target.kind]}"
        )
    _check_allowed(opp, pipeline, target)
    return _move(opp, target, now=now, by=by)


def win(
    opp: Opportunity,
    pipeline: Pipeline,
    *,
    now: datetime,
    by: str | None,
    stage: str | None = None,
    amount: Money | None = None,
    expected_close: date | None = None,
) -> tuple[Opportunity, StageChanged]:
    """Win an open opportunity: status won, probability 1, closed at ``now``.

    Args:
        opp: the opportunity as it is.
        pipeline: its pipeline.
        now: when (becomes ``closed_at``).
        by: who, recorded in the history.
        stage: the won stage; the pipeline's only won stage by default.
        amount: sets the amount before the won stage's requirements are checked.
        expected_close: sets the close date likewise.

    Returns:
        The won opportunity (probability override cleared) and its event.

    Raises:
        InvalidTransition: not in an open stage, ``stage`` is not a won stage,
            several won stages and none named, or a move the pipeline does not
            allow.
        ValidationError: unknown stage; the won stage's requirements unmet.
    """
    _check_pipeline(opp, pipeline)
    target = _final_target(opp, pipeline, stage, StageKind.WON)
    _check_status(opp, target, StageKind.OPEN)
    _check_allowed(opp, pipeline, target)
    values: dict[str, Any] = {"probability": Decimal(1), "probability_override": False}
    if amount is not None:
        values["amount"] = amount
    if expected_close is not None:
        values["expected_close"] = expected_close
    return _move(opp, target, now=now, by=by, closed_at=now, **values)


def lose(
    opp: Opportunity,
    pipeline: Pipeline,
    *,
    reason: LossReason,
    note: str | None,
    now: datetime,
    by: str | None,
    stage: str | None = None,
) -> tuple[Opportunity, StageChanged]:
    """Lose an opportunity for ``reason``: status lost, probability 0, closed at ``now``.

    An open opportunity moves only through a transition the pipeline allows;
    an opportunity on hold may be lost directly (a paused deal that dies is
    common, and needs no transition entry, like holding and resuming).

    Args:
        opp: the opportunity as it is.
        pipeline: its pipeline.
        reason: the loss reason (its id becomes ``close_reason_id``).
        note: free text (``close_note``); required when ``reason.key`` is ``"other"``.
        now: when (becomes ``closed_at``).
        by: who, recorded in the history.
        stage: the lost stage; the pipeline's only lost stage by default.

    Returns:
        The lost opportunity (override and ``held_from`` cleared) and its event.

    Raises:
        InvalidTransition: won or lost already, ``stage`` is not a lost stage,
            several lost stages and none named, or (from an open stage) a move
            the pipeline does not allow.
        ValidationError: unknown stage; reason ``other`` without a note
            (field ``"note"``, code ``"required"``); unmet requirements.
    """
    _check_pipeline(opp, pipeline)
    target = _final_target(opp, pipeline, stage, StageKind.LOST)
    _check_status(opp, target, StageKind.OPEN, StageKind.ON_HOLD)
    if opp.status is StageKind.OPEN:
        _check_allowed(opp, pipeline, target)
    if reason.key == "other" and (note is None or not note.strip()):
        raise ValidationError("note", "is required when the reason is 'other'", code="required")
    return _move(
        opp,
        target,
        now=now,
        by=by,
        probability=Decimal(0),
        probability_override=False,
        closed_at=now,
        close_reason_id=reason.id,
        close_note=note,
        held_from=None,
    )


def hold(
    opp: Opportunity, pipeline: Pipeline, *, now: datetime, by: str | None, stage: str | None = None
) -> tuple[Opportunity, StageChanged]:
    """Put an open opportunity on hold, remembering the stage it left.

    The probability becomes the on-hold stage's default (unless overridden),
    like any move: a pipeline says with that default how much paused deals
    weigh in the forecast.

    Args:
        opp: the opportunity as it is.
        pipeline: its pipeline.
        now: when.
        by: who, recorded in the history.
        stage: the on-hold stage; the pipeline's only one by default.

    Returns:
        The held opportunity (``held_from`` = the stage left) and its event.

    Raises:
        InvalidTransition: not in an open stage, the pipeline has no on-hold
            stage, several and none named, or ``stage`` is not an on-hold stage.
        ValidationError: unknown stage; the on-hold stage's requirements unmet.
    """
    _check_pipeline(opp, pipeline)
    target = _kind_target(opp, pipeline, stage, StageKind.ON_HOLD, "on-hold")
    _check_status(opp, target, StageKind.OPEN)
    return _move(opp, target, now=now, by=by, held_from=opp.stage)


def resume(
    opp: Opportunity, pipeline: Pipeline, *, now: datetime, by: str | None
) -> tuple[Opportunity, StageChanged]:
    """Take an opportunity off hold, back to the stage it left.

    Args:
        opp: the opportunity as it is.
        pipeline: its pipeline.
        now: when.
        by: who, recorded in the history.

    Returns:
        The opportunity in its former stage (``held_from`` cleared, the
        stage's default probability unless overridden) and its event.

    Raises:
        InvalidTransition: not on hold, or the stage it left is no longer an
            open stage of the pipeline.
        ValidationError: the stage's requirements unmet.
    """
    _check_pipeline(opp, pipeline)
    if opp.status is not StageKind.ON_HOLD or opp.held_from is None:
        raise _invalid(opp, opp.held_from or opp.stage, "only an opportunity on hold resumes")
    target = _open_stage(pipeline, opp.held_from)
    if target is None:
        raise _invalid(opp, opp.held_from, "the stage it left is not an open stage any more")
    return _move(opp, target, now=now, by=by, held_from=None)


def reopen(
    opp: Opportunity, pipeline: Pipeline, *, now: datetime, by: str | None, to: str | None = None
) -> tuple[Opportunity, StageChanged]:
    """Reopen a won or lost opportunity.

    The close date, reason and note are cleared; ``sales_order_ref`` and the
    notes are kept (the host's order exists, whatever happens next).

    Args:
        opp: the opportunity as it is.
        pipeline: its pipeline.
        now: when.
        by: who, recorded in the history.
        to: the open stage to go back to; by default the last open stage of
            the history (the pipeline's initial stage if there is none).

    Returns:
        The reopened opportunity and its event.

    Raises:
        InvalidTransition: not won or lost, or ``to`` is not an open stage.
        ValidationError: unknown stage; the stage's requirements unmet.
    """
    _check_pipeline(opp, pipeline)
    target = _last_open_stage(opp, pipeline) if to is None else pipeline.stage(to)
    _check_status(opp, target, StageKind.WON, StageKind.LOST)
    if target.kind is not StageKind.OPEN:
        raise _invalid(opp, target.key, "an opportunity reopens into an open stage")
    return _move(opp, target, now=now, by=by, closed_at=None, close_reason_id=None, close_note=None)


# ================================================================ probability


def set_probability(
    opp: Opportunity, pipeline: Pipeline, probability: Decimal | None, *, now: datetime
) -> tuple[Opportunity, Updated[Opportunity] | None]:
    """Override the probability, or (``None``) go back to the stage's default.

    Args:
        opp: the opportunity as it is.
        pipeline: its pipeline (for the stage's default).
        probability: between 0 and 1, or ``None`` to clear the override.
        now: when.

    Returns:
        The new opportunity and its :class:`Updated` event, or the same
        opportunity and ``None`` when nothing changed.

    Raises:
        ValidationError: a probability outside 0-1 (field ``"probability"``),
            or the opportunity is won or lost (code ``"closed"``).
    """
    _check_pipeline(opp, pipeline)
    if opp.is_closed:
        raise ValidationError(
            "probability", f"is fixed while the opportunity is {opp.status.value}", code="closed"
        )
    if probability is None:
        values: dict[str, Any] = {
            "probability": pipeline.stage(opp.stage).probability,
            "probability_override": False,
        }
    else:
        values = {"probability": probability, "probability_override": True}
    candidate = attrs.evolve(opp, **values)
    diff = _diff(opp, candidate)
    if not diff:
        return opp, None
    new = attrs.evolve(candidate, version=opp.version + 1, updated_at=now)
    return new, Updated(new, diff)


# ================================================================== history


def stage_durations(opp: Opportunity, *, as_of: datetime) -> dict[str, timedelta]:
    """Time spent in each stage, from the history, as of ``as_of``.

    A stage entered several times adds up.  The stage the opportunity was in
    at ``as_of`` counts until ``as_of`` -- a won or lost stage too, so the
    durations always add up to the opportunity's age (``as_of`` minus the
    first history entry); callers measuring cycle time stop at ``closed_at``.
    Changes after ``as_of`` are ignored, so past snapshots come out right.

    Args:
        opp: the opportunity.
        as_of: the moment to measure at (timezone-aware).

    Returns:
        Stage key -> time spent, in the order the stages were first entered;
        empty when ``as_of`` is before the opportunity was opened.
    """
    durations: dict[str, timedelta] = {}
    history = [c for c in opp.history if c.at <= as_of]
    ends = [c.at for c in history[1:]] + [as_of]
    for change, until in zip(history, ends, strict=False):  # empty history: no stage
        durations[change.target] = durations.get(change.target, timedelta(0)) + (until - change.at)
    return durations


def replay(
    pipeline: Pipeline, history: Sequence[StageChange]
) -> tuple[str, StageKind, str | None, datetime | None]:
    """Rebuild ``(stage, status, held_from, closed_at)`` from the history alone.

    For every opportunity the functions of this module produce, the result
    equals the stored ``stage``, ``status``, ``held_from`` and ``closed_at``.

    Args:
        pipeline: the opportunity's pipeline (for the kinds of the stages).
        history: the stage changes, oldest first.

    Returns:
        The current stage, its kind, the stage left for an on-hold stage, and
        the time a won or lost stage was entered.

    Raises:
        ValidationError: an empty history (field ``"history"``) or a stage the
            pipeline does not have (field ``"stage"``).
    """
    if not history:
        raise ValidationError("history", "is empty", code="required")
    held_from: str | None = None
    closed_at: datetime | None = None
    kind = StageKind.OPEN
    for change in history:
        kind = pipeline.stage(change.target).kind
        held_from = change.source if kind is StageKind.ON_HOLD else None
        closed_at = change.at if kind in (StageKind.WON, StageKind.LOST) else None
    return history[-1].target, kind, held_from, closed_at


# ================================================================== helpers


def _move(
    opp: Opportunity, target: Stage, *, now: datetime, by: str | None, **values: Any
) -> tuple[Opportunity, StageChanged]:
    """Enter ``target``: one history entry, version + 1, requirements checked."""
    change = StageChange(source=opp.stage, target=target.key, at=now, by=by)
    if "probability" not in values and not opp.probability_override:
        values["probability"] = target.probability
    new = attrs.evolve(
        opp,
        stage=target.key,
        status=target.kind,
        history=(*opp.history, change),
        version=opp.version + 1,
        updated_at=now,
        **values,
    )
    _check_requires(new, target)
    return new, StageChanged(new, change, _diff(opp, new))


def _diff(old: Opportunity, new: Opportunity) -> tuple[FieldChange, ...]:
    return tuple(
        FieldChange(a.name, getattr(old, a.name), getattr(new, a.name))
        for a in attrs.fields(Opportunity)
        if a.name not in _UNTRACKED and getattr(old, a.name) != getattr(new, a.name)
    )


def _check_requires(opp: Opportunity, stage: Stage) -> None:
    for name in sorted(stage.requires):
        if getattr(opp, name) is None:
            raise ValidationError(
                name, f"is required to enter stage {stage.key!r}", code="required"
            )


def _check_pipeline(opp: Opportunity, pipeline: Pipeline) -> None:
    if opp.pipeline != pipeline.key:
        raise ValidationError(
            "pipeline",
            f"the opportunity is in pipeline {opp.pipeline!r}, not {pipeline.key!r}",
            code="pipeline",
            value=pipeline.key,
        )


def _check_not_same(opp: Opportunity, target: Stage) -> None:
    if target.key == opp.stage:
        raise _invalid(opp, target.key, "the opportunity is already in that stage")


def _check_status(opp: Opportunity, target: Stage, *allowed: StageKind) -> None:
    """Refuse the move unless the status is one of ``allowed`` and the stage changes."""
    if opp.status in allowed:
        _check_not_same(opp, target)
        return
    if opp.is_closed:
        reason = f"the opportunity is {opp.status.value}; only reopen() moves it"
    elif opp.status is StageKind.ON_HOLD:
        reason = "the opportunity is on hold; resume() it first"
    else:
        reason = "the opportunity is open; only a won or lost opportunity reopens"
    raise _invalid(opp, target.key, reason)


def _check_allowed(opp: Opportunity, pipeline: Pipeline, target: Stage) -> None:
    if not pipeline.allows(opp.stage, target.key):
        raise _invalid(opp, target.key, f"pipeline {pipeline.key!r} does not allow this move")


def _final_target(
    opp: Opportunity, pipeline: Pipeline, stage: str | None, kind: StageKind
) -> Stage:
    return _kind_target(opp, pipeline, stage, kind, kind.value)


def _kind_target(
    opp: Opportunity, pipeline: Pipeline, stage: str | None, kind: StageKind, noun: str
) -> Stage:
    """The stage named ``stage`` (which must be of ``kind``), or the pipeline's only one."""
    if stage is not None:
        target = pipeline.stage(stage)
        if target.kind is not kind:
            raise _invalid(opp, target.key, f"{target.key!r} is not a {noun} stage")
        return target
    candidates = pipeline.of_kind(kind)
    if not candidates:
        raise _invalid(opp, kind.value, f"pipeline {pipeline.key!r} has no {noun} stage")
    if len(candidates) > 1:
        keys = ", ".join(repr(s.key) for s in candidates)
        raise _invalid(
            opp,
            kind.value,
            f"pipeline {pipeline.key!r} has several {noun} stages ({keys}): name one",
        )
    return candidates[0]


def _open_stage(pipeline: Pipeline, key: str) -> Stage | None:
    for stage in pipeline.stages:
        if stage.key == key:
            return stage if stage.kind is StageKind.OPEN else None
    return None


def _last_open_stage(opp: Opportunity, pipeline: Pipeline) -> Stage:
    for change in reversed(opp.history):
        stage = _open_stage(pipeline, change.target)
        if stage is not None:
            return stage
    return pipeline.initial


def _invalid(opp: Opportunity, target: str, reason: str) -> InvalidTransition:
    return InvalidTransition(entity=_ENTITY, source=opp.stage, target=target, reason=reason)
