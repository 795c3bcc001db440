"""The ``edgefed`` command: the top layer, the only one that reads argv and the environment."""
