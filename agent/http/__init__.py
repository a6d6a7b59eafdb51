"""The agent's HTTP side: the server (health, readiness, metrics, webhooks), the dashboard and its
static page (``web/``), and the Prometheus metrics."""
