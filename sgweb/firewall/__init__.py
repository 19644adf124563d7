"""Pure firewall core: model, validation, compiler, renderer, incremental diff, tracer."""

from sgweb.firewall.errors import FirewallError
from sgweb.firewall.validate import normalize_cidr, validate_host_state, validate_rule

__all__ = ["FirewallError", "normalize_cidr", "validate_host_state", "validate_rule"]
