"""edgefed: an edge cloud control plane.

Every site runs its own small control plane speaking the OpenStack APIs; sites
collaborate on demand through scopes, metadata is synchronised from sources of truth,
and a fleet view aggregates health, alarms and telemetry.
"""

__version__ = "0.1.0"
