"""Tests of the local development stack (simulated AWS, event generator)."""
