"""Pages of the worker's web server: customer explanations and health checks.

``/health/`` returns 200 while the worker's event loop runs, for liveness
probes. Faust starts the web server before table recovery, so the page
responds during a long recovery too. ``/ready/`` returns 200 once the first
table recovery has completed and 503 before it, for readiness probes and
load balancers in front of ``/customers/{id}/``, which also returns 503
until then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from riskstream_agents.app import Worker

HEALTH_PATH = "/health/"
READY_PATH = "/ready/"
CUSTOMER_PATH = "/customers/{customer_id}/"


def recovered(worker: Worker) -> bool:
    """Tell whether the worker's tables have completed their first recovery."""
    return bool(worker.app.tables.recovery.completed.is_set())


def register_pages(worker: Worker) -> None:
    """Register the customer, liveness and readiness pages on the app."""
    app = worker.app

    @app.page(CUSTOMER_PATH)
    async def customer(web: Any, request: Any, customer_id: str) -> Any:
        if not recovered(worker):
            return web.json(
                {
                    "error": "the worker is still recovering its tables; retry "
                    "when /ready/ answers 200",
                    "owner_url": None,
                },
                status=503,
            )
        document, status = await worker.explain_customer(customer_id)
        return web.json(document, status=status)

    @app.page(HEALTH_PATH)
    async def health(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page(READY_PATH)
    async def ready(web: Any, request: Any) -> Any:
        is_ready = recovered(worker)
        document = {
            "status": "ready" if is_ready else "recovering",
            "rebalancing": bool(app.rebalancing),
            "partitions": sorted(worker.runners),
        }
        return web.json(document, status=200 if is_ready else 503)
