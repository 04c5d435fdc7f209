// The DAG page's tap, inject and capture (SPEC §13), over the JSON API; values always set as text.
"use strict";

(() => {
  if (body.dataset.page !== "dag") return;
  const api = `/api/dags/${encodeURIComponent(body.dataset.dag)}`;
  const TAP_ROWS = 100;
  let tapped = null;
  let after = 0;
  let timer = null;

  function shown(value, truncated) {
    if (value === null || value === undefined) return "";
    return truncated ? String(value) + "…" : JSON.stringify(value);
  }

  function valueCell(value, truncated, kind) {
    return el("td", { class: kind }, el("pre", {}, shown(value, truncated)));
  }

  function tapRow(c) {
    return el("tr", { "data-seq": c.seq }, el("td", { class: "num" }, c.seq),
      el("td", {}, new Date(c.time * 1000).toLocaleTimeString()),
      valueCell(c.input, c.input_truncated, "input"), valueCell(c.output, c.output_truncated, "output"),
      el("td", { class: "error" }, c.error || ""));
  }

  async function pollTap() {
    const node = tapped;
    const rows = document.getElementById("tap-rows");
    try {
      const answer = await getJSON(`${api}/nodes/${encodeURIComponent(node)}/tap?after=${after}`);
      if (node !== tapped) return;
      if (answer.newest < after) { rows.replaceChildren(); after = 0; }  // its worker restarted: numbering anew
      for (const compute of answer.computes) {
        rows.prepend(tapRow(compute));
        after = Math.max(after, compute.seq);
      }
      while (rows.children.length > TAP_ROWS) rows.lastElementChild.remove();
    } catch (error) {
      if (node !== tapped) return;
    }
    timer = setTimeout(pollTap, POLL_MS);
  }

  function tap(node) {
    clearTimeout(timer);
    tapped = node;
    after = 0;
    document.getElementById("tap-rows").replaceChildren();
    document.getElementById("tap-node").textContent = node;
    document.getElementById("tap-panel").hidden = false;
    document.getElementById("tap-hint").hidden = true;
    for (const box of document.querySelectorAll("#graph g.box.node")) {
      box.classList.toggle("tapped", box.dataset.name === node);
    }
    pollTap();
  }

  for (const box of document.querySelectorAll("#graph g.box.node")) {
    box.addEventListener("click", () => tap(box.dataset.name));
  }

  async function postJSON(path, payload) {
    const response = await fetch(path, {
      method: "POST", credentials: "same-origin", body: JSON.stringify(payload),
      headers: { "X-CSRF-Token": csrf, "Content-Type": "application/json", Accept: "application/json" },
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(answer.error || String(response.status));
    return answer;
  }

  const injectForm = document.getElementById("inject-form");
  if (injectForm) {
    injectForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const result = document.getElementById("inject-result");
      let records;
      try {
        records = JSON.parse(injectForm.elements.records.value);
      } catch (error) {
        result.textContent = `not JSON: ${error.message}`;
        return;
      }
      const subscriber = injectForm.elements.subscriber.value;
      try {
        const answer = await postJSON(`${api}/subscribers/${encodeURIComponent(subscriber)}/inject`,
          { records: Array.isArray(records) ? records : [records] });
        result.textContent = `injected ${answer.injected} record${answer.injected === 1 ? "" : "s"} at ${subscriber}`;
      } catch (error) {
        result.textContent = `refused: ${error.message}`;
      }
    });
  }

  const captureForm = document.getElementById("capture-form");
  if (captureForm) {
    const result = document.getElementById("capture-result");
    const download = document.getElementById("capture-download");
    const watch = async (id) => {
      try {
        const status = await getJSON(`${api}/capture/${encodeURIComponent(id)}`);
        if (status.state === "done") {
          const outputs = Object.values(status.outputs || {}).reduce((n, list) => n + list.length, 0);
          result.textContent = `capture ${id} done: ${status.records} records in, ${outputs} out`;
          download.href = `${api}/capture/${encodeURIComponent(id)}/download`;
          download.hidden = false;
          return;
        }
        if (status.state === "failed") { result.textContent = `capture ${id} failed: ${status.error}`; return; }
        result.textContent = `capture ${id} ${status.state}: ${status.records} of ${status.asked.records} records`;
      } catch (error) {
        result.textContent = `capture ${id}: ${error.message}`;
      }
      setTimeout(() => watch(id), POLL_MS);
    };
    captureForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      download.hidden = true;
      try {
        const started = await postJSON(`${api}/capture`, {
          records: Number(captureForm.elements.records.value), seconds: Number(captureForm.elements.seconds.value),
        });
        result.textContent = `capture ${started.id} started`;
        watch(started.id);
      } catch (error) {
        result.textContent = `refused: ${error.message}`;
      }
    });
  }
})();
