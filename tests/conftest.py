"""Shared pytest configuration (several areas append here)."""


def pytest_configure(config):
    # The browser test needs the built book and Debian's chromium: `make test` runs it
    # after `make book` with `pytest -m browser`; unit runs use `pytest -m "not browser"`.
    config.addinivalue_line("markers", "browser: drives chromium over the built book (run after `make book`)")
    config.addinivalue_line("markers", "site: reads the built book's files (run after `make book`)")
