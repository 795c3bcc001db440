"""The shared HTTP kit: site context, authentication, policy, fault rendering, paging.

Services build their routers on top of it; nothing here knows a particular service.
"""
