"""End to end in headless Chromium against a real `mrv console serve` on the seeded database: an operator
logs in, sees the fleet, opens a project and its report, downloads the evidence bundle and `mrv verify`
passes on it; an admin enrolls and revokes a device through the page. Screenshots go to
test-artifacts/console/."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from mrv_engine.console.users import Role
from protocol.keys import Ed25519Signer, PublicKeyRecord
from tests.console.browser import artifacts, browser, log_in  # noqa: F401 (fixtures)
from tests.console.conftest import ConsoleServer, db_row
from tests.console.seed import PASSWORDS, PV_DEVICE, PV_PROJECT, WIND_DEVICE

pytestmark = pytest.mark.integration


@pytest.fixture
def page(browser: Browser, console_server: ConsoleServer) -> Iterator[Page]:  # noqa: F811
    context = browser.new_context(base_url=console_server.url, accept_downloads=True,
                                  viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)  # the first report is generated on request
    try:
        yield context.new_page()
    finally:
        context.close()


def charts_drawn(page: Page) -> None:
    for figure in page.locator("figure.chart").all():
        expect(figure).to_have_attribute("data-rendered", "true")
        expect(figure.locator("canvas")).to_be_visible()


def test_operator_opens_a_report_and_verifies_its_evidence(page: Page, console_server: ConsoleServer,
                                                           artifacts: Path) -> None:  # noqa: F811
    page.goto("/")
    expect(page).to_have_url(f"{console_server.url}/login?next=%2F")
    log_in(page, "operator", PASSWORDS[Role.OPERATOR])
    expect(page).to_have_url(f"{console_server.url}/")
    for device in (PV_DEVICE, WIND_DEVICE):
        expect(page.locator(f'#devices tr[data-device="{device}"]')).to_be_visible()
    charts_drawn(page)
    page.screenshot(path=artifacts / "fleet.png", full_page=True)

    page.click(f'#projects a[href="/projects/{PV_PROJECT}"]')
    expect(page.locator("h1")).to_contain_text(PV_PROJECT)
    charts_drawn(page)
    page.screenshot(path=artifacts / "project.png", full_page=True)

    page.locator("#periods a", has_text="report").first.click()
    expect(page.locator("h1")).to_contain_text("Monitoring report")
    expect(page.locator('#key-numbers [data-field="net_generation_wh"]')).to_be_visible()
    page.screenshot(path=artifacts / "report.png", full_page=True)

    with page.expect_download() as download_info:
        page.click("#evidence-download")
    download = download_info.value
    bundle = artifacts / download.suggested_filename
    download.save_as(bundle)
    verified = subprocess.run([sys.executable, "-m", "mrv_cli", "verify", str(bundle),
                               "--vkey", console_server.seed.log_vkey,
                               "--ledger-file", str(console_server.seed.ledger_file)],
                              capture_output=True, text=True, check=False)
    assert verified.returncode == 0, verified.stdout[-2000:] + verified.stderr
    assert "verified:" in verified.stdout and "FAIL" not in verified.stdout


def test_admin_enrolls_and_revokes_a_device(page: Page, console_server: ConsoleServer,
                                            artifacts: Path) -> None:  # noqa: F811
    page.goto("/admin/devices")
    log_in(page, "admin", PASSWORDS[Role.ADMIN])
    expect(page).to_have_url(f"{console_server.url}/admin/devices")
    record = PublicKeyRecord("meter-e2e", Ed25519Signer.generate().public_key)
    page.fill("#public_key", record.to_json())
    page.fill("#project_id", PV_PROJECT)
    page.select_option("#kind", "pv")
    page.fill("#capacity_w", "5000000")
    page.click("#enroll button[type=submit]")
    expect(page.locator("#enrolled")).to_be_visible()
    assert len(page.locator('[data-field="broker_password"]').inner_text().strip()) >= 16
    page.screenshot(path=artifacts / "admin-enrolled.png", full_page=True)

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator('#devices tr[data-device="meter-e2e"] button', has_text="Revoke").click()
    expect(page.locator("#revoked")).to_contain_text("meter-e2e")
    expect(page.locator('#devices tr[data-device="meter-e2e"] [data-field="key_status"]')).to_contain_text("revoked")
    page.screenshot(path=artifacts / "admin-revoked.png", full_page=True)
    assert db_row(console_server.conninfo, "SELECT status FROM device_keys WHERE device_id = 'meter-e2e'") == (
        "revoked",)
