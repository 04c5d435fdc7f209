// dagserver's pages: live tables filled from the JSON API (values always set as text, never as HTML).
"use strict";

const body = document.body;
const csrf = body.dataset.csrf;
const role = body.dataset.role;
const RANK = { viewer: 0, operator: 1, admin: 2 };
const mayOperate = RANK[role] >= RANK.operator;
const ACTIONS_BY_STATE = {
  starting: ["stop"], running: ["suspend", "stop"], suspended: ["resume", "stop"], restarting: ["stop"],
  failed: ["start", "stop"], stopped: ["start"], standby: [],
};
const POLL_MS = 1000;

// -- small helpers ----------------------------------------------------------------------------------------
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}

async function getJSON(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  if (response.status === 401) { window.location.assign("/login?next=" + encodeURIComponent(location.pathname)); }
  if (!response.ok) throw new Error(path + ": " + response.status);
  return response.json();
}

async function act(name, action) {
  const response = await fetch(`/api/dags/${encodeURIComponent(name)}/${action}`, {
    method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrf, Accept: "application/json" },
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) alertLine(`${action} ${name}: ${answer.error || response.status}`);
  return response.ok;
}

function alertLine(text) {
  const main = document.querySelector("main");
  const line = el("p", { class: "flash error", role: "alert" }, text);
  main.prepend(line);
  setTimeout(() => line.remove(), 8000);
}

function badge(state) { return el("span", { class: `badge state-${state}` }, state); }

function ago(seconds) {
  if (!seconds) return "never";
  const delta = Math.max(0, Date.now() / 1000 - seconds);
  if (delta < 60) return `${delta.toFixed(0)} s ago`;
  if (delta < 3600) return `${(delta / 60).toFixed(0)} min ago`;
  return new Date(seconds * 1000).toLocaleString();
}

function actionButtons(dag, after) {
  const cell = el("span", { class: "actions" });
  if (!mayOperate) return cell;
  for (const action of ACTIONS_BY_STATE[dag.state] || []) {
    const button = el("button", { type: "button", "data-action": action, "data-dag": dag.name }, action);
    button.addEventListener("click", async () => {
      button.disabled = true;
      await act(dag.name, action);
      after();
    });
    cell.append(button);
  }
  return cell;
}

function poll(refresh) {
  const status = document.getElementById("refresh-status");
  const tick = async () => {
    try { await refresh(); if (status) status.textContent = ""; }
    catch (error) { if (status) status.textContent = `(refresh failed: ${error.message})`; }
    setTimeout(tick, POLL_MS);
  };
  tick();
}

function sum(values, key) { return Object.values(values || {}).reduce((total, v) => total + (v[key] || 0), 0); }

// -- the dashboard ------------------------------------------------------------------------------------------
// The DAG's schedule and its next change: "next stop 16:00" while it runs, "next start ..." while it waits.
function scheduleText(dag) {
  const w = dag.window || {};
  const rule = w.schedule || (w.start_time ? `${w.start_time}–${w.end_time || "24:00"}` : "always");
  const next = dag.state === "running" && dag.next_stop ? `next stop ${dag.next_stop}`
    : dag.next_start ? `next start ${dag.next_start}` : dag.next_stop ? `next stop ${dag.next_stop}` : "";
  return next ? `${rule} (${next})` : rule;
}

async function refreshDashboard() {
  const [dags, workers, health] = await Promise.all([getJSON("/api/dags?details=1"), getJSON("/api/workers"),
    getJSON("/healthz").catch(() => ({}))]);
  const roleLine = document.getElementById("server-role");
  roleLine.textContent = health.role ? `server: ${health.role}` : "";
  const rows = dags.map((dag) => {
    const window = scheduleText(dag);
    const workersOf = (dag.replicas || []).map((r) => r.worker).join(", ") || String(dag.worker ?? "");
    return el("tr", { "data-dag": dag.name },
      el("td", {}, el("a", { href: `/dags/${encodeURIComponent(dag.name)}` }, dag.name)),
      el("td", { title: dag.reason || "" }, badge(dag.state)), el("td", {}, workersOf), el("td", {}, window),
      el("td", { class: "num" }, dag.records_in ?? ""), el("td", { class: "num" }, dag.records_out ?? ""),
      el("td", { class: "num" }, dag.errors ?? ""), el("td", {}, ago(dag.last_activity)),
      el("td", {}, actionButtons(dag, refreshDashboard)));
  });
  document.getElementById("dag-rows").replaceChildren(...rows);
  document.getElementById("worker-rows").replaceChildren(...workers.map((w) => el("tr", {},
    el("td", {}, w.id), el("td", {}, w.pid ?? ""), el("td", {}, w.alive ? "yes" : "no"), el("td", {}, w.restarts),
    el("td", {}, (w.dags || []).join(", ")))));
}

// -- one DAG: counts, badge and actions -------------------------------------------------------------------------
async function refreshDag() {
  const name = body.dataset.dag;
  const dag = await getJSON(`/api/dags/${encodeURIComponent(name)}`);
  document.getElementById("dag-state").replaceWith(Object.assign(badge(dag.state), { id: "dag-state" }));
  const reason = document.getElementById("dag-reason");
  if (reason) reason.textContent = dag.reason || "";
  for (const [node, info] of Object.entries(dag.nodes || {})) {
    const box = document.querySelector(`#graph g.node[data-name="${CSS.escape(node)}"]`);
    if (!box) continue;
    box.querySelector(".computes").textContent = info.computes;
    box.querySelector(".errors").textContent = info.errors;
    box.classList.toggle("in-error", info.errors > 0);
  }
  for (const [kind, group] of [["subscriber", dag.subscribers], ["publisher", dag.publishers]]) {
    for (const [endpoint, info] of Object.entries(group || {})) {
      const row = document.querySelector(`tr[data-endpoint="${CSS.escape(kind + ":" + endpoint)}"]`);
      if (!row) continue;
      for (const key of ["status", "records", "errors", "backlog"]) row.querySelector("." + key).textContent = info[key];
      if (kind === "subscriber") row.querySelector(".commit_errors").textContent = info.commit_errors ?? 0;
    }
  }
  const actions = document.getElementById("dag-actions");
  if (actions) actions.replaceChildren(actionButtons(dag, refreshDag));
}

// -- one DAG's live node values ---------------------------------------------------------------------------------
function valueCell(cell, value, truncated, link) {
  const pre = el("pre", {}, truncated ? String(value) + "…" : JSON.stringify(value, null, 1));
  cell.replaceChildren(pre);
  if (truncated) cell.append(el("a", { href: link, target: "_blank", rel: "noopener" }, "whole value"));
}

// a stateful node's groups, snapshot size, late records and evictions (SPEC §11); empty for the others
function stateText(info) {
  if (!info.state) return "";
  const parts = [];
  if (info.state.groups != null) parts.push(`${info.state.groups} groups`);
  if (info.state.bytes != null) parts.push(`${info.state.bytes} bytes`);
  if (info.late) parts.push(`${info.late} late`);
  if (info.evictions) parts.push(`${info.evictions} evicted`);
  return parts.join(" · ") || "stateful";
}

async function refreshState() {
  const name = body.dataset.dag;
  const dag = await getJSON(`/api/dags/${encodeURIComponent(name)}`);
  document.getElementById("dag-state").replaceWith(Object.assign(badge(dag.state), { id: "dag-state" }));
  for (const [node, info] of Object.entries(dag.nodes || {})) {
    const row = document.querySelector(`tr[data-node="${CSS.escape(node)}"]`);
    if (!row) continue;
    const link = `/api/dags/${encodeURIComponent(name)}/nodes/${encodeURIComponent(node)}`;
    row.querySelector(".computes").textContent = info.computes;
    row.querySelector(".errors").textContent = info.errors;
    row.querySelector(".held").textContent = stateText(info);
    valueCell(row.querySelector(".input"), info.input, info.input_truncated, link);
    valueCell(row.querySelector(".output"), info.output, info.output_truncated, link);
  }
}

// -- forms that ask first ---------------------------------------------------------------------------------------
for (const form of document.querySelectorAll("form[data-confirm]")) {
  form.addEventListener("submit", (event) => { if (!window.confirm(form.dataset.confirm)) event.preventDefault(); });
}

const PAGES = { dashboard: refreshDashboard, dag: refreshDag, state: refreshState };
if (PAGES[body.dataset.page]) poll(PAGES[body.dataset.page]);
