"""The custom and external metrics API stand-in: the series it answers from (``series``), the
readers that take them as GKE's autoscaling does (``store``, with ``selectors`` and ``promql``),
and the aggregated API server that serves them (``http_api``, registered by ``server``)."""
