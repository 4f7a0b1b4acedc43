"""Steps of the browser tests shared by their modules."""
from __future__ import annotations

from tests.support.dashboard import PASSWORDS


def sign_in(page, base: str, username: str, password: str | None = None) -> None:
    """Open the sign-in form, fill it in (English or German) and send it."""
    if "/login" not in page.url:
        page.goto(f"{base}/")
    page.get_by_label("Username" if page.locator("html").get_attribute("lang") == "en" else "Benutzername") \
        .fill(username)
    page.locator("#password").fill(password if password is not None else PASSWORDS[username])
    page.locator("form button[type=submit].primary").click()
