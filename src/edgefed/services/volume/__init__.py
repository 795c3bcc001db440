"""The volume service (Cinder v3); see service.py."""
