"""Billing with Polar: checkout, portal, webhooks, entitlements (service.py lists the use cases)."""
