"""Process health for the bridge: event-loop lag, provider warm-up, Prometheus metrics (issue 18)."""
