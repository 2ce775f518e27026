"""Shared pytest configuration (several areas append here)."""


def pytest_configure(config):
    # The browser test needs the built book and Debian's chromium: `make test` runs it
    # after `make book` with `pytest -m browser`; unit runs use `pytest -m "not browser"`.
    config.addinivalue_line("markers", "browser: drives chromium over the built book (run after `make book`)")
    config.addinivalue_line("markers", "site: reads the built book's files (run after `make book`)")
    # Every chapter in a fresh simulated Colab runtime (tests/test_colab_notebooks.py): slow,
    # so `make test` runs it as its own step after the book, with `pytest -m colab`.
    config.addinivalue_line("markers", "colab: runs every chapter as in a fresh Colab runtime (slow)")
