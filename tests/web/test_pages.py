"""The fan's pages and the operator's dashboard in a real browser (headless Chromium driven by
Selenium), against a real server in test mode (docs/web.md).

- Two fans join a concert whose queue holds one: the second waits on the waiting page and is
  let through by itself when the first pays.
- A hold on the seat map expires when the server's test clock passes ``hold_ttl_s``: the seat
  is free again and the countdown says so.
- The dashboard's numbers are those of ``GET /v1/admin/concerts/{id}/stats``.
- A fan buys a seat through a cluster's workers (``boxoffice cluster up``) with the same pages.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from boxoffice_api.testing import section
from boxoffice_api.testing.harness import PASSWORD, ClusterHarness, Harness, ServerHarness

# Upper bounds for what the pages do by themselves (polls every second or few); never waited
# out when the page is right.
WAIT_S = 20
Screenshot = Callable[[WebDriver, str], None]


def wait_for(browser: WebDriver, condition: Callable[[WebDriver], Any], what: str) -> Any:
    """The first truthy value of ``condition(browser)`` within ``WAIT_S``; fails with ``what``
    and the page's error line otherwise."""
    try:
        return WebDriverWait(browser, WAIT_S, poll_frequency=0.1).until(condition)
    except Exception as exc:
        error = browser.find_elements(By.ID, "error")
        shown = error[0].text if error else ""
        raise AssertionError(
            f"{what}: not seen at {browser.current_url} (error: {shown!r})"
        ) from exc


def by_id(browser: WebDriver, element_id: str) -> WebElement:
    return browser.find_element(By.ID, element_id)


def sign_up(browser: WebDriver, base_url: str) -> str:
    """Signs a new fan up on the home page; returns the email once the concerts show."""
    email = f"fan-{uuid.uuid4().hex[:10]}@example.com"
    browser.get(base_url + "/")
    wait_for(browser, lambda b: by_id(b, "email").is_displayed(), "the log-in form")
    by_id(browser, "email").send_keys(email)
    by_id(browser, "password").send_keys(PASSWORD)
    by_id(browser, "signup").click()
    wait_for(browser, lambda b: by_id(b, "browse").is_displayed(), "the concert list")
    return email


def join(browser: WebDriver, concert: dict[str, Any], page: str) -> None:
    """Joins ``concert``'s queue from the concert list; waits for ``page`` (wait or seats)."""
    button = f"button[data-concert='{concert['id']}']"
    wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, button), "the concert")
    browser.find_element(By.CSS_SELECTOR, button).click()
    wait_for(browser, lambda b: f"/concerts/{concert['id']}/{page}" in b.current_url, page)


def seat_button(browser: WebDriver, seat_id: int) -> WebElement:
    return browser.find_element(By.CSS_SELECTOR, f"button[data-seat='{seat_id}']")


def seat_status(browser: WebDriver, seat_id: int) -> str | None:
    found = browser.find_elements(By.CSS_SELECTOR, f"button[data-seat='{seat_id}']")
    return found[0].get_attribute("data-status") if found else None


def wait_seat(browser: WebDriver, seat_id: int, status: str) -> None:
    wait_for(browser, lambda b: seat_status(b, seat_id) == status, f"seat {seat_id} {status}")


def first_seat_ids(server: Harness, concert: dict[str, Any], count: int) -> list[int]:
    """The ids of the first ``count`` seats of the concert's first schedule, read with an
    ACTIVE token of a user of its own (the seat map's order is seat-id order)."""
    probe = server.active_token(server.user(), concert["id"])
    seats = server.seats(probe, concert["schedules"][0]["id"], status=None)
    server.http.delete(f"/v1/concerts/{concert['id']}/queue", headers=probe.headers)
    return [seat["id"] for seat in seats[:count]]


def test_the_second_fan_waits_and_is_let_through_when_the_first_pays(
    browsers: Callable[..., WebDriver], boxoffice_server: ServerHarness, screenshot: Screenshot
) -> None:
    concert = boxoffice_server.concert(
        title="Small Hall Night",
        artist="The Band",
        venue="Club FF",
        queue_capacity=1,
        poll_interval_s=1,
    )
    (seat_id,) = first_seat_ids(boxoffice_server, concert, 1)
    first, second = browsers(), browsers()
    sign_up(first, boxoffice_server.url)
    screenshot(first, "concerts")
    join(first, concert, "seats")
    sign_up(second, boxoffice_server.url)
    # Three fans ahead of the second, WAITING too; they leave, and the page follows.
    ahead = []
    for _ in range(3):
        user = boxoffice_server.user()
        r = boxoffice_server.http.post(f"/v1/concerts/{concert['id']}/queue", headers=user.headers)
        assert r.json()["status"] == "WAITING", r.text
        ahead.append(user.headers | {"X-Queue-Token": r.json()["queue_token"]})
    join(second, concert, "wait")
    wait_for(second, lambda b: by_id(b, "ahead").text == "3", "three ahead")
    assert by_id(second, "place").text == "4"
    screenshot(second, "waiting")
    for headers in ahead:
        r = boxoffice_server.http.delete(f"/v1/concerts/{concert['id']}/queue", headers=headers)
        assert r.json()["ended_reason"] == "LEFT", r.text
    wait_for(second, lambda b: by_id(b, "ahead").text == "0", "no one ahead")
    assert by_id(second, "place").text == "1"
    assert float(by_id(second, "progress").get_attribute("value") or 0) > 0.5

    wait_seat(first, seat_id, "AVAILABLE")
    seat_button(first, seat_id).click()
    wait_seat(first, seat_id, "MINE")
    assert by_id(first, "countdown").text.endswith("s"), by_id(first, "countdown").text
    by_id(first, "pay").click()  # a new fan's balance is 0: the problem's detail is shown
    wait_for(first, lambda b: "less than the amount" in by_id(b, "error").text, "the refusal")
    charge = by_id(first, "charge")
    assert charge.get_attribute("value") == "100000"  # what is missing, suggested
    charge.submit()
    wait_for(first, lambda b: by_id(b, "balance").text == "100,000 won", "the charge")
    by_id(first, "pay").click()
    wait_for(first, lambda b: "/receipt" in b.current_url, "the receipt")
    wait_for(first, lambda b: "CONFIRMED" in by_id(b, "r-status").text, "a confirmed receipt")
    assert by_id(first, "r-seats").text == "A-1-1"
    assert by_id(first, "r-amount").text == "100,000 won"
    screenshot(first, "receipt")

    # The payment completed the first fan's token: the waiting page moves on by itself.
    wait_for(second, lambda b: f"/concerts/{concert['id']}/seats" in b.current_url, "admission")
    wait_seat(second, seat_id, "SOLD")
    assert not seat_button(second, seat_id).is_enabled()


def test_a_hold_expires_on_the_seat_map(
    browsers: Callable[..., WebDriver], boxoffice_server: ServerHarness, screenshot: Screenshot
) -> None:
    concert = boxoffice_server.concert(
        title="IU 2027 World Tour",
        artist="IU",
        venue="KSPO Dome",
        hold_ttl_s=60,
        sections=[
            section("A", rows=3, seats_per_row=10, grade="VIP", price=165_000),
            section("B", rows=4, seats_per_row=12, grade="R", price=132_000),
        ],
    )
    seat_ids = first_seat_ids(boxoffice_server, concert, 3)
    # Another fan holds and buys a few seats, so the map shows every status.
    other = boxoffice_server.funded_user()
    token = boxoffice_server.active_token(other, concert["id"])
    held = boxoffice_server.http.post(
        "/v1/reservations",
        json={"schedule_id": concert["schedules"][0]["id"], "quantity": 2, "grade": "R"},
        headers=token.headers,
    )
    assert held.status_code == 201, held.text
    fan = browsers()
    sign_up(fan, boxoffice_server.url)
    join(fan, concert, "seats")

    # A click holds a seat, a second click releases it.
    wait_seat(fan, seat_ids[0], "AVAILABLE")
    seat_button(fan, seat_ids[0]).click()
    wait_seat(fan, seat_ids[0], "MINE")
    seat_button(fan, seat_ids[0]).click()
    wait_seat(fan, seat_ids[0], "AVAILABLE")
    # The best two seats of the front row.
    by_id(fan, "best-n").clear()
    by_id(fan, "best-n").send_keys("2")
    by_id(fan, "best-form").submit()
    wait_seat(fan, seat_ids[0], "MINE")
    wait_seat(fan, seat_ids[1], "MINE")
    assert seat_status(fan, seat_ids[2]) == "AVAILABLE"
    countdown = by_id(fan, "countdown")
    assert countdown.get_attribute("data-state") == "PENDING"
    assert countdown.text != "expired"
    screenshot(fan, "seat-map")

    boxoffice_server.advance(61)  # past hold_ttl_s on the server's clock
    wait_for(fan, lambda b: by_id(b, "countdown").text == "expired", "the countdown expired")
    wait_seat(fan, seat_ids[0], "AVAILABLE")
    wait_seat(fan, seat_ids[1], "AVAILABLE")
    assert by_id(fan, "pay").get_attribute("disabled") is not None


STAT_FIELDS = ("queue_waiting", "queue_active", "seats_held", "seats_sold", "revenue")


# The dashboard redraws its rows every few seconds: they are read in one script, never held.
ROW_BY_TITLE = """
for (const tr of document.querySelectorAll("tr[data-concert]")) {
  const title = tr.querySelector("th").textContent;
  if (title.startsWith(arguments[0])) return Number(tr.dataset.concert);
}
return null;
"""
ROW_CELLS = """
const tr = document.querySelector(`tr[data-concert="${arguments[0]}"]`);
if (!tr) return null;
const cells = {};
for (const td of tr.querySelectorAll("td[data-field]")) cells[td.dataset.field] = td.dataset.value;
cells.capacity = tr.querySelector("td[data-field=queue_active]").dataset.capacity ?? null;
cells.sparklines = tr.querySelectorAll("svg.spark polyline").length;
return cells;
"""


def dashboard_numbers(browser: WebDriver, concert_id: int) -> dict[str, Any] | None:
    """The row of ``concert_id``: each cell's ``data-value`` by field, the capacity, and how
    many sparklines have a line."""
    cells: dict[str, Any] | None = browser.execute_script(ROW_CELLS, concert_id)
    return cells


def test_the_dashboard_shows_the_stats_of_every_concert(
    browsers: Callable[..., WebDriver], boxoffice_server: ServerHarness, screenshot: Screenshot
) -> None:
    operator = browsers()
    operator.get(boxoffice_server.url + "/admin")
    wait_for(operator, lambda b: by_id(b, "admin-key").is_displayed(), "the key form")
    by_id(operator, "admin-key").send_keys(boxoffice_server.admin_key)
    by_id(operator, "key-form").submit()
    wait_for(operator, lambda b: by_id(b, "dash").is_displayed(), "the dashboard")

    # A concert created from the form: 2 waiting fans, 3 active, one paid, one holding.
    by_id(operator, "create").click()
    by_id(operator, "c-title").send_keys("Dashboard Night")
    by_id(operator, "c-capacity").clear()
    by_id(operator, "c-capacity").send_keys("3")
    by_id(operator, "concert-form").submit()
    concert_id = wait_for(
        operator,
        lambda b: b.execute_script(ROW_BY_TITLE, "Dashboard Night"),
        "the new concert's row",
    )
    seats_total = boxoffice_server.http.get(
        f"/v1/admin/concerts/{concert_id}/stats", headers=boxoffice_server.admin_headers
    ).json()["seats_total"]
    assert seats_total == 5 * 10 + 10 * 20  # the form's default sections

    tokens = [
        boxoffice_server.active_token(boxoffice_server.funded_user(), concert_id) for _ in range(3)
    ]
    for _ in range(2):
        waiting = boxoffice_server.user()
        joined = boxoffice_server.http.post(
            f"/v1/concerts/{concert_id}/queue", headers=waiting.headers
        )
        assert joined.json()["status"] == "WAITING"
    schedule = boxoffice_server.http.get(
        f"/v1/concerts/{concert_id}", headers=tokens[0].user.headers
    )
    sid = schedule.json()["schedules"][0]["id"]
    for token, quantity in ((tokens[0], 2), (tokens[1], 3)):
        r = boxoffice_server.http.post(
            "/v1/reservations",
            json={"schedule_id": sid, "quantity": quantity},
            headers=token.headers,
        )
        assert r.status_code == 201, r.text
        reservation = r.json()
    paid = boxoffice_server.http.post(
        "/v1/payments", json={"reservation_id": reservation["id"]}, headers=tokens[1].headers
    )
    assert paid.status_code == 201, paid.text

    stats = boxoffice_server.http.get(
        f"/v1/admin/concerts/{concert_id}/stats", headers=boxoffice_server.admin_headers
    ).json()
    assert stats["seats_sold"] == 3 and stats["seats_held"] == 2 and stats["revenue"] > 0
    expected = {f: str(stats[f]) for f in STAT_FIELDS} | {"capacity": "3"}

    def matches(b: WebDriver) -> bool:
        shown = dashboard_numbers(b, concert_id)
        return shown is not None and all(shown[k] == v for k, v in expected.items())

    wait_for(operator, matches, f"the dashboard's numbers {expected}")
    # Two samples or more: an admission rate and a line in each sparkline.
    shown = wait_for(
        operator,
        lambda b: (n := dashboard_numbers(b, concert_id)) and n["sparklines"] == 3 and n,
        "the sparklines",
    )
    assert float(shown["admitted_per_minute"]) >= 0
    assert all(shown[k] == v for k, v in expected.items())  # nothing changed since
    operator.execute_script("document.getElementById('create').open = false; scrollTo(0, 0)")
    screenshot(operator, "dashboard")


@pytest.mark.parametrize("page", ["/", "/admin"])
def test_pages_fit_a_phone_width(
    browsers: Callable[..., WebDriver], boxoffice_server: ServerHarness, page: str
) -> None:
    phone = browsers()
    # A desktop window has a minimum width; the phone's viewport is emulated.
    metrics = {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True}
    phone.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    phone.get(boxoffice_server.url + page)
    wait_for(phone, lambda b: b.find_elements(By.CSS_SELECTOR, "form"), "the page")
    width = phone.execute_script("return document.documentElement.scrollWidth")
    assert width <= 390, f"{page} scrolls sideways at 390 px: {width} px wide"


def test_a_fan_buys_a_seat_through_a_clusters_workers(
    browsers: Callable[..., WebDriver], boxoffice_cluster: ClusterHarness
) -> None:
    concert = boxoffice_cluster.concert(title="Cluster Night", queue_capacity=5)
    (seat_id,) = first_seat_ids(boxoffice_cluster, concert, 1)
    fan = browsers()
    sign_up(fan, boxoffice_cluster.url)
    join(fan, concert, "seats")  # ACTIVE at once: the queue has room
    wait_seat(fan, seat_id, "AVAILABLE")
    seat_button(fan, seat_id).click()
    wait_seat(fan, seat_id, "MINE")
    charge = by_id(fan, "charge")
    charge.clear()
    charge.send_keys("100000")
    charge.submit()
    wait_for(fan, lambda b: by_id(b, "balance").text == "100,000 won", "the charge")
    by_id(fan, "pay").click()
    wait_for(fan, lambda b: "/receipt" in b.current_url, "the receipt")
    wait_for(fan, lambda b: "CONFIRMED" in by_id(b, "r-status").text, "a confirmed receipt")
    stats = boxoffice_cluster.http.get(
        f"/v1/admin/concerts/{concert['id']}/stats", headers=boxoffice_cluster.admin_headers
    ).json()
    assert (stats["seats_sold"], stats["payments"]) == (1, 1)
