"""Incident and sub-processor change notices: operators publish, agencies read (issue 8)."""
