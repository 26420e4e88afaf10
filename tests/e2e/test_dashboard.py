"""The dashboard in a real browser (headless Chromium from apt, driven by Playwright):
sign-in errors and expired sessions, the create form showing the API's validation
errors, and a campaign created through the form, followed live to its final phase,
its failed messages listed and retried, with the real operator and workers.

Screenshots land in the test's tmp dir and in ``/tmp/notifq-dashboard-screenshots/``.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import rbac
from api_client import admin_cli
from bystander import Bystander
from harness import Stack, campaign
from playwright import sync_api

from notifq.api.app import create_app
from notifq.api.kube import CampaignClient
from notifq.api.security import issue_token
from notifq.api.testing import serve_in_thread
from notifq.core.settings import ApiSettings

Browser, Page, expect = sync_api.Browser, sync_api.Page, sync_api.expect

pytestmark = [
    pytest.mark.e2e,
    # the test bed's API server has a self-signed certificate (insecure-skip-tls-verify)
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SHOTS = Path("/tmp/notifq-dashboard-screenshots")
ADMIN, PASSWORD = "admin@example.com", "a long and private passphrase"
WAIT_MS = 60_000


@dataclass
class Dashboard:
    """An API server (serving the dashboard) on the test bed, and what tests need of it."""

    url: str
    jwt_secret: str
    admin_id: str
    client: httpx.Client
    auth: dict[str, str]

    def create(self, **body: Any) -> str:
        resp = self.client.post("/campaigns", json=body, headers=self.auth)
        assert resp.status_code == 202, resp.text
        return str(resp.json()["campaignId"])


@pytest.fixture
def dashboard(
    control_plane: Any, database_url: str, redis_server: Any, namespace: str, campaign_admins: str
) -> Iterator[Dashboard]:
    secret = secrets.token_urlsafe(48)
    settings = ApiSettings(
        environment="test",
        database_url=database_url,
        redis_url=redis_server.url,
        queue_prefix=f"dash{uuid.uuid4().hex[:8]}",
        namespace=namespace,
        jwt_secret=secret,
        admin_email=ADMIN,
        admin_password=PASSWORD,
        admin_kube_groups=[campaign_admins],
    )
    kube = CampaignClient.from_environment(namespace, str(control_plane.kubeconfig))
    try:
        with (
            serve_in_thread(create_app(settings, campaigns_client=kube)) as url,
            httpx.Client(base_url=url, timeout=60) as client,
        ):
            login = client.post("/auth/login", json={"email": ADMIN, "password": PASSWORD})
            assert login.status_code == 200, login.text
            body = login.json()
            auth = {"Authorization": f"Bearer {body['token']}"}
            yield Dashboard(url, secret, body["admin"]["id"], client, auth)
            control_plane.kubectl(
                "delete", "campaigns", "--all", "-n", namespace, "--wait=false", check=False
            )
    finally:
        kube.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} missing: run hack/setup.sh (apt package chromium)")
    with sync_api.sync_playwright() as pw:
        # Chromium from apt; Playwright never downloads a browser of its own here.
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


class Console:
    """Console errors and uncaught exceptions of a page."""

    STATUS = re.compile(r"Failed to load resource: the server responded with a status of (\d+)")

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))

    def unexpected(self, *expected_statuses: int) -> list[str]:
        """Errors other than the browser's own line for an HTTP answer the test provoked."""
        out = []
        for text in self.errors:
            m = self.STATUS.search(text)
            if not (m and int(m.group(1)) in expected_statuses):
                out.append(text)
        return out


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=LAPTOP)
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    yield pg
    context.close()


@pytest.fixture
def console(page: Any) -> Console:
    return Console(page)


@pytest.fixture
def shots(tmp_path: Path) -> Callable[[Any, str], Path]:
    """Save a full-page screenshot under the test's tmp dir and in SHOTS."""
    folder = tmp_path / "screenshots"
    folder.mkdir()
    SHOTS.mkdir(exist_ok=True)
    print(f"\ndashboard screenshots: {folder} (copied to {SHOTS})")

    def take(page: Any, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True, animations="disabled")
        shutil.copy(path, SHOTS / path.name)
        return path

    return take


def sign_in(page: Any, password: str = PASSWORD, email: str = ADMIN) -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def fits_width(page: Any) -> bool:
    """No horizontal scrolling at the current viewport width."""
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_sign_in_errors_and_expired_sessions(
    dashboard: Dashboard, page: Any, console: Console
) -> None:
    html = dashboard.client.get("/dashboard/")
    assert html.status_code == 200 and "text/html" in html.headers["content-type"]
    assert "default-src 'none'; script-src 'self'" in html.headers["content-security-policy"]
    page.goto(dashboard.url)  # / redirects to the dashboard, which asks to sign in
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    sign_in(page, "not the password")
    expect(page.locator("#login-error")).to_have_text("Invalid email or password.")
    sign_in(page)
    expect(page.get_by_role("heading", name="Campaigns")).to_be_visible()
    expect(page.get_by_text("No campaigns yet.")).to_be_visible()
    expect(page.locator("#account-email")).to_have_text(ADMIN)

    # An expired token in storage: back to sign-in with a message, on reload.
    expired = issue_token(dashboard.admin_id, dashboard.jwt_secret, 3600, now=time.time() - 7200)
    store = "s => sessionStorage.setItem('notifq.session', s)"
    page.evaluate(store, json.dumps({"token": expired, "email": ADMIN}))
    page.reload()
    expect(page.locator("#login-notice")).to_contain_text("Your session has expired")
    expect(page.get_by_role("button", name="Sign out")).to_be_hidden()

    # A token the server refuses though it has not expired (signed with another secret):
    # its 401 signs the user out, and signing in again returns to the page they were on.
    cid = dashboard.create(name="private", recipientCount=5)
    forged = issue_token(dashboard.admin_id, secrets.token_urlsafe(48), 3600)
    page.evaluate(store, json.dumps({"token": forged, "email": ADMIN}))
    page.goto(f"{dashboard.url}/dashboard/#/campaigns/{cid}")
    expect(page.locator("#login-notice")).to_contain_text("no longer valid")
    sign_in(page)
    expect(page.get_by_role("heading", name="private")).to_be_visible()
    expect(page.locator("#messages-empty")).to_have_text("No failed messages.")

    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#login-notice")).to_have_text("You have signed out.")
    assert page.evaluate("sessionStorage.getItem('notifq.session')") is None
    assert console.unexpected(401) == []


def test_namespace_menu_lists_only_what_the_user_may_list(
    dashboard: Dashboard,
    page: Any,
    console: Console,
    control_plane: Any,
    namespace: str,
    database_url: str,
    stack_factory: Callable[..., Stack],
    tmp_path: Path,
    shots: Callable[[Any, str], Path],
) -> None:
    """The header's namespace menu holds exactly the namespaces where Kubernetes lets the
    signed-in user list campaigns (the API asks per namespace); choosing one lists its
    campaigns and creates there. Beside a bystander campaign that must complete."""
    by = Bystander(stack_factory(workers=1, NOTIFQ_MOCK_FAILURE_RATE="0"), count=2_000)
    by.start()
    readable, hidden = (f"{p}-{uuid.uuid4().hex[:6]}" for p in ("team-b", "team-c"))
    for ns in (readable, hidden):
        control_plane.kubectl("create", "namespace", ns)
        control_plane.kubectl("apply", "-f", "-", input=json.dumps(campaign(
            f"in-{ns}", ns, recipients={"generate": {"count": 3}}, suspend=True)))  # fmt: skip
    user = f"frank-{uuid.uuid4().hex[:6]}"
    email = f"{user}@example.com"
    admin_cli(database_url, tmp_path, "create-admin", "--email", email, "--kube-user", user,
              password=PASSWORD)  # fmt: skip
    rbac.grant(control_plane, namespace, ["get", "list", "create"], user=user)
    rbac.grant(control_plane, readable, ["get", "list"], user=user)

    page.goto(f"{dashboard.url}/dashboard/")
    sign_in(page, email=email)
    menu = page.locator("#namespace")
    expect(menu.locator("option")).to_have_count(2)
    assert menu.locator("option").all_text_contents() == sorted([namespace, readable])
    expect(menu).to_have_value(namespace)  # the API's default namespace first
    expect(page.get_by_text("No campaigns yet.")).to_be_visible()
    menu.select_option(readable)
    expect(page.get_by_role("link", name=f"in-{readable}")).to_be_visible()
    shots(page, "namespace-menu")
    # creating goes to the chosen namespace: here RBAC refuses it, and the form says so
    page.get_by_role("link", name="New campaign").first.click()
    page.get_by_label("Name", exact=True).fill("not allowed here")
    page.get_by_role("button", name="Create campaign").click()
    expect(page.locator("#create-error")).to_contain_text("cannot create")
    assert control_plane.kubectl(
        "get", "campaigns", "-n", readable, "-o", "name"
    ).stdout.split() == [f"campaign.notifq.dev/in-{readable}"]
    assert console.unexpected(403) == []
    m = by.wait()
    assert m.seconds is not None, "the bystander did not complete"


def test_create_form_shows_validation_errors(
    dashboard: Dashboard, page: Any, console: Console, shots: Callable[[Any, str], Path]
) -> None:
    page.goto(f"{dashboard.url}/dashboard/")
    sign_in(page)
    page.get_by_role("link", name="New campaign").first.click()
    create = page.get_by_role("button", name="Create campaign")

    create.click()  # no name
    expect(page.locator("#c-name-error")).to_contain_text("at least 1 character")
    expect(page.get_by_label("Name", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#create-error")).to_have_text("Please correct the highlighted fields.")

    page.get_by_label("Name", exact=True).fill("bad input")
    page.get_by_label("Number of recipients").fill("0")
    page.get_by_label("Also send to (optional)").fill("not-an-email")
    create.click()
    expect(page.locator("#c-count-error")).to_contain_text("greater than or equal to 1")
    expect(page.locator("#c-target-error")).to_contain_text("not a valid email")
    expect(page.locator("#c-name-error")).to_be_empty()
    shots(page, "create-errors-laptop")
    page.set_viewport_size(PHONE)
    assert fits_width(page)
    shots(page, "create-errors-phone")
    page.set_viewport_size(LAPTOP)

    # Refused by the CRD's own rule (no field detail): shown for the whole form.
    page.get_by_label("Also send to (optional)").fill("")
    page.get_by_label("Paste a list").check()
    page.get_by_label("Recipients", exact=True).fill("no-at-sign")
    create.click()
    expect(page.locator("#create-error")).to_contain_text("email")
    expect(page.locator("#c-count-error")).to_be_empty()
    assert dashboard.client.get("/campaigns", headers=dashboard.auth).json() == []
    assert console.unexpected(400) == []


def test_campaign_lifecycle(
    dashboard: Dashboard,
    stack_factory: Callable[..., Stack],
    page: Any,
    console: Console,
    shots: Callable[[Any, str], Path],
    tmp_path: Path,
) -> None:
    """Create through the form, follow it live, list its failures, retry them."""
    outage = tmp_path / "outage"
    outage.touch()  # the mock provider throttles every send while this file exists
    stack = stack_factory(
        workers=1, NOTIFQ_MOCK_FAILURE_RATE="0", NOTIFQ_MOCK_OUTAGE_FILE=str(outage)
    )
    page.goto(f"{dashboard.url}/dashboard/")
    sign_in(page)
    page.get_by_role("link", name="New campaign").first.click()
    page.get_by_label("Name", exact=True).fill("Spring launch")
    page.get_by_label("Number of recipients").fill("3000")
    page.get_by_label("Subject").fill("Spring is here, {{ recipient }}")
    page.get_by_label("Body").fill("Message {{ index }} of {{ campaign }}")
    page.get_by_text("Delivery options").click()
    page.get_by_label("Attempts per message").fill("1")  # the outage fails them at once
    page.get_by_label("Rate limit (messages/s)").fill("600")  # a few seconds to watch
    page.get_by_role("button", name="Create campaign").click()
    expect(page.get_by_role("status").first).to_contain_text("created with 3,000 messages")

    # The list updates by itself while the operator and the worker run.
    row = page.locator("#campaigns tbody tr", has_text="Spring launch")
    bar = row.get_by_role("progressbar")
    phase = row.locator(".phase-cell")
    seen: list[int] = []
    deadline = time.monotonic() + WAIT_MS / 1000
    while phase.inner_text() != "Completed with failures":
        assert time.monotonic() < deadline, f"phase {phase.inner_text()!r}, progress {seen}"
        seen.append(int(bar.get_attribute("aria-valuenow") or 0))
        page.wait_for_timeout(200)
    expect(bar).to_have_attribute("aria-valuenow", "100")
    assert seen[0] < 100 and seen == sorted(seen), seen
    expect(row.locator("td[data-label=Failed]")).to_have_text("3,000")
    expect(row.locator("td[data-label=Sent]")).to_have_text("0")
    shots(page, "list-laptop")
    page.set_viewport_size(PHONE)
    assert fits_width(page)
    shots(page, "list-phone")
    page.set_viewport_size(LAPTOP)

    # Detail: counts, failed messages page by page, the actions that apply.
    row.get_by_role("link", name="Spring launch").click()
    expect(page.locator("#campaign-phase")).to_have_text("Completed with failures")
    expect(page.locator(".stat-failed dd")).to_have_text("3,000")
    messages = page.locator("#messages tbody tr")
    expect(messages).to_have_count(20)
    expect(messages.first.locator(".error-cell")).to_have_text(
        "ServiceUnavailable: mock provider outage"
    )
    expect(messages.first.locator("td[data-label=Recipient]")).to_contain_text("@example.com")
    first_seq = messages.first.locator("td").first.inner_text()
    page.get_by_role("button", name="Next page").click()
    expect(messages.first.locator("td").first).not_to_have_text(first_seq)
    page.get_by_role("button", name="Previous page").click()
    expect(messages.first.locator("td").first).to_have_text(first_seq)
    retry = page.get_by_role("button", name="Retry failed")
    expect(retry).to_be_enabled()
    for name in ("Suspend", "Resume", "Cancel campaign"):
        expect(page.get_by_role("button", name=name)).to_be_disabled()
    shots(page, "detail-failed-laptop")

    outage.unlink()
    retry.click()
    expect(page.locator("#action-status")).to_have_text("Retrying 3,000 failed messages.")
    expect(page.locator("#campaign-phase")).to_have_text("Completed", timeout=WAIT_MS)
    expect(page.locator(".stat-sent dd")).to_have_text("3,000")
    expect(page.locator(".stat-failed dd")).to_have_text("0")
    expect(retry).to_be_disabled()
    expect(page.locator("#messages-empty")).to_have_text("No failed messages.")
    assert stack.counts(page.url.rsplit("/", 1)[1]) == {"sent": 3000}
    page.wait_for_timeout(2000)  # a few more samples for the chart's picture
    shots(page, "detail-laptop")
    page.set_viewport_size(PHONE)
    assert fits_width(page)
    shots(page, "detail-phone")
    assert console.unexpected() == []
