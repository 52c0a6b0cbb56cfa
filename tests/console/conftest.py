"""The browser fixtures (tests/support/browser.py) for the console's tests."""

from tests.support.browser import browser, console, console_url, playwright

__all__ = ["browser", "console", "console_url", "playwright"]
