"""The web dashboard and its JSON API (the ``dashboard`` extra).

``pgqueue dashboard`` runs it alone; ``create_app(queue)`` returns the ASGI app to mount in
yours. Pages: overview, jobs, a job, the dead letter queue, schedules, queues. JSON under
``/api``, described at ``/api/openapi.json``.
"""

from pgqueue.dashboard.app import create_app

__all__ = ["create_app"]
