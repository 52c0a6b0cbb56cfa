"""Costs, the read side: GET /api/costs, account x service x month sums grouped one way, with
totals and month-over-month change, as JSON or CSV (served by api/costs.py).

`routes.py` parses and negotiates, `service.py` validates the query, reads (one tenant
transaction) and shapes the report, `render.py` writes it as CSV (pure), `schemas.py` holds the
response models. The write side (Cost Explorer sync) is functions/sync_costs/; SQL is in
shared/store/. Nothing here may load boto3 or botocore (a cold-start-sensitive read function).
"""
