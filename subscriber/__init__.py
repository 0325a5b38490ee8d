"""Readers of perfwatch's outputs: alert sinks (Alertmanager, webhooks)."""
