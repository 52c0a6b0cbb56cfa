"""Billing with Polar (checkout, portal, webhooks, entitlements) and the public trust documents."""
