"""The local sandbox: moto server on loopback plus the ECS behaviour moto lacks."""
