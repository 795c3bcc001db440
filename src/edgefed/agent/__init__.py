"""The host agent: runs on an inventory host, enrolls it and reports its heartbeat."""
