#!/usr/bin/env python3
"""Drives m365-relay's dashboard in headless Chromium and checks what a person would see.

Reusable by any test that has a relay (or just its admin server) running:

    python3 Tests/Browser/dashboard_check.py --base-url http://127.0.0.1:8025 \
        --sender scanner@contoso.com --expect-messages 3 \
        --expect-delivered 3 --expect-deferred 2 --expect-failed 1 \
        --hold-sender queued@contoso.com --screenshots docs/screenshots

Steps, each failing with a message that says what was wrong:
  1. `/` loads with the mail flow chart (`svg#flow-chart`); the per-hour
     `data-` counts and the bars add up to the expected totals.
  2. The trace search form, filled with --sender, finds the expected number of
     messages, all from that sender, at a bookmarkable `/trace?...` URL.
  3. The first result opens its timeline at `/messages/{id}` with events.
  4. With --hold-sender: the "hold" button of that sender's queued message on
     `/` turns it `held` after the page reloads.
  5. No script error or Content-Security-Policy violation in the console, and
     no alert() ran (hostile addresses in the store must stay text).

Prints one JSON object on stdout (ids found, chart totals, the held id); exits 1 on failure.
Screenshots (dashboard.png, dashboard-dark.png, message.png) go to --screenshots
or $M365_RELAY_SCREENSHOTS when set.
"""

import argparse
import json
import os
import sys
import time
import urllib.parse

# Never let Selenium Manager look for drivers on the network: Debian's are used.
os.environ.setdefault("SE_OFFLINE", "true")

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import TimeoutException, UnexpectedAlertPresentException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


class CheckFailed(Exception):
    pass


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", required=True, help="the admin server, e.g. http://127.0.0.1:8025")
    parser.add_argument("--sender", required=True, help="search the trace for this sender")
    parser.add_argument("--expect-messages", type=int, help="exact number of messages the search must find (default: at least one)")
    parser.add_argument("--expect-delivered", type=int, help="delivered attempts the 24-hour chart must show in total")
    parser.add_argument("--expect-deferred", type=int, help="deferred attempts the chart must show in total")
    parser.add_argument("--expect-failed", type=int, help="failed attempts the chart must show in total")
    parser.add_argument("--expect-event", action="append", default=[], help="an event kind the timeline must contain (repeatable)")
    parser.add_argument("--hold-sender", help="click 'hold' on the queued message from this sender and see it held")
    parser.add_argument("--screenshots", default=os.environ.get("M365_RELAY_SCREENSHOTS"), help="directory for PNG screenshots")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    parser.add_argument("--timeout", type=float, default=15, help="seconds to wait for any one page or element")
    parser.add_argument("--username", help="HTTP Basic user, when the admin server needs one")
    parser.add_argument("--password", default="", help="HTTP Basic password")
    return parser.parse_args()


def start_browser(args):
    for path, what in ((args.chromium, "chromium"), (args.chromedriver, "chromedriver")):
        if not os.access(path, os.X_OK):
            raise CheckFailed(f"{what} is not installed at {path} (Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = args.chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1360,1000", "--force-device-scale-factor=1", "--lang=en-US",
                 "--no-first-run", "--disable-extensions", "--disable-background-networking"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An alert() left open must fail the check, not be dismissed silently.
    options.unhandled_prompt_behavior = "ignore"
    driver = webdriver.Chrome(service=Service(executable_path=args.chromedriver), options=options)
    driver.set_page_load_timeout(args.timeout)
    driver.set_script_timeout(args.timeout)
    return driver


def url(args, path):
    base = args.base_url.rstrip("/")
    if args.username:
        parts = urllib.parse.urlsplit(base)
        credentials = urllib.parse.quote(args.username, safe="") + ":" + urllib.parse.quote(args.password, safe="")
        base = urllib.parse.urlunsplit((parts.scheme, credentials + "@" + parts.netloc, parts.path, "", ""))
    return base + path


def wait_for(driver, args, condition, what):
    try:
        return WebDriverWait(driver, args.timeout).until(condition)
    except TimeoutException:
        raise CheckFailed(f"timed out after {args.timeout:g} s waiting for {what} on {driver.current_url}")


def no_alert(driver, where):
    try:
        alert = driver.switch_to.alert
    except WebDriverException:
        return
    text = alert.text
    alert.dismiss()
    raise CheckFailed(f"a script ran on {where}: alert({text!r}); hostile input was not escaped")


def check_console(driver, where):
    """Fails on script errors and Content-Security-Policy reports since the last look (reading the log empties it)."""
    problems = []
    for entry in driver.get_log("browser"):
        message = entry.get("message", "")
        if "favicon" in message:
            continue
        if entry.get("level") == "SEVERE" or "Content Security Policy" in message or "Refused to" in message:
            problems.append(message if len(message) < 300 else message[:300] + "...")
    if any("Content Security Policy" in problem for problem in problems):
        raise CheckFailed(f"on {where} the browser blocked a script that is not the dashboard's own (unescaped input?): {problems[0]}")
    if problems:
        raise CheckFailed(f"on {where} the browser console reported: " + " | ".join(problems[:3]))


def full_page_screenshot(driver, path, dark=False):
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {
        "features": [{"name": "prefers-color-scheme", "value": "dark" if dark else "light"}]})
    height = driver.execute_script("return Math.ceil(document.documentElement.scrollHeight)")
    width = 1360
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": min(int(height), 4000), "deviceScaleFactor": 1, "mobile": False})
    time.sleep(0.2)  # one frame for the new metrics to lay out
    driver.save_screenshot(path)
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})


def check_chart(driver, args, report):
    chart = wait_for(driver, args, EC.presence_of_element_located((By.CSS_SELECTOR, "svg#flow-chart")), "the mail flow chart svg#flow-chart")
    hours = chart.find_elements(By.CSS_SELECTOR, "g.hour")
    if len(hours) != 24:
        raise CheckFailed(f"the chart has {len(hours)} hours, expected 24")
    totals = {}
    for status in ("delivered", "deferred", "failed"):
        from_groups = sum(int(hour.get_attribute(f"data-{status}")) for hour in hours)
        from_bars = sum(int(bar.get_attribute("data-count")) for bar in chart.find_elements(By.CSS_SELECTOR, f"rect.bar-{status}"))
        if from_groups != from_bars:
            raise CheckFailed(f"the chart's {status} bars add up to {from_bars} but its hours say {from_groups}")
        legend = int(driver.find_element(By.CSS_SELECTOR, f"#flow-legend li[data-status='{status}'] .legend-count").text)
        if legend != from_groups:
            raise CheckFailed(f"the legend says {legend} {status}, the chart {from_groups}")
        expected = getattr(args, f"expect_{status}")
        if expected is not None and from_groups != expected:
            raise CheckFailed(f"the chart shows {from_groups} {status} attempts in 24 hours, expected {expected}")
        totals[status] = from_groups
    # Drawn, not just present: a visible bar has a real size on screen.
    for bar in chart.find_elements(By.CSS_SELECTOR, "rect.bar")[:5]:
        if bar.size["height"] <= 0 or bar.size["width"] <= 0:
            raise CheckFailed(f"a {bar.get_attribute('data-status')} bar has no size on screen: {bar.size}")
    labels = [text.text for text in chart.find_elements(By.CSS_SELECTOR, "text.axis-x")]
    if len(labels) < 6 or not all(len(label) == 5 and label[2] == ":" for label in labels):
        raise CheckFailed(f"the chart's hour labels look wrong: {labels}")
    report["chart"] = totals


def check_search(driver, args, report):
    field = wait_for(driver, args, EC.element_to_be_clickable((By.ID, "search-sender")), "the search form's sender field")
    field.clear()
    field.send_keys(args.sender)
    Select(driver.find_element(By.ID, "search-since")).select_by_value("")
    driver.find_element(By.ID, "search-submit").click()
    wait_for(driver, args, EC.presence_of_element_located((By.ID, "result-count")), "the search results")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(driver.current_url).query)
    if urllib.parse.urlsplit(driver.current_url).path != "/trace" or query.get("sender") != [args.sender]:
        raise CheckFailed(f"the search did not land on a bookmarkable /trace?sender=... URL: {driver.current_url}")
    rows = driver.find_elements(By.CSS_SELECTOR, "#results-table tr.message")
    senders = [row.get_attribute("data-sender") for row in rows]
    strangers = [sender for sender in senders if args.sender.lower() not in sender.lower()]
    if strangers:
        raise CheckFailed(f"the search for {args.sender} also listed {strangers}")
    if args.expect_messages is not None and len(rows) != args.expect_messages:
        raise CheckFailed(f"the search for {args.sender} found {len(rows)} messages, expected {args.expect_messages}")
    if not rows:
        raise CheckFailed(f"the search for {args.sender} found no message")
    for row in rows:
        if not row.find_element(By.CSS_SELECTOR, "td.sender").text.strip():
            raise CheckFailed("a result row shows no sender")
    report["found"] = [row.get_attribute("data-id") for row in rows]


def check_timeline(driver, args, report):
    first = driver.find_element(By.CSS_SELECTOR, "#results-table tr.message a.message-link")
    expected_id = first.text.strip()
    first.click()
    wait_for(driver, args, EC.presence_of_element_located((By.ID, "timeline")), "the message's timeline")
    if urllib.parse.urlsplit(driver.current_url).path != f"/messages/{expected_id}":
        raise CheckFailed(f"the result link for {expected_id} opened {driver.current_url}")
    shown_id = driver.find_element(By.ID, "message").get_attribute("data-id")
    if shown_id != expected_id:
        raise CheckFailed(f"the timeline page shows message {shown_id}, not {expected_id}")
    sender = driver.find_element(By.ID, "message-sender").text
    if args.sender.lower() not in sender.lower():
        raise CheckFailed(f"the timeline's sender is {sender!r}, expected one containing {args.sender}")
    kinds = [event.get_attribute("data-kind") for event in driver.find_elements(By.CSS_SELECTOR, "#timeline li.event")]
    if not kinds or kinds[0] != "received":
        raise CheckFailed(f"the timeline should start with 'received', it has {kinds}")
    missing = [kind for kind in args.expect_event if kind not in kinds]
    if missing:
        raise CheckFailed(f"the timeline lacks {missing}; it has {kinds}")
    for event in driver.find_elements(By.CSS_SELECTOR, "#timeline li.event"):
        if not event.find_element(By.CSS_SELECTOR, "time").text.endswith("UTC"):
            raise CheckFailed("a timeline event shows no time")
    report["timeline"] = {"id": expected_id, "events": kinds}


def check_hold(driver, args, report):
    driver.get(url(args, "/"))
    no_alert(driver, "/")
    selector = "#queue-table tr.message[data-status='queued']"
    wait_for(driver, args, EC.presence_of_element_located((By.ID, "queue")), "the waiting messages panel")
    candidates = [row for row in driver.find_elements(By.CSS_SELECTOR, selector) if row.get_attribute("data-sender") == args.hold_sender]
    if not candidates:
        raise CheckFailed(f"no queued message from {args.hold_sender} in the waiting messages panel")
    row = candidates[0]
    message_id = row.get_attribute("data-id")
    button = row.find_element(By.CSS_SELECTOR, "button[data-action='hold']")
    button.click()
    # The script reloads the page after the API answers; the old row goes stale.
    wait_for(driver, args, EC.staleness_of(row), "the page to reload after 'hold'")
    notice = driver.find_elements(By.ID, "notice")
    row_selector = f"#queue-table tr.message[data-id='{message_id}']"

    def held(current):
        rows = current.find_elements(By.CSS_SELECTOR, row_selector)
        return rows and rows[0].get_attribute("data-status") == "held"

    try:
        WebDriverWait(driver, args.timeout).until(held)
    except TimeoutException:
        text = notice[0].text if notice else ""
        raise CheckFailed(f"message {message_id} is not shown as held after clicking 'hold' {('(' + text + ')') if text else ''}")
    row = driver.find_element(By.CSS_SELECTOR, row_selector)
    actions = [button.get_attribute("data-action") for button in row.find_elements(By.CSS_SELECTOR, "button[data-action]")]
    if actions != ["release", "delete"]:
        raise CheckFailed(f"a held message should offer release and delete, it offers {actions}")
    report["held"] = message_id


def main():
    args = parse_arguments()
    report = {"ok": False}
    driver = None
    try:
        driver = start_browser(args)
        driver.get(url(args, "/"))
        no_alert(driver, "/")
        if "m365-relay" not in driver.title:
            raise CheckFailed(f"/ has the title {driver.title!r}; is {args.base_url} the relay's admin server?")
        check_chart(driver, args, report)
        check_console(driver, "/")
        if args.screenshots:
            os.makedirs(args.screenshots, exist_ok=True)
            full_page_screenshot(driver, os.path.join(args.screenshots, "dashboard.png"))
            full_page_screenshot(driver, os.path.join(args.screenshots, "dashboard-dark.png"), dark=True)
        check_search(driver, args, report)
        no_alert(driver, "the search results")
        check_console(driver, "the search results")
        check_timeline(driver, args, report)
        no_alert(driver, "the timeline")
        check_console(driver, "the timeline")
        if args.screenshots:
            full_page_screenshot(driver, os.path.join(args.screenshots, "message.png"))
        if args.hold_sender:
            check_hold(driver, args, report)
        check_console(driver, "the overview after 'hold'")
        report["ok"] = True
    except CheckFailed as failure:
        report["error"] = str(failure)
    except UnexpectedAlertPresentException as failure:
        report["error"] = f"a script ran: alert({failure.alert_text!r}); hostile input was not escaped"
    except WebDriverException as failure:
        report["error"] = f"the browser failed: {failure.msg or failure}"
    finally:
        if driver is not None:
            try:
                driver.quit()
            except WebDriverException:
                pass
    print(json.dumps(report))
    if not report["ok"]:
        print("dashboard check failed: " + report["error"], file=sys.stderr)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
