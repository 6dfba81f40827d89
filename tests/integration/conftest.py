"""Every test here runs against a real PostgreSQL server (see tests/pgserver.py); the
``postgres`` marker is applied by directory in tests/conftest.py, and a missing server
skips or fails as tests/prerequisites.py says."""
