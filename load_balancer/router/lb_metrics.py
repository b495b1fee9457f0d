"""The router's Prometheus metrics (names shared with monitoring/, see the common brief)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from movierec.base.metrics import LATENCY_BUCKETS_SECONDS

LB_REQUESTS = Counter("movierec_lb_requests_total", "Requests answered by the router",
                      ["backend", "version", "status"])
LB_LATENCY = Histogram("movierec_lb_request_duration_seconds", "Router request latency (including retries)",
                       ["backend"], buckets=LATENCY_BUCKETS_SECONDS)
LB_RETRIES = Counter("movierec_lb_retries_total", "Requests retried on another backend after this one failed",
                     ["backend"])
LB_BACKEND_ERRORS = Counter("movierec_lb_backend_errors_total", "Backend failures seen by the router",
                            ["backend", "kind"])
LB_BACKEND_UP = Gauge("movierec_lb_backend_up", "Backend health as seen by the active checks (0/1)", ["backend"],
                      multiprocess_mode="livemostrecent")
LB_CANARY_WEIGHT = Gauge("movierec_lb_canary_weight", "Share of users routed to the nightly",
                         multiprocess_mode="livemostrecent")
ONLINE_HIT_RATE = Gauge("movierec_online_hit_rate", "Mean per-user hit rate per arm (newest hour of settled requests)",
                        ["arm"], multiprocess_mode="livemostrecent")
ONLINE_HIT_RATE_LOWER = Gauge("movierec_online_hit_rate_lower", "Lower end of the arm's always-valid hit rate interval",
                              ["arm"], multiprocess_mode="livemostrecent")
ONLINE_HIT_RATE_UPPER = Gauge("movierec_online_hit_rate_upper", "Upper end of the arm's always-valid hit rate interval",
                              ["arm"], multiprocess_mode="livemostrecent")
RELEASE_DECISIONS = Counter("movierec_release_decisions_total", "Release decisions applied at the router",
                            ["decision"])
