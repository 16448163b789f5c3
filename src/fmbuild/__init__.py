"""fmbuild: validate, verify, graph, publish and freeze the MLSecOps Field Manual."""

__version__ = "0.1.0"
