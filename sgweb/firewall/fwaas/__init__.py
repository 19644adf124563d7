"""FWaaS v2 on routers (issue 16): pure model, compiler and tracer of the second layer."""
