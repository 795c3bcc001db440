"""The test kit: sites in-process and as real processes, the openstack CLI, a WAN emulator.

It lives in the package (not in tests/) so that benchmarks and ``edgefed up --rtt`` can
use the same pieces.
"""
