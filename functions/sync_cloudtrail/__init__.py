"""functions/sync_cloudtrail."""
