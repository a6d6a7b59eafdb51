"""The dashboard in a real browser during a real sandbox rollout, and the parts it is built from.

The browser test starts Debian's ``chromium`` headless with a fresh profile and background networking
off, drives it over the DevTools protocol (a WebSocket), and reads the traffic split of web's canary
from the page's DOM: 90/10 between web:1 and web:2, then, in the same page without a reload, 0/100.
Its screenshots go to tests/output/. Without Chromium it skips, saying how to install it.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import websocket
import yaml
from gitops_story import Story

from agent.config import AgentConfig
from agent.http.dashboard import History, bake_ends_at, commit_url_template
from agent.http.metrics import Metrics
from agent.http.server import AgentServer, Endpoints, Readiness
from agent.rollout import windows
from agent.rollout.progressive import AgentRecord, Strategy
from agent.sandbox.hooks import HookReceiver
from agent.status.model import CommitStatus

REPO_ROOT = Path(__file__).resolve().parents[2]
OUTPUT = REPO_ROOT / "tests" / "output"
CHROMIUM = "/usr/bin/chromium"
STRATEGIES = "strategies/strategies.yaml"
WEB_TD = "taskdefs/web.json"
WEB_SERVICE = "services/web.yaml"
WINDOWS = "windows/windows.yaml"


# -- helpers ------------------------------------------------------------------------------------------


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of a GET that does not follow redirects."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def _state(story: Story) -> dict[str, Any]:
    assert story.agent.server is not None
    status, _, body = _get(story.agent.server.url + "/dashboard/state.json")
    assert status == 200
    return dict(json.loads(body))


def _service(state: dict[str, Any], context: str) -> dict[str, Any]:
    return next(s for s in state["services"] if s["context"] == context)


def _web(story: Story) -> tuple[str, str]:
    result = story.agent.last_result
    assert result is not None
    status = result.statuses["ecs-gitops/prod/web"]
    return status.state, status.description


def _tick_until(story: Story, done: Any, what: str, max_ticks: int = 80) -> None:
    """Tick, moving both clocks to each wake-up, until ``done(state, description)`` of prod/web."""
    for _ in range(max_ticks):
        result = story.agent.tick()
        assert result is not None
        if done(*_web(story)):
            return
        wait = (result.wake_at - story.clock.now()).total_seconds() if result.wake_at else 60.0
        story.advance(max(1.0, wait))
    raise AssertionError(f"prod/web never reached {what}; last: {_web(story)}")


def _window(story: Story, name: str) -> windows.Window:
    docs = yaml.safe_load_all((story.root / WINDOWS).read_text())
    return windows.Window.from_spec(name, next(d["spec"] for d in docs if d["metadata"]["name"] == name))


def _calm(story: Story, *names_margins: tuple[str, timedelta]) -> None:
    """Move the story's clocks until none of manifests-example's windows ``name`` is open or opens within
    its margin, so the test does not depend on the calendar day it runs."""
    for _ in range(10):
        moved = False
        for name, margin in names_margins:
            window, now = _window(story, name), story.clock.now()
            interval = window.occurrence_at(now)
            if interval is None and window.next_opening(now) - now < margin:
                interval = window.occurrence_at(window.next_opening(now))
            if interval is not None:
                story.advance((interval[1] - now).total_seconds() + 1)
                moved = True
        if not moved:
            return
    raise AssertionError(f"no calm time found for {names_margins}")


@pytest.fixture
def story(sim_sandbox: Any, tmp_path: Path) -> Iterator[Story]:
    """manifests-example deployed on the sim sandbox (web's smoke hook answered by a local receiver),
    with the agent's HTTP server on a free port."""
    sim_sandbox.reset()
    sim_sandbox.seed(REPO_ROOT / "manifests-example" / "sandbox-seed.yaml")
    with HookReceiver() as hooks:
        story = Story(sim_sandbox, tmp_path)
        _calm(story, ("year-end-freeze", timedelta(days=1)))
        story.agent.serve(port=0)
        try:
            story.commit(
                "deploy manifests-example",
                {STRATEGIES: ("http://127.0.0.1:8099/hooks/smoke", hooks.url("smoke"))},
            )
            story.settle()
            yield story
        finally:
            assert story.agent.server is not None
            story.agent.server.stop()


# -- the browser ----------------------------------------------------------------------------------------


class Browser:
    """Headless Chromium with a fresh profile, driven over the DevTools protocol on one page."""

    def __init__(self, binary: str, workdir: Path) -> None:
        profile = workdir / "chromium-profile"
        self.log_path = workdir / "chromium.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--window-size=1280,1000",
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._id = 0
        try:
            port = self._devtools_port(profile / "DevToolsActivePort")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
                pages = [t for t in json.loads(response.read()) if t.get("type") == "page"]
            assert pages, "Chromium opened no page"
            self.ws = websocket.create_connection(
                pages[0]["webSocketDebuggerUrl"], timeout=30, suppress_origin=True
            )
        except BaseException:
            self.close()
            raise

    def _devtools_port(self, path: Path, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while not (path.exists() and path.read_text().strip()):
            if self.process.poll() is not None:
                raise AssertionError(f"Chromium exited ({self.process.returncode}); see {self.log_path}")
            assert time.monotonic() < deadline, (
                f"Chromium did not open its DevTools port; see {self.log_path}"
            )
            time.sleep(0.05)
        return int(path.read_text().split()[0])

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and return its result (events arriving meanwhile are dropped)."""
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self._id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return dict(message.get("result") or {})

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression!r} raised: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, what: str, timeout: float = 30.0) -> Any:
        """Evaluate ``expression`` until it is truthy (the page polls every 2 s); return its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.1)

    def open(self, url: str) -> None:
        self.call("Page.enable")
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'", f"{url} to load")

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            ws.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


@pytest.fixture
def chromium() -> str:
    binary = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    if binary is None:
        reason = "Chromium is not installed: apt-get install chromium (bash .ci/chromium.sh does it as root)"
        print(f"SKIP test_dashboard: {reason}")
        pytest.skip(reason)
    return binary


@pytest.fixture
def browser(chromium: str, tmp_path: Path) -> Iterator[Browser]:
    running = Browser(chromium, tmp_path)
    try:
        yield running
    finally:
        running.close()


# Selectors into the page for prod/web, evaluated inside each snippet's own function (see _js).
PAGE = """
  const bar = () => document.querySelector('.traffic[data-service="prod/web"][data-rule="production"]');
  const card = () => document.querySelector('#rollout-list [data-key="prod/web"]');
  const fact = (name) => card().querySelector('dd[data-fact="' + name + '"]');
  const cell = (c) => document.querySelector('#services tr[data-key="prod/web"] td[data-column="' + c + '"]');
  const text = (node) => (node ? node.textContent : null);
"""
SPLIT = """
  if (!bar()) return null;
  return Object.fromEntries(Array.from(bar().querySelectorAll("[data-target]"),
    (s) => [s.dataset.target, Number(s.dataset.weight)]));
"""


# Stop the page's polling, then fetch state.json once and render it (in the same page, same nodes).
RENDER_NOW = """(async () => {
  window.ecsGitopsDashboard.stop();
  const response = await fetch("state.json", {cache: "no-store", headers: {Accept: "application/json"}});
  window.ecsGitopsDashboard.update(await response.json());
  return Number(document.body.dataset.updates);
})()"""


def _js(body: str) -> str:
    """An expression running ``body`` (which may use PAGE's helpers) in a function of its own."""
    return f"(() => {{{PAGE}{body}}})()"


def _split_is(expected: dict[str, int]) -> str:
    wanted = json.dumps(json.dumps(expected, separators=(",", ":")))
    return _js(f"const split = (() => {{{SPLIT}}})(); return JSON.stringify(split) === {wanted};")


# -- the browser test -----------------------------------------------------------------------------------


def test_chromium_shows_the_canary_split_and_refreshes_it_in_place(story: Story, browser: Browser) -> None:
    """During web's canary the page shows 90/10 between web:1 and web:2 in the DOM, then 0/100 in the
    same page (same nodes, no reload), the bake countdown and the freeze window, and history rows."""
    assert story.agent.server is not None
    url = story.agent.server.url + "/dashboard/"
    story.commit("web: nginx 1.27.1", {WEB_TD: ("nginx:1.27", "nginx:1.27.1")})
    _tick_until(story, lambda state, text: text.startswith("canary 10 % baking"), "the canary bake")

    browser.open(url)
    # The first paint is the state the server put in the page: the split is there once the page has
    # loaded, before any poll.
    assert browser.evaluate(_split_is({"web:1": 90, "web:2": 10})), "the 90/10 split on the first paint"
    assert browser.evaluate("JSON.parse(document.getElementById('initial-state').textContent).now")
    first = browser.evaluate(
        _js("""
          window.__probe = bar();
          window.__origin = performance.timeOrigin;
          return {
            updates: Number(document.body.dataset.updates),
            description: text(card().querySelector(".description")),
            bake: text(fact("bake")),
            revision: text(fact("revision")),
            held: text(fact("held by")),
            windows: Array.from(card().querySelectorAll(".windows li"), text),
            row: text(cell("state")),
          };
        """)
    )
    assert first["description"] == "canary 10 % baking"  # one countdown: the bake row's
    # The bake started when the weights moved (the record says when); the page counts down on the agent clock.
    record = story.agent.store.get("rollout/prod/web")
    assert record is not None and (record["step_phase"], record["step_weight"]) == ("step", 10)
    ends = datetime.fromisoformat(record["step_since"]) + timedelta(minutes=5)
    left = int((ends - story.clock.now()).total_seconds())
    assert 0 < left < 300
    assert first["bake"] == f"{left // 60}m {left % 60:02d}s left (ends {ends:%H:%M:%S} UTC)"
    assert first["revision"] == "web:1 → web:2 (10 % of production traffic on web:2)"
    assert first["held"] == "-"
    assert first["windows"] == [first["windows"][0]] and re.fullmatch(
        r"year-end-freeze \(freeze, closed, opens \d{4}-\d\d-\d\d 00:00 UTC\)", first["windows"][0]
    )
    assert first["row"] == "pending"
    shot = browser.screenshot(OUTPUT / "dashboard-canary-10.png")
    print(f"dashboard screenshot (canary 10 %): {shot}")
    assert shot.stat().st_size > 10_000

    # The bake ends, traffic moves to 100 %: the open page follows without a reload. Its own polling is
    # stopped and the state fetched once after the tick, so a poll that was in flight during the tick
    # (the previous phase's split) can never be what is checked.
    _tick_until(story, lambda state, text: "final bake" in text, "the final bake")
    browser.evaluate(RENDER_NOW)
    assert browser.evaluate(_split_is({"web:1": 0, "web:2": 100})), "the 0/100 split in the same page"
    second = browser.evaluate(
        _js("""
          return {
            same: window.__probe === bar() && window.__probe.isConnected,
            origin: window.__origin === performance.timeOrigin,
            updates: Number(document.body.dataset.updates),
            phase: text(fact("phase")),
          };
        """)
    )
    assert second["same"] and second["origin"], second
    assert second["updates"] > first["updates"]
    assert second["phase"] == "final bake"
    print(f"dashboard screenshot (100 %): {browser.screenshot(OUTPUT / 'dashboard-canary-100.png')}")

    # Done: nothing in flight, desired = live, and the history lists the bump's statuses with its commit.
    story.settle()
    browser.evaluate(RENDER_NOW)
    done = browser.evaluate(
        _js("""
          if (document.getElementById("rollouts-empty").hidden) return null;
          return {live: text(cell("live")), desired: text(cell("desired")),
                  history: Array.from(document.querySelectorAll("#history tbody tr"), (tr) =>
                    Array.from(tr.cells, text))};
        """),
    )
    assert done, "the rollout finished on the page"
    assert done["live"] == "web:2 PRIMARY 4/4" and done["desired"] == "web:2"
    history = [row for row in done["history"] if row[2] == "ecs-gitops/prod/web"]
    assert history[0][1].endswith("web: nginx 1.27.1") and history[0][3] == "success"
    assert history[0][4] == "web:2 serving 100 %"
    assert any(row[4].startswith("canary 10 % baking") for row in history)


def test_a_plain_headless_capture_shows_the_first_state(story: Story, chromium: str, tmp_path: Path) -> None:
    """``chromium --headless --dump-dom`` (no DevTools, no virtual-time budget: the DOM as the page loaded)
    shows the services and the last tick, not "waiting for the agent": the page carries its first state."""
    assert story.agent.server is not None
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            story.agent.server.url + "/dashboard/",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    dom = done.stdout
    assert 'data-key="prod/web"' in dom and 'data-key="prod/api"' in dom
    assert "waiting for the agent" not in dom and "updated " in dom
    assert re.search(r'<time id="tick-at">\d\d:\d\d:\d\d</time>', dom), dom[:2000]


def test_the_page_writes_data_as_text_and_links_only_http(story: Story, browser: Browser) -> None:
    """Markup and script in the data stay text, a javascript: commit URL gets no href, an https one does."""
    assert story.agent.server is not None
    browser.open(story.agent.server.url + "/dashboard/")
    browser.wait_for("Number(document.body.dataset.updates) > 0", "the first update")
    state = _state(story)
    evil = '<img src=x onerror="window.__pwned=1">'
    web = _service(state, "prod/web")
    web.update(description=evil, headline=evil, revision=evil, statusText=evil, inFlight=True)
    state["history"] = [
        {
            "at": state["now"],
            "commit": {
                "sha": "a" * 40,
                "short": "a" * 12,
                "url": "javascript:window.__pwned=2",
                "summary": evil,
            },
            "context": evil,
            "state": "failure",
            "description": evil,
        },
        {
            "at": state["now"],
            "commit": {
                "sha": "b" * 40,
                "short": "b" * 12,
                "url": "https://github.com/acme/x/commit/b",
                "summary": "",
            },
            "context": "ecs-gitops",
            "state": "success",
            "description": "ok",
        },
    ]
    result = browser.evaluate(
        _js(f"""
          window.ecsGitopsDashboard.stop();
          window.ecsGitopsDashboard.update({json.dumps(state)});
          const links = Array.from(document.querySelectorAll("#history a"), (a) => a.getAttribute("href"));
          return {{imgs: document.querySelectorAll("main img").length, pwned: window.__pwned || 0, links,
                   description: text(card().querySelector(".description"))}};
        """)
    )
    assert result == {
        "imgs": 0,
        "pwned": 0,
        "links": [None, "https://github.com/acme/x/commit/b"],
        "description": evil,
    }


# -- state.json without a browser -------------------------------------------------------------------------


def test_state_json_names_the_window_holding_a_rollout(story: Story) -> None:
    """A bump of web outside its maintenance window is in flight, held by that window with the gate's own
    text, its split still 100/0 on web:1, its desired revision web:2; routes carry the page's headers."""
    assert story.agent.server is not None
    base = story.agent.server.url
    story.commit(
        "web: only in weekday nights",
        {WEB_SERVICE: ("windows: [year-end-freeze]", "windows: [year-end-freeze, weekday-nights]")},
    )
    story.settle()  # a service-settings change only (no traffic step): not held
    _calm(story, ("weekday-nights", timedelta(hours=1)), ("year-end-freeze", timedelta(days=1)))
    story.commit("web: nginx 1.27.1", {WEB_TD: ("nginx:1.27", "nginx:1.27.1")})
    _tick_until(story, lambda state, text: "waiting for maintenance window" in text, "the window")
    state = _state(story)
    web = _service(state, "prod/web")
    assert web["inFlight"] and web["state"] == "pending"
    assert web["heldBy"].startswith("waiting for maintenance window weekday-nights, opens ")
    assert web["description"] == f"web:2 ready: {web['heldBy']}"
    assert web["desired"] == "web:2" and web["live"][0]["revision"] == "web:1"
    assert [(g["revision"], g["weight"]) for g in web["traffic"]["production"]] == [
        ("web:1", 100),
        ("web:2", 0),
    ]
    assert [(w["name"], w["type"], w["open"]) for w in web["windows"]] == [
        ("year-end-freeze", "freeze", False),
        ("weekday-nights", "maintenance", False),
    ]
    assert web["rollout"]["commit"]["summary"] == "web: nginx 1.27.1"
    assert state["lastTick"]["commit"]["summary"] == "web: nginx 1.27.1"
    assert state["agent"]["repository"].startswith("file://") and state["agent"]["ready"] is True
    api = _service(state, "prod/api")
    assert (api["strategy"], api["engine"], api["state"], api["inFlight"]) == (
        "blueGreen",
        "ecs",
        "success",
        False,
    )
    assert api["traffic"] is None and api["desired"] == api["live"][0]["revision"] == "api:1"

    status, headers, _ = _get(base + "/dashboard")
    assert (status, headers["Location"]) == (308, "dashboard/")
    for path, kind in (("/dashboard/", "text/html"), ("/dashboard/dashboard.js", "text/javascript")):
        status, headers, body = _get(base + path)
        assert status == 200 and headers["Content-Type"].startswith(kind) and body
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert headers["Cache-Control"] == "no-store"
        assert b"http://" not in body and b"https://" not in body  # no CDN, nothing external


def test_state_json_shows_a_held_blue_green_as_waiting_and_a_count_change_as_such(story: Story) -> None:
    """api's blue/green is held at its PAUSE hook by a closed maintenance window: ECS already calls api:2
    PRIMARY, the card says api:1 → api:2, waiting, production on api:1. reports' desiredCount change, held
    by the same window, says desiredCount 2 → 4 with this commit. Each held status is said once, the
    window's time in the window's zone, and the next tick is the next poll, not the window's opening."""
    _calm(story, ("weekday-nights", timedelta(hours=1)), ("year-end-freeze", timedelta(days=1)))
    sha = story.commit(
        "api 2.4.2, reports x4",
        {
            "taskdefs/api.json": ("api:2.4.1", "api:2.4.2"),
            "services/reports.yaml": ("desiredCount: 2", "desiredCount: 4"),
        },
    )
    for _ in range(20):
        result = story.agent.tick()
        assert result is not None
        api = _service(_state(story), "prod/api")
        if api["description"].startswith("waiting for maintenance window"):
            break
        story.advance(5)
    state = _state(story)
    api, reports = _service(state, "prod/api"), _service(state, "prod/reports")
    assert api["inFlight"] and [d["status"] for d in api["live"]] == ["ACTIVE", "PRIMARY"]
    assert api["revision"] == "api:1 → api:2 (waiting: production traffic on api:1)"
    assert [d["label"] for d in api["live"]] == [
        "api:1 serving (100 % production) 3/3",
        "api:2 waiting (0 % production) 3/3",
    ]
    assert api["changes"] == ["image 2.4.1 → 2.4.2"] and api["rollout"]["commit"]["sha"] == sha
    held = "waiting for maintenance window weekday-nights, opens 22:00 Europe/Berlin"
    assert api["heldBy"] == held and api["statusText"] == held and api["headline"] == held
    assert api["windows"][0]["text"] == "weekday-nights (maintenance, closed, opens 22:00 Europe/Berlin)"

    assert reports["inFlight"] and reports["state"] == "pending"
    assert reports["revision"] == "reports:1 (revision unchanged)"
    assert reports["changes"] == ["desiredCount 2 → 4"]
    assert reports["rollout"]["commit"]["sha"] == sha
    assert reports["rollout"]["commit"]["summary"] == "api 2.4.2, reports x4"
    assert reports["statusText"] == held

    tick = state["lastTick"]
    assert tick["interval"] == 60
    at = datetime.fromisoformat(tick["at"])
    assert datetime.fromisoformat(tick["wakeAt"]) - at > timedelta(hours=1)  # the window's opening
    assert datetime.fromisoformat(tick["nextTickBy"]) == at + timedelta(seconds=66)  # the next poll


def test_servers_without_a_dashboard_have_no_such_pages() -> None:
    """Endpoints built without a dashboard answer 404 to its routes."""
    endpoints = Endpoints(
        Readiness(60, lambda: datetime.now(UTC)),
        Metrics(),
        trigger=lambda: None,
        secret=lambda: None,
        branch="m",
    )
    with AgentServer(endpoints, "127.0.0.1", 0) as server:
        for path in ("/dashboard", "/dashboard/", "/dashboard/state.json"):
            assert _get(server.url + path)[0] == 404


def test_a_failing_dashboard_state_is_a_500_and_nothing_else_breaks() -> None:
    """An error building state.json answers 500 with a JSON error; the page and /healthz still answer."""

    def broken() -> dict[str, Any]:
        raise KeyError("services")

    endpoints = Endpoints(
        Readiness(60, lambda: datetime.now(UTC)),
        Metrics(),
        trigger=lambda: None,
        secret=lambda: None,
        branch="m",
        dashboard=broken,
    )
    with AgentServer(endpoints, "127.0.0.1", 0) as server:
        status, _, body = _get(server.url + "/dashboard/state.json")
        assert status == 500 and "see the agent's log" in json.loads(body)["error"]
        assert _get(server.url + "/dashboard/")[0] == 200
        assert _get(server.url + "/healthz")[0] == 200


# -- the parts ----------------------------------------------------------------------------------------------


def _config(**status: Any) -> Any:
    config = AgentConfig.default()
    return replace(config, status=replace(config.status, **status))


@pytest.mark.parametrize(
    ("config", "repo", "expected"),
    [
        (
            _config(
                publisher="github",
                github=replace(AgentConfig.default().status.github, repository="acme/deploys"),
            ),
            "file:///x",
            "https://github.com/acme/deploys/commit/{sha}",
        ),
        (
            _config(
                publisher="github",
                github=replace(
                    AgentConfig.default().status.github,
                    repository="acme/d",
                    api_url="https://ghe.acme.io/api/v3",
                ),
            ),
            "file:///x",
            "https://ghe.acme.io/acme/d/commit/{sha}",
        ),
        (
            _config(
                publisher="gitlab", gitlab=replace(AgentConfig.default().status.gitlab, project="grp/sub/d")
            ),
            "file:///x",
            "https://gitlab.com/grp/sub/d/-/commit/{sha}",
        ),
        (
            _config(publisher="gitlab", gitlab=replace(AgentConfig.default().status.gitlab, project="1234")),
            "file:///x",
            None,
        ),
        (_config(), "https://github.com/acme/deploys.git", "https://github.com/acme/deploys/commit/{sha}"),
        (_config(), "git@github.com:acme/deploys.git", "https://github.com/acme/deploys/commit/{sha}"),
        (
            _config(),
            "https://gitlab.acme.io/acme/deploys",
            "https://gitlab.acme.io/acme/deploys/-/commit/{sha}",
        ),
        (_config(), "https://git.acme.io/acme/deploys.git", None),
        (_config(), "/srv/git/deploys", None),
    ],
    ids=[
        "github",
        "github-enterprise",
        "gitlab-path",
        "gitlab-numeric-id",
        "https",
        "scp",
        "gitlab-host",
        "other-host",
        "local",
    ],
)
def test_commit_links_come_from_the_publisher_or_the_repository(
    config: Any, repo: str, expected: str | None
) -> None:
    """Commit links use the status publisher's repository (GitHub, GHE, GitLab path), else a GitHub or
    GitLab repository URL; anything else has no link."""
    assert commit_url_template(config, repo) == expected


def test_history_keeps_changes_only_newest_first() -> None:
    """A status repeated on the next tick is not a new history row; a change is; the oldest scroll out."""
    t0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    history = History(size=3)
    pending = CommitStatus("a" * 40, "ecs-gitops/prod/web", "pending", "canary 10 % baking, 5m left")
    history.add([pending], t0)
    history.add([pending], t0 + timedelta(seconds=5))
    later = replace(pending, description="canary 10 % baking, 4m left")
    history.add([later], t0 + timedelta(minutes=1))
    assert [(c.at, c.description) for c in history.newest_first()] == [
        (t0 + timedelta(minutes=1), "canary 10 % baking, 4m left"),
        (t0, "canary 10 % baking, 5m left"),
    ]
    history.add([replace(pending, state="success", description=f"{i}") for i in range(3)], t0)
    assert [c.description for c in history.newest_first()] == ["2", "1", "0"]


def test_bake_end_comes_from_the_record_and_the_strategy() -> None:
    """A step bake ends step_bakes[i] after the step was reached, the final bake ``bake`` after the flip;
    a finished rollout or one between steps has no countdown."""
    strategy = Strategy.from_spec(
        {"type": "linear", "linear": {"stepPercent": 25, "stepBake": "2m"}, "bake": "5m"}
    )
    t0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    record = AgentRecord(
        "s", "f", "in_progress", t0.isoformat(), step_since=t0.isoformat(), step_weight=50, step_phase="step"
    )
    assert bake_ends_at(record, strategy) == t0 + timedelta(minutes=2)
    assert bake_ends_at(replace(record, step_phase="final", step_weight=100), strategy) == t0 + timedelta(
        minutes=5
    )
    assert bake_ends_at(replace(record, result="succeeded"), strategy) is None
    assert bake_ends_at(replace(record, step_since=None), strategy) is None
