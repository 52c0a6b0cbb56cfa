"""The public trust documents (subprocessors, security, security.txt), from shared.policy."""
