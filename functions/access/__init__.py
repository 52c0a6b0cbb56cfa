"""Access governance, the read side of CloudTrail: events, principals, new principals and the
vendor-access ledger, /api/access/* (served by api/access.py).

`routes.py` parses, `service.py` reads keyset pages (one tenant transaction each), `schemas.py`
holds the response models, built from store rows. The write side (CloudTrail sync) is
functions/sync_cloudtrail/; SQL is in shared/store/. Nothing here may load boto3 or botocore (a
cold-start-sensitive read function).
"""
