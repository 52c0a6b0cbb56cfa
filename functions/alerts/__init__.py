"""Alerts: forecasts, budgets and spend anomalies with "what changed", all from the cost
sync's month-to-date snapshots (no Cost Explorer request of their own):
/api/forecasts, /api/budgets[/{budget_id}], /api/anomalies[/settings|/{anomaly_id}[/acknowledge]]
(served by api/alerts.py).

`forecast.py` (the month-end forecast), `detect.py` (the anomaly rule), `whatchanged.py` (the
CloudTrail write events behind an anomaly, ranked with `services.py`'s map and the checked-in
`operations.json`) are pure; `service.py` holds the use cases, among them `after_cost_sync`,
which the costs job runs after each sync (functions/jobs/registry.py): thresholds and anomalies
are evaluated there, never on a read request. SQL is in shared/store/ (alerts.py,
snapshots.py, clients.py).
"""
