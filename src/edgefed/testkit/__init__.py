"""The test kit: sites in-process and as real processes, fleets of them, the openstack CLI.

It lives in the package (not in tests/) so that benchmarks can use the same pieces; the
product never imports it (an import-linter contract). The WAN emulator it puts between
sites is a room of the product, ``edgefed.wan``, since ``edgefed up --rtt`` ships it.
"""
