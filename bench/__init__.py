"""Every benchmark, each a thin driver over the product's own functions (``make bench``,
``make bench-gpu``, ``make bench-deployer``, ``make bench-cpu-runtime``).

Above ``deployer``, ``demo``'s local runner and ``samples.bert``; nothing imports this package.
"""
