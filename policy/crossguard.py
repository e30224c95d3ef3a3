"""CrossGuard glue: CrossGuard's arguments to `Res`, and each `Rule` to a CrossGuard policy.

Kept apart from `__main__.py` so it can be tested: building the `PolicyPack` starts
the analyzer's gRPC server and never returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
)

from policy.rules import RULES, UNKNOWN, Level, Res, Rule

_UNKNOWNS = frozenset(
    {
        UNKNOWN_ARCHIVE_VALUE,
        UNKNOWN_ARRAY_VALUE,
        UNKNOWN_ASSET_VALUE,
        UNKNOWN_BOOLEAN_VALUE,
        UNKNOWN_NUMBER_VALUE,
        UNKNOWN_OBJECT_VALUE,
        UNKNOWN_STRING_VALUE,
    }
)
LEVELS = {Level.MANDATORY: EnforcementLevel.MANDATORY, Level.ADVISORY: EnforcementLevel.ADVISORY}


def _target(value: Any) -> Any:
    """The plain container behind CrossGuard's unknown-checking proxy (or the value itself)."""
    try:
        return value["__target"]
    except (KeyError, TypeError, IndexError):
        return value


def plain(value: Any) -> Any:
    """Props as plain dicts/lists, with values unknown during preview replaced by `UNKNOWN`.

    CrossGuard's proxies raise on reading an unknown value, which would abort a
    whole stack policy over one computed id; the rules decide what unknown means.
    """
    if isinstance(value, str):
        return UNKNOWN if value in _UNKNOWNS else value
    if isinstance(value, Mapping):
        inner = _target(value)
        return {str(k): plain(inner[k]) for k in inner}
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        return [plain(v) for v in _target(value)]
    return value


def res_from_args(args: ResourceValidationArgs) -> Res:
    return Res(args.resource_type, args.name, args.urn, plain(args.props))


def res_from_policy_resource(r: PolicyResource) -> Res:
    deps = {k: tuple(d.urn for d in v) for k, v in (r.property_dependencies or {}).items()}
    return Res(r.resource_type, r.name, r.urn, plain(r.props), deps)


def to_policy(rule: Rule) -> Policy:
    """The CrossGuard policy running `rule`."""
    if rule.resource_check is not None:
        check = rule.resource_check

        def validate_resource(args: ResourceValidationArgs, report: ReportViolation) -> None:
            for message in check(res_from_args(args)):
                report(message, None)

        return ResourceValidationPolicy(
            name=rule.name,
            description=rule.description,
            enforcement_level=LEVELS[rule.level],
            validate=validate_resource,
        )

    def validate_stack(args: StackValidationArgs, report: ReportViolation) -> None:
        resources = [res_from_policy_resource(r) for r in args.resources]
        for v in rule.run(resources):
            report(v.message, v.urn)

    return StackValidationPolicy(
        name=rule.name,
        description=rule.description,
        enforcement_level=LEVELS[rule.level],
        validate=validate_stack,
    )


def policies() -> list[Policy]:
    return [to_policy(rule) for rule in RULES]
