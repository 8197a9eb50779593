"""One router module per endpoint group: ``inference`` (one route per registered operation),
``models`` (what is served), ``health`` (liveness, readiness, metrics)."""
