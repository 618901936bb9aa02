"""The operator view in a real browser: headless Chromium from Debian's
packages, driven by Python playwright (which never downloads a browser here:
it is pointed at /usr/bin/chromium), against a real Console on loopback.

Set-up installs Chromium with apt-get when it is missing and we run as root
on Debian; elsewhere without Chromium the tests skip with a one-line reason.
The main test takes a picture of the finished view; with
UMBRA_SCREENSHOT=1 it saves it as docs/operator.png, the picture
docs/operator.md shows (a test run leaves the tree as it was)."""
import os
import re
import shutil
import subprocess
import time

import pytest

from tools import ROOT
from tools.console import auth, deployments, routes_ui
from tools.console.server import free_port, serve_in_thread

CHROMIUM = "/usr/bin/chromium"
DEBIAN_PACKAGES = ("chromium",)
# the flags a closed network and a root user need (docs/operator.md)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOT = os.path.join(ROOT, "docs", "operator.png")
DEMO_EVENTS = 48  # the demo mission's predicted events
# the first test's set-up may apt-get install Chromium (~2 min seen here); each
# test itself takes under 15 s
pytestmark = pytest.mark.timeout(900)


def chromium_missing():
    """None when Chromium is here (installed with apt-get if missing and we
    are root on Debian), else a one-line reason."""
    if os.path.exists(CHROMIUM):
        return None
    if os.geteuid() != 0 or not os.path.exists("/etc/debian_version") \
            or not shutil.which("apt-get"):
        return "no Chromium at %s, and not root on Debian to apt-get install it" % CHROMIUM
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends"]
                   + list(DEBIAN_PACKAGES), env=env, capture_output=True, timeout=900)
    return None if os.path.exists(CHROMIUM) else "apt-get could not install chromium"


@pytest.fixture(scope="module")
def browser():
    reason = chromium_missing()
    if reason:
        pytest.skip(reason)
    if not routes_ui.openmct_installed():
        pytest.fail("Open MCT is not installed in tools/console/ui/node_modules: run make setup")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def console(tmp_path):
    srv = serve_in_thread(str(tmp_path / "console.db"))
    yield srv
    srv.stop()


def open_view(browser, url, key):
    """A page of the view at url, logged in with key; returns (page, seconds to load)."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    t0 = time.monotonic()
    page.goto(url + "/")
    if key is not None:
        login(page, key)
        page.wait_for_selector(".umbra-deployments", timeout=20000)
    return page, time.monotonic() - t0


def login(page, key):
    page.fill("#umbra-key", key)
    page.click("#umbra-login-go")


def simulate(page, speed):
    """Start the demo mission, simulated, from the view's form; returns the deployment id."""
    page.click(".umbra-open-simulate")
    page.wait_for_function("document.querySelector('.umbra-sim-job') && "
                           "document.querySelector('.umbra-sim-job').value.length > 100")
    page.fill(".umbra-sim-speed", str(speed))
    page.click(".umbra-sim-go")
    page.wait_for_selector(".umbra-deployment-head[data-status]", timeout=20000)
    return page.evaluate("location.hash").split("dep~")[1].split("?")[0]


def log_seqs(page):
    return page.eval_on_selector_all(".umbra-log-row", "rows => rows.map(r => +r.dataset.seq)")


def test_a_wrong_key_and_an_agent_key_are_refused_with_a_clear_message(browser, console):
    page, _ = open_view(browser, console.url, None)
    login(page, "um_not-a-key")
    page.wait_for_selector("#umbra-login-error:has-text('Refused')")
    assert "not a valid user key" in page.inner_text("#umbra-login-error")
    agent_key = auth.create_key(console.db, "agent", "sat-25544", rate_limited=False)["key"]
    login(page, agent_key)
    page.wait_for_selector("#umbra-login-error:has-text('agent key')")
    assert "user key" in page.inner_text("#umbra-login-error")
    assert page.query_selector(".umbra-deployments") is None  # nothing opened
    assert page.input_value("#umbra-key") == ""  # a key is never left on show
    assert agent_key not in page.content()
    page.close()


def test_an_operator_starts_a_simulated_deployment_and_sees_its_events_and_battery_live(
        browser, console):
    key = auth.create_key(console.db, "user")["key"]
    page, load_s = open_view(browser, console.url, key)
    print("page load and login: %.2f s" % load_s)
    dep = simulate(page, speed=4000)  # the 4.5 h mission in ~4 s
    # live: the log grows while the run goes on, without a reload
    page.wait_for_function("document.querySelectorAll('.umbra-log-row').length > 0")
    seen_while_running = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = page.get_attribute(".umbra-deployment-head", "data-status")
        seen_while_running.append(len(log_seqs(page)))
        if status == "completed" and len(log_seqs(page)) == DEMO_EVENTS:
            break
        time.sleep(0.2)
    assert log_seqs(page) == list(range(1, DEMO_EVENTS + 1))
    assert any(0 < n < DEMO_EVENTS for n in seen_while_running), seen_while_running
    assert page.locator(".umbra-battery-point").count() >= 5  # the battery plot drew
    assert page.locator(".umbra-forecast").count() == 1
    assert "completed" in page.inner_text(".umbra-deployment-head")
    page.wait_for_selector(".umbra-compare-summary:has-text('identical')")
    # the event log filters by type (and the deployments table shows the run)
    page.select_option(".umbra-filter-type", "step.completed")
    page.wait_for_function("document.querySelectorAll('.umbra-log-row').length == 4")
    page.select_option(".umbra-filter-type", "")
    page.wait_for_function("document.querySelectorAll('.umbra-log-row').length == %d"
                           % DEMO_EVENTS)
    picture = page.screenshot(path=SCREENSHOT if os.environ.get("UMBRA_SCREENSHOT") else None)
    assert picture[:8] == b"\x89PNG\r\n\x1a\n"
    page.click(".umbra-back")
    page.wait_for_selector(".umbra-deployment-row[data-id='%s'] .umbra-status-completed" % dep)
    assert page.errors == []
    page.close()


def test_events_that_arrive_while_the_log_page_loads_are_shown_once_and_none_is_lost(
        browser, console):
    # a slow link: each page of the log comes 1 s after the Console read it,
    # while the live feed goes on bringing the run's new events
    key = auth.create_key(console.db, "user")["key"]
    page, _ = open_view(browser, console.url, key)
    slow = []

    def late(route):
        answer = route.fetch()  # the page as the Console has it now
        slow.append(answer.json()["total"])
        time.sleep(1.0)
        route.fulfill(response=answer)

    page.route("**/api/ui/deployments/*/log?*", late)
    dep = simulate(page, speed=4000)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if deployments.get(console.db, dep)["status"] == "completed" \
                and len(log_seqs(page)) >= DEMO_EVENTS:
            break
        time.sleep(0.2)
    time.sleep(0.5)  # nothing more (no duplicates) arrives
    assert slow and slow[0] < DEMO_EVENTS  # the page was read while the run went on
    assert log_seqs(page) == list(range(1, DEMO_EVENTS + 1))
    assert page.get_attribute(".umbra-log-info", "data-total") == str(DEMO_EVENTS)
    assert page.errors == []
    page.close()


def test_a_console_restart_during_a_live_view_loses_no_event(browser, tmp_path):
    db_path = str(tmp_path / "console.db")
    port = free_port()
    srv = serve_in_thread(db_path, port=port)
    try:
        key = auth.create_key(srv.db, "user")["key"]
        page, _ = open_view(browser, srv.url, key)
        dep = simulate(page, speed=2500)  # ~6.5 s of events
        page.wait_for_function("document.querySelectorAll('.umbra-log-row').length >= 5")
        # the view cannot reconnect until we say so: what is stored meanwhile
        # reaches it only if it resumes from the last id it saw
        page.route("**/api/ui/stream*", lambda route: route.abort())
        srv.stop()  # the simulation stops with it; the view loses its feed
        page.wait_for_selector("#umbra-link[data-state='down']", timeout=10000)
        shown = len(log_seqs(page))
        assert shown < DEMO_EVENTS
        srv = serve_in_thread(db_path, port=port)  # resumes the simulation
        deadline = time.monotonic() + 20
        while len(deployments.list_events(srv.db, dep)) < shown + 5:
            assert time.monotonic() < deadline, "the simulation did not resume"
            time.sleep(0.1)
        assert len(log_seqs(page)) == shown  # cut off while these were stored
        page.unroute("**/api/ui/stream*")
        page.wait_for_selector("#umbra-link[data-state='up']", timeout=10000)
        page.wait_for_function("document.querySelectorAll('.umbra-log-row').length >= %d"
                               % DEMO_EVENTS, timeout=30000)
        time.sleep(0.5)  # nothing more (no duplicates) arrives
        assert log_seqs(page) == list(range(1, DEMO_EVENTS + 1))
        assert deployments.get(srv.db, dep)["status"] == "completed"
        page.close()
    finally:
        srv.stop()


def test_an_unknown_deployment_says_so(browser, console):
    key = auth.create_key(console.db, "user")["key"]
    page, _ = open_view(browser, console.url, key)
    page.evaluate("location.hash = '#/browse/umbra:root/umbra:deployments/umbra:dep~dep-nope'")
    page.wait_for_selector(".umbra-error:has-text('No deployment dep-nope')")
    page.close()


def test_an_agents_telemetry_shows_in_open_mcts_own_views_history_then_live(browser, console):
    import httpx
    agent_id = "sat-25544"
    key = auth.create_key(console.db, "agent", agent_id, rate_limited=False)["key"]
    headers = {"X-API-Key": key, "X-Agent-ID": agent_id}
    assert httpx.post(console.url + "/api/agent/register", headers=headers, json={
        "agent_id": agent_id, "satellite_id": "25544", "agent_version": "t"}).status_code == 201

    def report(battery):
        r = httpx.post(console.url + "/api/agent/telemetry", headers=headers, json={
            "agent_id": agent_id, "status": "idle", "timestamp": "2008-09-20T13:15:00Z",
            "battery_percent": battery, "mode": "normal"})
        assert r.status_code == 200, r.text

    for battery in (90, 85, 80):
        report(battery)
    page, _ = open_view(browser, console.url, auth.create_key(console.db, "user")["key"])
    page.evaluate("location.hash = '#/browse/umbra:root/umbra:fleet/umbra:agent~%s/"
                  "umbra:tlm~agent~%s~battery_percent?view=table'" % (agent_id, agent_id))
    rows = ".c-telemetry-table__body tr"
    page.wait_for_function("document.querySelectorAll('%s').length == 3" % rows)
    report(75)  # live, over the feed
    page.wait_for_function("document.querySelectorAll('%s').length == 4" % rows)
    values = sorted(int(v) for v in re.findall(r"^(\d+)$", page.inner_text(
        ".c-telemetry-table__body"), re.M) if v in ("90", "85", "80", "75"))
    assert values == [75, 80, 85, 90]
    assert "2008-09-20T13:15:00Z" in page.inner_text(".c-telemetry-table__body")  # its own time
    assert page.errors == []
    page.close()


def test_the_constellation_lanes_show_each_childs_steps_and_a_failover_between_two_lanes(
        browser, console):
    """A constellation parent (the train's plan, deployed live): each child's
    agent posts what the fleet's agents flew with infer_a's owner drained
    mid-step (fleetforecast.py); the lanes view shows one lane per child
    with the steps it holds, infer_a on the alternate that took it (from its
    planned satellite) and struck through on the planned one (to the taker)."""
    import json

    import httpx

    import fleet
    from tools.planner import fleetforecast
    with open(os.path.join(ROOT, "examples", "fleets", "train-4.json")) as f:
        doc = json.load(f)
    key = auth.create_key(console.db, "user")["key"]
    user = {"X-API-Key": key}
    plan = httpx.post(console.url + "/v1/constellation/plan", headers=user, timeout=120,
                      json={"fleet": doc["fleet"], "epoch": doc["epoch"],
                            "job": doc["job"]}).json()
    dep = httpx.post(console.url + "/api/deployments", headers=user,
                     json={"plan_id": plan["id"], "mode": "live"}).json()
    victim = [s["satellite"] for s in plan["steps"] if s["step_id"] == "infer_a"][0]
    out = fleetforecast.run(fleet.FleetWorld(doc, hours=24), plan, doc["job"],
                            faults=[{"kind": "drain", "satellite": victim, "at_s": 1800,
                                     "soc": 0.08}])
    to = [e for e in out.merged() if e["type"] == "constellation.failover"][0]["payload"][
        "to_satellite"]
    page, _ = open_view(browser, console.url, key)
    page.evaluate("window.location.hash = '#/browse/umbra:root/umbra:constellation'")
    page.wait_for_selector(".umbra-lane[data-satellite='%s']" % victim, timeout=20000)
    for ch in dep["children"]:  # each agent takes its child and reports what it flew
        sat = ch["satellite_id"]
        name = "sat-lanes-" + sat
        h = {"X-API-Key": auth.create_key(console.db, "agent", name, rate_limited=False,
                                          satellite_id=sat)["key"], "X-Agent-ID": name}
        assert httpx.post(console.url + "/api/agent/register", headers=h,
                          json={"agent_id": name, "agent_version": "0.2.0"}).status_code == 201
        assert httpx.get(console.url + "/api/agent/workloads", headers=h).status_code == 200
        evs = [dict((k, e[k]) for k in ("type", "timestamp", "job_id", "step_id", "seq",
                                        "payload")) for e in out.events[sat]]
        r = httpx.post(console.url + "/api/deployments/%s/events" % ch["deployment_id"],
                       headers=h, json=evs)
        assert r.status_code == 201, r.text
    # live: the view follows the children's events to the parent's end
    page.wait_for_selector(".umbra-lanes-status[data-status='completed']", timeout=20000)
    lanes = page.eval_on_selector_all(
        ".umbra-lane", "ls => ls.map(l => [l.dataset.satellite, l.dataset.status, "
        "[...l.querySelectorAll('.umbra-lane-step')].map(c => [c.dataset.step, c.className, "
        "c.textContent])])")
    assert [lane[0] for lane in lanes] == [c["satellite_id"] for c in dep["children"]]
    by_sat = dict((lane[0], lane[2]) for lane in lanes)
    taken = [c for c in by_sat[to] if c[0] == "infer_a"]
    assert len(taken) == 1 and "umbra-step-completed" in taken[0][1] and \
        "from %s" % victim in taken[0][2]
    left = [c for c in by_sat[victim] if c[0] == "infer_a"]
    assert len(left) == 1 and "umbra-step-moved" in left[0][1] and "to %s" % to in left[0][2]
    for s in plan["steps"]:  # every other step completed on its planned lane
        if s["step_id"] != "infer_a":
            assert [c[1] for c in by_sat[s["satellite"]] if c[0] == s["step_id"]] == \
                ["umbra-lane-step umbra-step-completed"]
    assert page.errors == []
    page.close()
