"""The sites service: this site's identity card, the fleet registry, enrollment and gossip."""
