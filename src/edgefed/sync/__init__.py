"""Metadata synchronisation: marks, outbox, delivery workers, receivers, image pulls."""
