"""On the built site, every chapter's Colab header works offline: the badge image (an
inlined SVG) is drawn, its link opens the chapter's notebook at the release tag in Colab,
and the setup cell's code is folded. Run after `make book`, like tests/test_book_browser.py,
whose server, browser and offline page visits it reuses."""
import sys
from pathlib import Path

import pytest
from test_book_browser import SITE, Visit, browser, site  # noqa: F401  (fixtures)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))
import psanet_book  # noqa: E402  (needs the path above)

pytestmark = pytest.mark.browser


def _chapter_pages():
    return sorted(p.relative_to(SITE).as_posix() for p in (SITE / "chapters").glob("*.html"))


def test_every_chapter_page_is_built():
    built = [page.removesuffix(".html") for page in _chapter_pages()]
    assert built == sorted(f"chapters/{name}" for name in psanet_book.BUDGETS), built


@pytest.mark.parametrize("page", _chapter_pages())
def test_colab_header_shows_the_badge_and_folds_the_setup_cell(browser, site, page):  # noqa: F811
    visit = Visit(browser, site, page)
    try:
        badge = visit.page.locator('img[alt="Open in Colab"]')
        assert badge.count() == 1
        drawn = badge.evaluate("i => i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 0")
        assert drawn, f"{page}: the Colab badge is not drawn"
        notebook = f"book/{page.removesuffix('.html')}.ipynb"
        href = visit.page.locator('a:has(img[alt="Open in Colab"])').get_attribute("href")
        assert href.endswith(f"/blob/v{psanet_book.version()}/{notebook}"), href
        setup = visit.page.locator("pre", has_text='"google.colab" in sys.modules')
        assert setup.count() == 1 and not setup.is_visible(), f"{page}: the setup cell's code is not folded"
        assert visit.page.get_by_text("Budget, from a fresh runtime").is_visible()
        visit.check_clean(page)
    finally:
        visit.close()
