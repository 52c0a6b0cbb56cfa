"""The CloudTrail sync: the 'cloudtrail' job handler and its reader, windows, redaction and
retention purge (see service.py)."""
