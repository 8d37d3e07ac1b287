"""Settings of the TickerWatchlist operator (environment `STOCKPIPE_*`, see stockpipe.settings)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from stockpipe.settings import StockpipeSettings

# Mounted into every pod with a service account token; names the pod's own namespace.
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
# RFC 1123 subdomain, what the API server accepts as a ConfigMap name.
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


class OperatorSettings(StockpipeSettings):
    namespace: str | None = Field(
        None,
        description="namespace whose TickerWatchlists are served; default: the pod's own, else 'default'",
    )
    configmap_name: str = Field(
        "stockpipe-watchlist", max_length=253, pattern=_DNS_SUBDOMAIN, description="the producer's ConfigMap"
    )
    resync_seconds: float = Field(
        60.0, gt=0, description="how often each watchlist's timer re-renders the ConfigMap (undoes hand edits)"
    )
    liveness_host: str = Field("0.0.0.0", description="where the liveness endpoint listens")
    liveness_port: int = Field(8080, ge=0, le=65535, description="port of GET /healthz; 0 turns it off")

    def resolved_namespace(self, service_account_file: Path = SERVICE_ACCOUNT_NAMESPACE) -> str:
        if self.namespace:
            return self.namespace
        if service_account_file.is_file():
            return service_account_file.read_text(encoding="utf-8").strip() or "default"
        return "default"

    @property
    def liveness_endpoint(self) -> str | None:
        return f"http://{self.liveness_host}:{self.liveness_port}/healthz" if self.liveness_port else None
