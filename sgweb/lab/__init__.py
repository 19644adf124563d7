"""Lab hosts: compute hosts and VMs as network namespaces on one machine (`manage.py lab`)."""
