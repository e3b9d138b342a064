"""mirrorline's replication engine."""
