"""What reads perfwatch's outputs: the alerts follower, the run report, and the alert sinks (Alertmanager, webhooks)."""
