// The ecs-gitops dashboard: polls state.json and patches the page in place (no reload, no framework).
// Every value is written with textContent or setAttribute, never innerHTML; links are http(s) only.
// Times are the agent's (state.now), so a countdown matches what the agent will do. The server writes
// every text; the page computes only the bake countdown, from rollout.bakeEndsAt. The first state comes
// inline with the page (#initial-state), so the first paint has content without waiting for a poll.
"use strict";

(function () {
  const REFRESH_MS = 2000;
  const byId = (id) => document.getElementById(id);

  // -- small DOM helpers ------------------------------------------------------------------------------

  function make(tag, className) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    return node;
  }

  function setText(node, value) {
    const text = value === null || value === undefined ? "" : String(value);
    if (node.textContent !== text) node.textContent = text;
  }

  function setData(node, name, value) {
    const text = value === null || value === undefined ? "" : String(value);
    if (node.dataset[name] !== text) node.dataset[name] = text;
  }

  // Make container's children match items, one child per key, reusing (not recreating) existing ones.
  function keyed(container, items, keyOf, create, update) {
    const old = new Map();
    for (const child of Array.from(container.children)) old.set(child.dataset.key, child);
    items.forEach((item, index) => {
      const key = String(keyOf(item));
      let node = old.get(key);
      if (node === undefined) {
        node = create(item);
        node.dataset.key = key;
      }
      old.delete(key);
      if (container.children[index] !== node) container.insertBefore(node, container.children[index] || null);
      update(node, item);
    });
    for (const node of old.values()) node.remove();
  }

  function commitLink(anchor, commit) {
    if (!commit) {
      setText(anchor, "");
      anchor.removeAttribute("href");
      return;
    }
    setText(anchor, commit.short);
    anchor.title = commit.summary ? commit.short + " " + commit.summary : commit.sha;
    if (commit.url && /^https?:\/\//.test(commit.url)) {
      if (anchor.getAttribute("href") !== commit.url) anchor.setAttribute("href", commit.url);
      anchor.rel = "noreferrer noopener";
    } else {
      anchor.removeAttribute("href");
    }
  }

  function badge(node, state) {
    setText(node, state || "-");
    setData(node, "state", state || "none");
  }

  // -- time -------------------------------------------------------------------------------------------

  // UTC "HH:MM:SS" on the agent's current day, else "YYYY-MM-DD HH:MM".
  function time(iso, nowIso) {
    if (!iso) return "";
    const text = new Date(iso).toISOString();
    const sameDay = nowIso && new Date(nowIso).toISOString().slice(0, 10) === text.slice(0, 10);
    return sameDay ? text.slice(11, 19) : text.slice(0, 10) + " " + text.slice(11, 16);
  }

  function span(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    const h = Math.floor(seconds / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    const s = seconds % 60;
    if (h) return h + "h " + m + "m";
    if (m) return m + "m " + String(s).padStart(2, "0") + "s";
    return s + "s";
  }

  function until(iso, nowIso) {
    return (new Date(iso).getTime() - new Date(nowIso).getTime()) / 1000;
  }

  // -- parts ------------------------------------------------------------------------------------------

  function liveText(live) {
    if (!live.length) return "(not running)";
    return live.map((d) => d.label).join(", ");
  }

  // One listener rule's split: a bar (one segment per target group) and a legend.
  function makeSplit() {
    const box = make("div", "split");
    box.append(make("span", "rule"), make("div", "traffic"), make("span"), make("div", "legend muted"));
    return box;
  }

  function updateSplit(box, service, rule, groups) {
    setText(box.querySelector(".rule"), rule);
    const bar = box.querySelector(".traffic");
    setData(bar, "service", service);
    setData(bar, "rule", rule);
    keyed(
      bar,
      groups,
      (g) => g.targetGroup,
      () => make("span", "segment"),
      (seg, g) => {
        setData(seg, "target", g.revision);
        setData(seg, "targetGroup", g.targetGroup);
        setData(seg, "weight", g.weight);
        setData(seg, "taskSet", g.taskSet);
        seg.style.flexGrow = String(g.weight);
        seg.title = g.targetGroup + ": " + g.revision + " " + g.weight + " %";
        setText(seg, g.revision + " " + g.weight + " %");
      },
    );
    const legend = groups.map((g) => g.revision + " on " + g.targetGroup + ": " + g.weight + " %");
    setText(box.querySelector(".legend"), legend.join(" · "));
  }

  function makeRollout() {
    const card = make("article", "rollout");
    const title = make("h3");
    title.append(make("span", "name"), make("span", "badge"), make("span", "strategy muted"));
    const desc = make("p", "description");
    const facts = make("dl");
    for (const label of ["revision", "changes", "commit", "phase", "bake", "held by"]) {
      const dt = make("dt");
      dt.textContent = label;
      const dd = make("dd");
      dd.dataset.fact = label;
      if (label === "commit") dd.append(make("a"), make("span", "summary muted"));
      facts.append(dt, dd);
    }
    const splits = make("div", "splits");
    const windows = make("ul", "windows");
    card.append(title, desc, facts, splits, windows);
    return card;
  }

  function updateRollout(card, s, now) {
    setText(card.querySelector(".name"), s.context);
    badge(card.querySelector(".badge"), s.state);
    setText(card.querySelector(".strategy"), s.strategy + " · " + s.engine + " engine");
    setText(card.querySelector(".description"), s.headline);
    const fact = (name) => card.querySelector('dd[data-fact="' + name + '"]');
    setText(fact("revision"), s.revision);
    setText(fact("changes"), s.changes.join(", ") || "-");
    const r = s.rollout || {};
    commitLink(fact("commit").querySelector("a"), r.commit);
    setText(fact("commit").querySelector(".summary"), r.commit ? r.commit.summary : "");
    const phase = r.phase === "final" ? "final bake" : r.phase === "step" ? "step at " + r.stepWeight + " %" : "";
    setText(fact("phase"), phase || "-");
    const bake = fact("bake");
    setData(bake, "endsAt", r.bakeEndsAt);
    setText(bake, r.bakeEndsAt ? span(until(r.bakeEndsAt, now)) + " left (ends " + time(r.bakeEndsAt, now) + " UTC)" : "-");
    setText(fact("held by"), s.heldBy || "-");
    const splits = [];
    if (s.traffic && s.traffic.production) splits.push(["production", s.traffic.production]);
    if (s.traffic && s.traffic.test) splits.push(["test", s.traffic.test]);
    keyed(
      card.querySelector(".splits"),
      splits,
      (pair) => pair[0],
      makeSplit,
      (box, pair) => updateSplit(box, s.context, pair[0], pair[1]),
    );
    keyed(
      card.querySelector(".windows"),
      s.windows,
      (w) => w.name,
      () => make("li"),
      (li, w) => {
        setData(li, "open", w.open);
        setText(li, w.text);
      },
    );
  }

  const SERVICE_COLUMNS = ["service", "strategy", "state", "live", "desired", "windows", "status"];

  function makeServiceRow() {
    const row = make("tr");
    for (const column of SERVICE_COLUMNS) {
      const cell = make("td");
      cell.dataset.column = column;
      if (column === "state") cell.append(make("span", "badge"));
      row.append(cell);
    }
    return row;
  }

  function updateServiceRow(row, s, now) {
    const cell = (name) => row.querySelector('td[data-column="' + name + '"]');
    setData(row, "inFlight", s.inFlight);
    setText(cell("service"), s.context);
    setText(cell("strategy"), (s.strategyName ? s.strategyName + ": " : "") + s.strategy + " · " + s.engine);
    badge(cell("state").firstChild, s.state);
    setText(cell("live"), liveText(s.live));
    setText(cell("desired"), s.desired);
    setText(cell("windows"), s.windows.map((w) => w.text).join("; ") || "-");
    setText(cell("status"), s.statusText);
  }

  const HISTORY_COLUMNS = ["at", "commit", "context", "state", "description"];

  function makeHistoryRow() {
    const row = make("tr");
    for (const column of HISTORY_COLUMNS) {
      const cell = make("td");
      cell.dataset.column = column;
      if (column === "commit") cell.append(make("a"), make("span", "summary muted"));
      if (column === "state") cell.append(make("span", "badge"));
      row.append(cell);
    }
    return row;
  }

  function updateHistoryRow(row, h, now) {
    const cell = (name) => row.querySelector('td[data-column="' + name + '"]');
    setText(cell("at"), time(h.at, now));
    commitLink(cell("commit").querySelector("a"), h.commit);
    setText(cell("commit").querySelector(".summary"), h.commit ? h.commit.summary : "");
    setText(cell("context"), h.context);
    badge(cell("state").firstChild, h.state);
    setText(cell("description"), h.description);
  }

  // -- the whole page ---------------------------------------------------------------------------------

  function update(state) {
    const now = state.now;
    setText(byId("repository"), state.agent.repository);
    setText(byId("branch"), state.agent.branch);
    const tick = state.lastTick;
    setText(byId("tick-at"), tick ? time(tick.at, now) : "(none yet)");
    commitLink(byId("tick-commit"), tick ? tick.commit : null);
    badge(byId("tick-state"), tick ? tick.state : null);
    setText(byId("tick-description"), tick ? tick.description : "");
    setText(
      byId("tick-wake"),
      tick && tick.nextTickBy ? "next tick by " + time(tick.nextTickBy, now) + " UTC (polls every " + tick.interval + " s)" : "",
    );

    const flying = state.services.filter((s) => s.inFlight);
    byId("rollouts-empty").hidden = flying.length > 0;
    keyed(byId("rollout-list"), flying, (s) => s.context, makeRollout, (card, s) => updateRollout(card, s, now));
    keyed(
      byId("services").tBodies[0],
      state.services,
      (s) => s.context,
      makeServiceRow,
      (row, s) => updateServiceRow(row, s, now),
    );
    keyed(
      byId("history").tBodies[0],
      state.history,
      (h) => h.at + " " + h.commit.sha + " " + h.context + " " + h.state + " " + h.description,
      makeHistoryRow,
      (row, h) => updateHistoryRow(row, h, now),
    );

    const connection = byId("connection");
    setData(connection, "ok", true);
    setText(
      connection,
      "updated " + time(now, now) + " UTC (agent clock)" + (state.agent.ready ? "" : " · not ready: " + state.agent.readiness),
    );
    document.body.dataset.now = now;
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  }

  let timer = null;
  let stopped = false;

  async function refresh() {
    try {
      const response = await fetch("state.json", { cache: "no-store", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error("HTTP " + response.status);
      const state = await response.json();
      if (!stopped) update(state);
    } catch (error) {
      const connection = byId("connection");
      setData(connection, "ok", false);
      setText(connection, "cannot reach the agent (" + error.message + "); showing the last data it sent");
    } finally {
      if (!stopped) timer = setTimeout(refresh, REFRESH_MS);
    }
  }

  // For tests and the console: update(state) renders a state object; stop() ends the polling.
  function stop() {
    stopped = true;
    clearTimeout(timer);
  }

  // The state the server put in the page: rendered at once, then polled for.
  function initial() {
    const block = byId("initial-state");
    try {
      return block ? JSON.parse(block.textContent) : null;
    } catch (error) {
      return null;
    }
  }

  window.ecsGitopsDashboard = { update: update, refresh: refresh, stop: stop };
  const first = initial();
  if (first) {
    update(first);
    timer = setTimeout(refresh, REFRESH_MS);
  } else {
    refresh();
  }
})();
