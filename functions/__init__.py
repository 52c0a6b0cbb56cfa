"""Capabilities: each package exposes entry functions with their dependencies as arguments.

Imports flow one way: api -> functions -> shared. Nothing here imports boto3, botocore or
psycopg (tests/test_layering.py checks): AWS and Postgres are reached through shared.
"""
