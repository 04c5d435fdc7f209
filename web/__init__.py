"""The web layer: JSON API, health check and Prometheus metrics over the supervisor."""
