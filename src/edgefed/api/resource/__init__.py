"""The resource kit: a wire resource declared as data, its routes built from that.

See ``declare.py`` for the shape of a declaration and docs/resources.md for how to
declare a resource, a custom action and a repository.
"""

from edgefed.api.resource.access import Access, AdminOnly, ProjectOwned
from edgefed.api.resource.call import Call
from edgefed.api.resource.declare import CRUD, READ_ONLY, Action, Filter, Resource, action
from edgefed.api.resource.dialect import EDGE, Dialect
from edgefed.api.resource.repository import Filters, Repository

__all__ = [
    "CRUD",
    "EDGE",
    "READ_ONLY",
    "Access",
    "Action",
    "AdminOnly",
    "Call",
    "Dialect",
    "Filter",
    "Filters",
    "ProjectOwned",
    "Repository",
    "Resource",
    "action",
]
