"""The receivers and the routing tree kept in the database, edited in the web UI and the REST API.

Used when `alerting.config_file` is not set (with the file, the file is the configuration, read-only
here). Each change is checked against the whole tree before it is written (a route may only name a
receiver that exists, a receiver in use cannot go), and bumps one version number that every process
reads each round to pick the change up.

Secrets (`SecretStr` settings, and URLs that carry a token in their path or query) are shown masked;
a masked value sent back unchanged keeps the stored one, so a form can be saved without retyping them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlsplit

import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from sqlalchemy import Connection, delete, func, insert, select, update

from watchkeeper.alerting.matchers import format_duration, parse_duration, parse_matchers
from watchkeeper.alerting.routing import INTEGRATION_KINDS, AlertingConfig, Receiver, parse_config
from watchkeeper.alerting.tables import notification_config, notification_receivers, notification_routes
from watchkeeper.auth.audit import record
from watchkeeper.config import ConfigError

MASK = "••••••"
MAX_ROUTES = 500  # a tree an admin edits by hand; a bigger one belongs in a file


class RoutingInvalid(ValueError):
    """A change the tree cannot take; `field` names what is wrong (`receiver`, `parent_id`, …)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class RoutingConflict(ValueError):
    """A change that needs another one first (e.g. deleting a receiver a route still uses)."""


def _duration(value: Any) -> Any:
    if value is None or value == "":
        return None
    return parse_duration(value)


class RouteIn(BaseModel):
    """A route's own settings (its children are routes of their own). Blank timers and an absent
    `group_by` or `receiver` are inherited from the parent."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    receiver: str | None = Field(None, max_length=200)
    matchers: list[Annotated[str, Field(max_length=1000)]] = Field(
        default_factory=list, max_length=50, description='Alertmanager matchers, e.g. ["severity=\\"critical\\""]')
    group_by: list[Annotated[str, Field(max_length=200)]] | None = Field(None, max_length=50)
    continue_: bool = Field(False, alias="continue", description="also try the next sibling routes")
    group_wait: float | None = Field(None, description="a duration: 30s, 5m, 4h (blank: inherited)")
    group_interval: float | None = None
    repeat_interval: float | None = None

    _to_seconds = field_validator("group_wait", "group_interval", "repeat_interval", mode="before")(_duration)

    @field_validator("matchers")
    @classmethod
    def _parse(cls, items: list[str]) -> list[str]:
        for item in items:  # one at a time, so the message says which
            try:
                parse_matchers([item])
            except ValueError as exc:
                raise ValueError(f"{item}: {exc}") from None
        return items

    def stored(self) -> dict[str, Any]:
        """The settings as Alertmanager writes them, only those set."""
        out: dict[str, Any] = {}
        if self.receiver:
            out["receiver"] = self.receiver
        if self.matchers:
            out["matchers"] = list(self.matchers)
        if self.group_by is not None:
            out["group_by"] = list(self.group_by)
        if self.continue_:
            out["continue"] = True
        for name in ("group_wait", "group_interval", "repeat_interval"):
            value = getattr(self, name)
            if value is not None:
                out[name] = format_duration(value)
        return out


@dataclass
class StoredRoute:
    id: int
    parent_id: int | None
    position: int
    settings: RouteIn
    routes: list[StoredRoute] = field(default_factory=list)

    def to_api(self) -> dict[str, Any]:
        return {"id": self.id, "parent_id": self.parent_id, "position": self.position,
                **route_view(self.settings.stored()), "routes": [r.to_api() for r in self.routes]}

    def config(self) -> dict[str, Any]:
        return {**self.settings.stored(), "routes": [r.config() for r in self.routes]}

    def walk(self) -> list[StoredRoute]:
        return [self, *(r for child in self.routes for r in child.walk())]


def route_view(settings: dict[str, Any]) -> dict[str, Any]:
    """A route as the API shows it: every setting present (null: inherited)."""
    return {"receiver": settings.get("receiver"), "matchers": settings.get("matchers", []),
            "group_by": settings.get("group_by"), "continue": bool(settings.get("continue", False)),
            **{k: settings.get(k) for k in ("group_wait", "group_interval", "repeat_interval")}}


# --- reading ------------------------------------------------------------------------------------------


def config_version(conn: Connection) -> int:
    return int(conn.execute(select(notification_config.c.version).where(notification_config.c.id == 1)).scalar_one())


def stored_tree(conn: Connection) -> StoredRoute:
    t = notification_routes
    rows = conn.execute(select(t.c.id, t.c.parent_id, t.c.position, t.c.settings)
                        .order_by(t.c.position, t.c.id)).all()
    nodes = {r.id: StoredRoute(r.id, r.parent_id, r.position, RouteIn.model_validate(orjson.loads(r.settings)))
             for r in rows}
    root = None
    for node in nodes.values():
        if node.parent_id is None:
            root = node
        elif node.parent_id in nodes:
            nodes[node.parent_id].routes.append(node)
    if root is None:
        raise ConfigError("the stored routing tree has no root route")
    return root


def stored_receivers(conn: Connection) -> list[Receiver]:
    t = notification_receivers
    rows = conn.execute(select(t.c.name, t.c.integrations).order_by(t.c.id)).all()
    return [Receiver.model_validate({"name": name, **orjson.loads(integrations)}) for name, integrations in rows]


def load_stored(conn: Connection) -> tuple[int, AlertingConfig]:
    """The version and the configuration stored now."""
    version = config_version(conn)
    receivers = stored_receivers(conn)
    data = {"route": stored_tree(conn).config(),
            "receivers": [plain(r.model_dump(by_alias=True, exclude_none=True)) for r in receivers]}
    return version, parse_config(data, "the stored routing tree")


def stored_if_newer(conn: Connection, known: int | None) -> tuple[int, AlertingConfig | None]:
    """(version, configuration) when the stored version is not `known`, else (known, None): one small
    read per round when nothing changed."""
    version = config_version(conn)
    if version == known:
        return version, None
    return load_stored(conn)


def plain(value: Any) -> Any:
    """A dump with its secrets revealed (for storing, never for showing)."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


# --- secrets ------------------------------------------------------------------------------------------


def masked(value: Any, name: str) -> str:
    """A setting as an admin may see it: secrets hidden, URLs cut to their host (webhook URLs carry
    their token in the path or the query).

    >>> masked("https://hooks.slack.com/services/T0/B0/x", "api_url")
    'https://hooks.slack.com/••••••'
    """
    if isinstance(value, SecretStr):
        return MASK if value.get_secret_value() else ""
    if isinstance(value, list):
        return ", ".join(masked(v, name) for v in value)
    if isinstance(value, str) and name.endswith("url"):
        parts = urlsplit(value)
        if parts.scheme and parts.netloc:
            host = parts.hostname or ""
            port = f":{parts.port}" if parts.port else ""
            return f"{parts.scheme}://{host}{port}/{MASK if parts.path.strip('/') or parts.query else ''}"
        return MASK
    if value is None:
        return ""
    return str(value)


def hides(value: Any, name: str) -> bool:
    """Whether `masked` shows this setting other than it is (a secret, a URL with a path)."""
    return isinstance(value, SecretStr) or (isinstance(value, str) and masked(value, name) != value)


def masked_receiver(receiver: Receiver) -> dict[str, Any]:
    """The receiver as the API shows it: each integration's settings, secrets masked."""
    out: dict[str, Any] = {"name": receiver.name}
    for kind in INTEGRATION_KINDS:
        configs = getattr(receiver, f"{kind}_configs")
        if not configs:
            continue
        items = []
        for config in configs:
            item = {}
            for name, info in type(config).model_fields.items():
                value = getattr(config, name)
                item[info.alias or name] = masked(value, name) if hides(value, name) else value
            items.append(item)
        out[f"{kind}_configs"] = items
    return out


def keep_masked(new: Receiver, old: Receiver | None) -> Receiver:
    """`new` with every setting that was sent back masked (as `masked_receiver` showed it) replaced by the
    stored value, integration by integration (same kind, same index)."""
    if old is None:
        return new
    updates: dict[str, Any] = {}
    for kind in INTEGRATION_KINDS:
        key = f"{kind}_configs"
        configs, before = getattr(new, key), getattr(old, key)
        kept = []
        for index, config in enumerate(configs):
            if index >= len(before) or type(before[index]) is not type(config):
                kept.append(config)
                continue
            stored = before[index]
            restore = {}
            for name in type(config).model_fields:
                sent, had = getattr(config, name), getattr(stored, name)
                if had is None or not hides(had, name):
                    continue
                text = sent.get_secret_value() if isinstance(sent, SecretStr) else sent
                if text == masked(had, name):
                    restore[name] = had
            kept.append(config.model_copy(update=restore) if restore else config)
        updates[key] = kept
    return new.model_copy(update=updates)


# --- changing -----------------------------------------------------------------------------------------


def _changed(conn: Connection, now: float, actor: int | None, action: str, target: tuple[str, int | str],
             details: dict[str, Any]) -> None:
    """Every change: a new version for the processes to pick up, and an audit log entry (no secrets)."""
    t = notification_config
    conn.execute(update(t).where(t.c.id == 1).values(version=t.c.version + 1, updated_at=now))
    record(conn, actor_user_id=actor, action=action, target_type=target[0], target_id=target[1], details=details,
           now=now)


def _check_whole(conn: Connection) -> None:
    """After a change, in its transaction: the tree as a whole still loads (else the caller's
    transaction is rolled back by the raise)."""
    try:
        load_stored(conn)
    except ConfigError as exc:
        raise RoutingInvalid("config", str(exc)) from None


def _receiver_row(conn: Connection, name: str) -> Any:
    t = notification_receivers
    return conn.execute(select(t.c.id, t.c.name, t.c.integrations).where(t.c.name == name)).first()


def get_receiver(conn: Connection, name: str) -> Receiver | None:
    row = _receiver_row(conn, name)
    return None if row is None else Receiver.model_validate({"name": row.name, **orjson.loads(row.integrations)})


def _integrations_json(receiver: Receiver) -> str:
    dump = plain(receiver.model_dump(by_alias=True, exclude_none=True))
    return orjson.dumps({k: v for k, v in dump.items() if k != "name" and v}).decode()


# Each change first checks what it can before writing; the callers run the same check on a reader first,
# so that a mistake in a form is answered without a failed transaction in the shared writer (which would
# make the writer retry the other jobs of its batch one by one).


def check_receiver(conn: Connection, receiver: Receiver, replacing: str | None) -> Receiver:
    """The receiver to store (masked secrets sent back replaced by the stored ones), or LookupError /
    RoutingInvalid."""
    old = None
    if replacing is not None:
        old = get_receiver(conn, replacing)
        if old is None:
            raise LookupError(replacing)
    if "/" in receiver.name:
        raise RoutingInvalid("name", "may not contain '/' (it is part of the receiver's address)")
    if receiver.name != replacing and _receiver_row(conn, receiver.name) is not None:
        raise RoutingInvalid("name", f"a receiver named {receiver.name!r} exists already")
    kept = keep_masked(receiver, old)
    for key, config in kept.integrations().items():
        kind, _, index = key.partition("/")
        for name in type(config).model_fields:
            value = getattr(config, name)
            text = value.get_secret_value() if isinstance(value, SecretStr) else value
            if isinstance(text, str) and MASK in text:  # a masked value edited, or sent to another receiver
                raise RoutingInvalid(f"{kind}_configs.{index}.{name}",
                                     f"still holds the hidden part {MASK}: type the whole value, or leave it "
                                     "exactly as shown to keep the stored one")
    return kept


def check_receiver_delete(conn: Connection, name: str) -> None:
    """LookupError: no such receiver; RoutingConflict: a route still sends to it."""
    if _receiver_row(conn, name) is None:
        raise LookupError(name)
    users = [n.id for n in stored_tree(conn).walk() if n.settings.receiver == name]
    if users:
        which = ", ".join(str(i) for i in users)
        raise RoutingConflict(f"receiver {name!r} is used by route{'s' if len(users) > 1 else ''} {which}: "
                              "send those routes elsewhere first")


def save_receiver(conn: Connection, receiver: Receiver, *, now: float, replacing: str | None = None,
                  actor: int | None = None) -> Receiver:
    """Create a receiver (`replacing` None) or replace the one named `replacing` (a new name renames it,
    and the routes naming it follow). Masked secrets sent back keep their stored value.
    LookupError: no receiver `replacing`; RoutingInvalid: the name is taken."""
    t = notification_receivers
    receiver = check_receiver(conn, receiver, replacing)
    values = {"name": receiver.name, "integrations": _integrations_json(receiver), "updated_at": now}
    if replacing is None:
        conn.execute(insert(t).values({**values, "created_at": now}))
    else:
        conn.execute(update(t).where(t.c.name == replacing).values(values))
        if receiver.name != replacing:
            for node in stored_tree(conn).walk():
                if node.settings.receiver == replacing:
                    settings = node.settings.model_copy(update={"receiver": receiver.name})
                    _write_settings(conn, node.id, settings, now)
    _changed(conn, now, actor, "receiver." + ("create" if replacing is None else "update"),
             ("receiver", receiver.name), {"integrations": sorted(receiver.integrations()),
                                           **({"renamed_from": replacing} if replacing not in (None, receiver.name)
                                              else {})})
    _check_whole(conn)
    return receiver


def delete_receiver(conn: Connection, name: str, *, now: float, actor: int | None = None) -> None:
    """LookupError: no such receiver; RoutingConflict: a route still sends to it."""
    check_receiver_delete(conn, name)
    conn.execute(delete(notification_receivers).where(notification_receivers.c.name == name))
    _changed(conn, now, actor, "receiver.delete", ("receiver", name), {})


def _write_settings(conn: Connection, route_id: int, settings: RouteIn, now: float) -> None:
    t = notification_routes
    conn.execute(update(t).where(t.c.id == route_id)
                 .values(settings=orjson.dumps(settings.stored()).decode(), updated_at=now))


def _check_route(conn: Connection, settings: RouteIn, *, root: bool) -> None:
    if settings.receiver is not None and _receiver_row(conn, settings.receiver) is None:
        raise RoutingInvalid("receiver", f"no receiver named {settings.receiver!r}")
    if root:
        if settings.receiver is None:
            raise RoutingInvalid("receiver", "the root route needs a receiver (it takes every alert no child takes)")
        if settings.matchers:
            raise RoutingInvalid("matchers", "the root route matches every alert: it takes no matchers")
        if settings.continue_:
            raise RoutingInvalid("continue", "the root route has no siblings to continue to")


def _place(conn: Connection, parent_id: int | None, route_id: int, position: int | None, now: float) -> None:
    """Put the route at `position` among its siblings (None: keep it where it is, or last when new)."""
    t = notification_routes
    siblings = [r.id for r in conn.execute(select(t.c.id).where(t.c.parent_id == parent_id, t.c.id != route_id)
                                           .order_by(t.c.position, t.c.id))]
    current = conn.execute(select(t.c.position).where(t.c.id == route_id)).scalar_one()
    if position is None:
        position = current if current >= 0 else len(siblings)
    siblings.insert(max(0, min(position, len(siblings))), route_id)
    for index, sibling in enumerate(siblings):
        conn.execute(update(t).where(t.c.id == sibling, t.c.position != index).values(position=index, updated_at=now))


def get_route(conn: Connection, route_id: int) -> StoredRoute | None:
    return next((n for n in stored_tree(conn).walk() if n.id == route_id), None)


def check_new_route(conn: Connection, parent_id: int, settings: RouteIn) -> None:
    if get_route(conn, parent_id) is None:
        raise RoutingInvalid("parent_id", f"no route {parent_id}")
    count = conn.execute(select(func.count()).select_from(notification_routes)).scalar_one()
    if count >= MAX_ROUTES:
        raise RoutingInvalid("parent_id", f"the tree has {count} routes, the most it may have "
                                          "(use alerting.config_file for a bigger one)")
    _check_route(conn, settings, root=False)


def check_route(conn: Connection, route_id: int, settings: RouteIn) -> StoredRoute:
    """The route as stored, if `settings` may replace its own. LookupError: no such route."""
    found = get_route(conn, route_id)
    if found is None:
        raise LookupError(route_id)
    _check_route(conn, settings, root=found.parent_id is None)
    return found


def check_route_delete(conn: Connection, route_id: int) -> StoredRoute:
    """LookupError: no such route; RoutingConflict: the root."""
    found = get_route(conn, route_id)
    if found is None:
        raise LookupError(route_id)
    if found.parent_id is None:
        raise RoutingConflict("the root route cannot be deleted: it takes every alert no other route takes")
    return found


def add_route(conn: Connection, parent_id: int, settings: RouteIn, *, now: float,
              position: int | None = None, actor: int | None = None) -> StoredRoute:
    """A child route of `parent_id` (last among its siblings unless `position` says where)."""
    t = notification_routes
    check_new_route(conn, parent_id, settings)
    result = conn.execute(insert(t).values(parent_id=parent_id, position=-1, settings=orjson.dumps(
        settings.stored()).decode(), created_at=now, updated_at=now))
    route_id = int(result.inserted_primary_key[0])  # type: ignore[index]
    _place(conn, parent_id, route_id, position, now)
    _changed(conn, now, actor, "route.create", ("route", route_id),
             {"parent_id": parent_id, **settings.stored()})
    _check_whole(conn)
    found = get_route(conn, route_id)
    assert found is not None
    return found


def replace_route(conn: Connection, route_id: int, settings: RouteIn, *, now: float,
                  position: int | None = None, actor: int | None = None) -> StoredRoute:
    """LookupError: no such route."""
    found = check_route(conn, route_id, settings)
    _write_settings(conn, route_id, settings, now)
    if found.parent_id is not None:
        _place(conn, found.parent_id, route_id, position, now)
    _changed(conn, now, actor, "route.update", ("route", route_id), settings.stored())
    _check_whole(conn)
    replaced = get_route(conn, route_id)
    assert replaced is not None
    return replaced


def delete_route(conn: Connection, route_id: int, *, now: float, actor: int | None = None) -> None:
    """The route and its children. LookupError: no such route; RoutingConflict: the root."""
    found = check_route_delete(conn, route_id)
    assert found.parent_id is not None  # the root cannot be deleted
    ids = [n.id for n in found.walk()]
    # The whole subtree by id: the foreign key's cascade is not relied on (SQLite needs its pragma for it).
    conn.execute(delete(notification_routes).where(notification_routes.c.id.in_(ids)))
    _place_siblings(conn, found.parent_id, now)
    _changed(conn, now, actor, "route.delete", ("route", route_id), {"routes_deleted": len(ids)})


def _place_siblings(conn: Connection, parent_id: int, now: float) -> None:
    t = notification_routes
    siblings = [r.id for r in conn.execute(select(t.c.id).where(t.c.parent_id == parent_id)
                                           .order_by(t.c.position, t.c.id))]
    for index, sibling in enumerate(siblings):
        conn.execute(update(t).where(t.c.id == sibling, t.c.position != index).values(position=index, updated_at=now))


def file_tree(config: AlertingConfig) -> dict[str, Any]:
    """The routing tree of a file as the API shows it (no ids: it is changed in the file)."""
    def view(route: Any) -> dict[str, Any]:
        settings = {k: v for k, v in orjson.loads(route.model_dump_json(by_alias=True, exclude_none=True)).items()
                    if k != "routes"}
        matchers = [str(m) for m in route.parsed_matchers()]
        for name in ("group_wait", "group_interval", "repeat_interval"):
            if settings.get(name) is not None:
                settings[name] = format_duration(settings[name])
        return {**route_view({**settings, "matchers": matchers}), "routes": [view(c) for c in route.routes]}

    return view(config.route)
