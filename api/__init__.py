"""The REST API (FastAPI): a second door to Campaign resources, plus admin login.

It never writes message rows or jobs: creating a campaign creates a Campaign
resource, reads come from the resource status and Postgres.
"""
