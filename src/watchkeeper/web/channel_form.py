"""The channel form, built from the receiver schema (`alerting.routing.Receiver`) like the rule form is
from the rule schema: each integration kind (`webhook_configs`, `email_configs`, …) gets a fieldset from
its model, so a kind or a setting added there appears here. A channel made here is a receiver with one
integration (the REST API takes several).

Secrets are shown masked; sent back unchanged they keep the stored value (alerting.routing_store).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData

from watchkeeper.alerting.routing import INTEGRATION_KINDS, Receiver
from watchkeeper.alerting.routing_store import hides, masked
from watchkeeper.web.rule_form import FORM_ERROR, FormField, FormInputError, KindSection, _read_fields, _shown, _text
from watchkeeper.web.rule_form import model_fields as schema_fields

# What each kind is called in the menu (the schema's names are Alertmanager's).
KIND_TITLES = {"webhook": "Webhook", "slack": "Slack", "email": "E-mail (SMTP)",
               "pagerduty": "PagerDuty", "opsgenie": "Opsgenie", "discord": "Discord",
               "teams": "Microsoft Teams", "twilio": "Twilio SMS", "log": "Server log"}
# Labels clearer than the field names.
LABELS = {"url": "URL", "api_url": "API URL", "webhook_url": "Webhook URL", "hmac_secret": "HMAC secret",
          "from_": "From", "to": "To", "smarthost": "SMTP server (host:port)", "auth_password": "Password",
          "auth_username": "User name", "require_tls": "Require STARTTLS", "tls": "Implicit TLS (port 465)",
          "insecure_skip_verify": "Skip certificate verification", "send_resolved": "Notify when resolved",
          "max_alerts": "Most alerts per message (0: all)", "routing_key": "Routing key", "api_key": "API key",
          "account_sid": "Account SID", "auth_token": "Auth token"}


def kind_model(kind: str) -> type[BaseModel]:
    (item,) = get_args(Receiver.model_fields[f"{kind}_configs"].annotation)
    model: type[BaseModel] = item
    return model


def sections() -> list[KindSection]:
    found = []
    for kind in INTEGRATION_KINDS:
        fields = schema_fields(kind_model(kind), f"{kind}.")
        for f in fields:
            short = f.name.split(".", 1)[1]
            f.label = LABELS.get(short, f.label)
            if f.widget == "list":
                f.help = f.help or "comma-separated"
        found.append(KindSection(kind, kind, fields))
    return found


def general_fields() -> list[FormField]:
    return [FormField("name", "Name", "text", required=True,
                      help="How routes name this channel, e.g. ops-webhook or team-mail"),
            FormField("kind", "Kind", "select", choices=INTEGRATION_KINDS, required=True)]


def _every() -> list[FormField]:
    return general_fields() + [f for s in sections() for f in s.fields]


def single_integration(receiver: Receiver) -> tuple[str, BaseModel] | None:
    """The kind and settings of a receiver with exactly one integration (what this form edits)."""
    found = list(receiver.integrations().items())
    if len(found) != 1:
        return None
    key, config = found[0]
    return key.partition("/")[0], config


def initial_values(receiver: Receiver | None = None) -> dict[str, Any]:
    """A receiver's settings (secrets masked), or the schema's defaults for a new channel (a webhook)."""
    values: dict[str, Any] = {f.name: _shown(f.default, f.widget) for f in _every()}
    values["kind"] = "webhook"
    values["name"] = ""
    if receiver is None:
        return values
    values["name"] = receiver.name
    single = single_integration(receiver)
    if single is None:
        return values
    kind, config = single
    values["kind"] = kind
    for f in next(s for s in sections() if s.kind == kind).fields:
        name = f.name.split(".", 1)[1]
        value = getattr(config, name)
        values[f.name] = masked(value, name) if hides(value, name) else _shown(value, f.widget)
    return values


@dataclass
class ChannelForm:
    values: dict[str, Any]
    receiver: Receiver | None
    errors: dict[str, str]


def read_channel_form(form: FormData) -> ChannelForm:
    """The posted form as a Receiver with one integration, or the errors by field name."""
    values: dict[str, Any] = {}
    for f in _every():
        raw = form.get(f.name)
        values[f.name] = (raw == "on") if f.widget == "checkbox" else (raw if isinstance(raw, str) else "")
    kind = values["kind"] if values["kind"] in INTEGRATION_KINDS else ""
    if not kind:
        return ChannelForm(values, None, {"kind": "choose one of the kinds offered"})
    data: dict[str, Any] = {}
    try:
        name = _text(form, "name", 200)
        section = next(s for s in sections() if s.kind == kind)
        _read_fields(form, section.fields, data)
    except FormInputError as exc:
        return ChannelForm(values, None, {exc.name: str(exc)})
    try:
        receiver = Receiver.model_validate({"name": name, f"{kind}_configs": [data.get(kind, {})]})
    except ValidationError as exc:
        return ChannelForm(values, None, errors_by_field(exc, kind))
    return ChannelForm(values, receiver, {})


def errors_by_field(exc: ValidationError, kind: str) -> dict[str, str]:
    """`webhook_configs.0.url` → the form's `webhook.url`; `name` stays `name`."""
    errors: dict[str, str] = {}
    for error in exc.errors():
        parts = [str(p) for p in error["loc"]]
        if parts[:1] == ["name"]:
            name = "name"
        elif len(parts) >= 3 and parts[0] == f"{kind}_configs":
            aliases = {info.alias: field for field, info in kind_model(kind).model_fields.items() if info.alias}
            name = f"{kind}.{aliases.get(parts[2], parts[2])}"
        else:
            name = FORM_ERROR
        message = str(error["msg"]).removeprefix("Value error, ")
        errors[name] = f"{errors[name]}; {message}" if name in errors else message
    return errors
