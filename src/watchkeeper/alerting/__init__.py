"""Alerting: rules over every domain's signals and per-minute counts, an Alertmanager-compatible routing
tree with grouping, inhibition and silences, and a durable notification outbox delivering to channels.

    signals / minute counts ──► evaluator (rules → alerts) ──► dispatcher (route, group, mute, nflog)
                                 Alertmanager API v2 ─────────┘        └──► outbox ──► delivery ──► channels
"""
