"""``make demo`` and the local Triton runner: the chart's server on this machine, no cluster.

Above ``deployer`` (it renders the chart through it) and ``samples.bert`` (it builds the model
with it); nothing imports this package.
"""
