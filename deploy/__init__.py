"""Running Pulumi on this project: state backends, the one-time bootstrap, offline checks."""
