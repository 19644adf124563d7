"""Pure firewall core: model, validation, compiler, renderer, incremental diff, tracer.

The compiler's entry points live in their modules (`compiler.compile_host`,
`render.render_iptables`, `incremental.diff`, `scenario.load_scenario`); this package only
re-exports the validators so that Django code can import them without the compiler.
"""

from sgweb.firewall.errors import FirewallError
from sgweb.firewall.validate import normalize_cidr, validate_host_state, validate_rule

__all__ = ["FirewallError", "normalize_cidr", "validate_host_state", "validate_rule"]
