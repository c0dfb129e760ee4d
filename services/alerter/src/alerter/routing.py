"""The alerter's YAML configuration: a routing tree like Alertmanager's, receivers, inhibition.

Validated with pydantic at start-up; :func:`load_config` raises
:class:`~flywheel.errors.ConfigError` naming the offending field path
(``route.routes.1.matchers.0``). Example::

    route:
      receiver: team-slack
      group_by: [alertname, task]
      group_wait: 30s
      group_interval: 5m
      repeat_interval: 4h
      routes:
        - matchers: ['severity="critical"']
          receiver: oncall-pagerduty
          continue: true
    receivers:
      - {name: team-slack, type: slack, webhook_url_file: /run/secrets/slack}
      - {name: oncall-pagerduty, type: pagerduty, routing_key_env: PD_KEY}
    inhibit_rules:
      - source_matchers: ['severity="critical"']
        target_matchers: ['severity="warning"']
        equal: [task]
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    model_validator,
)

from alerter.matchers import Matcher, parse_matcher
from alerter.receivers.config import ReceiverConfig
from flywheel.errors import ConfigError
from flywheel.serde import validation_error_message

__all__ = [
    "AlerterConfig",
    "InhibitRule",
    "Route",
    "RouteConfig",
    "default_config",
    "load_config",
    "parse_duration",
]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> float:
    """``"1h30m"`` / ``"30s"`` / a number of seconds -> seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value and _DURATION.sub("", value) == "":
        seconds = sum(float(n) * _UNIT_S[u] for n, u in _DURATION.findall(value))
    else:
        raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 5m, 4h, 1h30m)")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def _matcher(value: Any) -> Matcher:
    if isinstance(value, Matcher):
        return value
    if not isinstance(value, str):
        raise ValueError('a matcher is a string like severity="critical"')
    return parse_matcher(value)


Duration = Annotated[float, BeforeValidator(parse_duration)]
MatcherField = Annotated[Matcher, PlainValidator(_matcher)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class RouteConfig(_Strict):
    """One node of the routing tree as written in YAML (unset fields inherit)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    receiver: str | None = None
    matchers: list[MatcherField] = Field(default_factory=list)
    continue_: bool = Field(default=False, alias="continue")
    group_by: list[str] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    send_resolved: bool | None = None
    routes: list[RouteConfig] = Field(default_factory=list)


class InhibitRule(_Strict):
    """Mute alerts matching ``target_matchers`` while one matching ``source_matchers``
    fires with the same values of the ``equal`` labels."""

    source_matchers: list[MatcherField] = Field(min_length=1)
    target_matchers: list[MatcherField] = Field(min_length=1)
    equal: list[str] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Route:
    """A routing-tree node with everything inherited filled in."""

    route_id: str
    receiver: str
    matchers: tuple[Matcher, ...]
    continue_: bool
    group_by: tuple[str, ...]
    group_by_all: bool
    group_wait: float
    group_interval: float
    repeat_interval: float
    send_resolved: bool
    routes: tuple[Route, ...]

    def match(self, labels: dict[str, str]) -> list[Route]:
        """The routes ``labels`` end up on (depth first, ``continue`` as in Alertmanager)."""
        if not all(m.matches(labels) for m in self.matchers):
            return []
        found: list[Route] = []
        for child in self.routes:
            matched = child.match(labels)
            if matched:
                found.extend(matched)
                if not child.continue_:
                    break
        return found or [self]

    def group_labels(self, labels: dict[str, str]) -> dict[str, str]:
        if self.group_by_all:
            return dict(sorted(labels.items()))
        return {name: labels.get(name, "") for name in self.group_by}

    def walk(self) -> list[Route]:
        nodes = [self]
        for child in self.routes:
            nodes.extend(child.walk())
        return nodes


def _build(config: RouteConfig, parent: Route | None, route_id: str) -> Route:
    group_by = config.group_by
    inherited_by = parent.group_by if parent else ()
    inherited_all = parent.group_by_all if parent else False
    node = Route(
        route_id=route_id,
        receiver=config.receiver or (parent.receiver if parent else ""),
        matchers=tuple(config.matchers),
        continue_=config.continue_,
        group_by=tuple(g for g in group_by if g != "...") if group_by is not None else inherited_by,
        group_by_all=("..." in group_by) if group_by is not None else inherited_all,
        group_wait=_pick(config.group_wait, parent.group_wait if parent else None, 30.0),
        group_interval=_pick(
            config.group_interval, parent.group_interval if parent else None, 300.0
        ),
        repeat_interval=_pick(
            config.repeat_interval, parent.repeat_interval if parent else None, 14400.0
        ),
        send_resolved=_pick(config.send_resolved, parent.send_resolved if parent else None, True),
        routes=(),
    )
    children = tuple(
        _build(child, node, f"{route_id}.{i}") for i, child in enumerate(config.routes)
    )
    return Route(**{**_fields(node), "routes": children})


def _pick(own: Any, inherited: Any, default: Any) -> Any:
    if own is not None:
        return own
    return inherited if inherited is not None else default


def _fields(route: Route) -> dict[str, Any]:
    return {name: getattr(route, name) for name in Route.__slots__}


class AlerterConfig(_Strict):
    route: RouteConfig
    receivers: list[ReceiverConfig] = Field(min_length=1)
    inhibit_rules: list[InhibitRule] = Field(default_factory=list)
    # Webhook targets on loopback/private/link-local addresses are refused unless a
    # network listed here contains them (SSRF guard). Tests allow 127.0.0.1/32.
    allowed_target_networks: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> AlerterConfig:
        if not self.route.receiver:
            raise ValueError("route.receiver: the root route needs a receiver")
        if self.route.matchers:
            raise ValueError("route.matchers: the root route must match every alert")
        names = [r.name for r in self.receivers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"receivers: duplicate names {dupes}")
        for node in self.routing_tree().walk():
            if node.receiver not in names:
                raise ValueError(
                    f"route {node.route_id}: receiver {node.receiver!r} is not defined"
                )
        for i, net in enumerate(self.allowed_target_networks):
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError as exc:
                raise ValueError(f"allowed_target_networks.{i}: {exc}") from exc
        return self

    def routing_tree(self) -> Route:
        return _build(self.route, None, "0")

    def allowed_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(n, strict=False) for n in self.allowed_target_networks]


def default_config() -> AlerterConfig:
    """Used without a config file: every alert goes to the alerter's own log."""
    return parse_config(
        {"route": {"receiver": "log"}, "receivers": [{"name": "log", "type": "log"}]},
        source="<built-in default>",
    )


def load_config(path: Path) -> AlerterConfig:
    """Read and validate the YAML file at ``path``; ``ConfigError`` names the bad field."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"alerter config {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"alerter config {path}: not valid YAML: {exc}") from exc
    return parse_config(raw, source=str(path))


def parse_config(raw: Any, *, source: str = "<config>") -> AlerterConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"alerter config {source}: expected a mapping at the top level")
    try:
        return AlerterConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"alerter config {source}: {validation_error_message(exc)}") from exc
