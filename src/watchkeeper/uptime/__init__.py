"""Uptime monitoring: monitors, checkers, scheduler, heartbeats, SLAs and public status pages."""
