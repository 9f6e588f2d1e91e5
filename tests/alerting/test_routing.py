"""The routing tree, inhibition and the config file, with Alertmanager's semantics."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchkeeper.alerting.routing import Inhibitor, InhibitRule, build_routes, load_config, parse_config
from watchkeeper.config import ConfigError

TREE = {
    "route": {
        "receiver": "default", "group_by": ["alertname"], "group_wait": "10s",
        "routes": [
            {"matchers": ['severity="critical"'], "receiver": "pager", "continue": True, "group_wait": "0s"},
            {"matchers": ['team=~"web|shop"'], "receiver": "web", "group_by": ["..."],
             "routes": [{"matchers": ['service="checkout"'], "receiver": "checkout", "repeat_interval": "1h"}]},
            {"matchers": ['team="db"'], "receiver": "db"},
        ],
    },
    "receivers": [{"name": n, "log_configs": [{}]} for n in ("default", "pager", "web", "checkout", "db")],
}


def receivers_for(labels: dict[str, str]) -> list[str]:
    root = build_routes(parse_config(TREE).route)
    return [r.receiver for r in root.match(labels)]


@pytest.mark.parametrize(("labels", "expected"), [
    ({"alertname": "X"}, ["default"]),  # no child matches: the root takes it
    ({"team": "db"}, ["db"]),
    ({"team": "shop", "service": "cart"}, ["web"]),  # the parent when no grandchild matches
    ({"team": "web", "service": "checkout"}, ["checkout"]),
    ({"severity": "critical", "team": "db"}, ["pager", "db"]),  # continue: true goes on
    ({"severity": "critical"}, ["pager"]),
    ({"team": "webshop"}, ["default"]),  # regexes are anchored
])
def test_first_matching_child_wins_unless_continue(labels: dict[str, str], expected: list[str]) -> None:
    assert receivers_for(labels) == expected


def test_children_inherit_timers_and_grouping() -> None:
    root = build_routes(parse_config(TREE).route)
    pager, web, _ = root.routes
    checkout = web.routes[0]
    assert (root.group_wait, root.group_interval, root.repeat_interval) == (10, 300, 14400)
    assert (pager.group_wait, pager.group_by) == (0, ["alertname"])
    assert (checkout.group_wait, checkout.repeat_interval, checkout.group_by) == (10, 3600, ["..."])


def test_group_keys_are_spelled_like_alertmanager() -> None:
    root = build_routes(parse_config(TREE).route)
    labels = {"alertname": "Down", "team": "web", "service": "checkout", "x": "1"}
    (route,) = root.match(labels)
    assert route.group_key(labels) == (
        '{}/{team=~"web|shop"}/{service="checkout"}:{alertname="Down", service="checkout", team="web", x="1"}')
    assert root.group_key({"alertname": "Down", "y": "2"}) == '{}:{alertname="Down"}'


def test_inhibition_needs_equal_labels_and_never_mutes_the_source_itself() -> None:
    inhibitor = Inhibitor([InhibitRule(source_matchers=['severity="critical"'],
                                       target_matchers=['severity=~"high|medium"'], equal=["project"])])
    source = ("s", {"severity": "critical", "project": "shop"})
    same_project = ("t1", {"severity": "high", "project": "shop"})
    other_project = ("t2", {"severity": "high", "project": "blog"})
    assert inhibitor.inhibited([source], [source, same_project, other_project]) == {"t1"}
    both = Inhibitor([InhibitRule(source_matchers=['a="1"'], target_matchers=['a="1"'])])
    assert both.inhibited([("only", {"a": "1"})], [("only", {"a": "1"})]) == set()


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"route\.routes\.0\.receiver: no receiver named 'nobody'"):
        parse_config({"route": {"receiver": "a", "routes": [{"receiver": "nobody"}]},
                      "receivers": [{"name": "a"}]})
    with pytest.raises(ConfigError, match=r"route\.group_wait"):
        parse_config({"route": {"receiver": "a", "group_wait": "soon"}, "receivers": [{"name": "a"}]})
    with pytest.raises(ConfigError, match=r"receivers\.0\.webhook_configs\.0\.nope"):
        parse_config({"route": {"receiver": "a"}, "receivers": [{"name": "a", "webhook_configs": [
            {"url": "http://x", "nope": 1}]}]})
    bad = tmp_path / "alerting.yml"
    bad.write_text("route: [")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_without_a_file_everything_goes_to_the_log() -> None:
    config = load_config(None)
    assert [r.receiver for r in build_routes(config.route).match({"alertname": "x"})] == ["log"]
