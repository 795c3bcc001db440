"""HTTP surface of the sync engine under /edge/v1/sync: one router from three rooms.

Operators (admin tokens): marks, registrations, receivers, requests, progress
(operator_routes.py) and conflicts (conflict_routes.py). Sites (signed requests,
peers.py): receivers, push, blobs, pull, reports (site_routes.py). The routes are thin:
they check the caller and the body, and leave the work to the engine (state.py).
"""

from __future__ import annotations

from fastapi import APIRouter

from edgefed.api.service import routes_of
from edgefed.sync import conflict_routes, operator_routes, site_routes

router = APIRouter(
    routes=routes_of(operator_routes.router, conflict_routes.router, site_routes.router)
)
