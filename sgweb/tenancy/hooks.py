"""What the apps above the base add to a project's life, registered when Django starts.

The base (this app) must not import the apps built on it, yet a new project needs its default
security group and a project still holding ports cannot be deleted. Each app registers its
part here from its AppConfig.ready.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sgweb.tenancy.models import Project

ProjectCreated = Callable[["Project", Any], object]  # what a hook returns is not used
ProjectInUse = Callable[["Project"], bool]
ProjectUsage = Callable[["Project"], dict[str, int]]


@dataclass
class ProjectHooks:
    # Called inside the transaction that creates the project, with the acting user.
    created: list[ProjectCreated] = field(default_factory=list)
    # True when something of the app's still belongs to the project (its deletion is refused).
    in_use: list[ProjectInUse] = field(default_factory=list)
    # How many of each Neutron resource the app keeps for the project (the quota details' "used").
    usage: list[ProjectUsage] = field(default_factory=list)


project_hooks = ProjectHooks()
