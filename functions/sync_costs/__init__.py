"""The cost sync: the 'costs' job handler (service.py) and its pure parts (transform.py)."""
