"""The platform's Pulumi components and the pure functions they are built from."""
