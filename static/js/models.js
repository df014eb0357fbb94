// Live progress for training and prediction runs: polls the study's status JSON while any
// run is queued or running, updates the bars in place, reloads once a run finishes.
(function () {
  "use strict";
  // The models page and a version's card both carry the status URL.
  const section = document.querySelector("[data-status-url]");
  if (!section) return;
  const url = section.dataset.statusUrl;
  const liveRows = () => document.querySelectorAll("tr[data-live='1']");
  if (!liveRows().length) return;

  // Mirrors the `duration` template filter.
  function duration(seconds) {
    const h = Math.floor(seconds / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    const s = seconds % 60;
    const two = (n) => String(n).padStart(2, "0");
    if (h) return `${h} h ${two(m)} min`;
    if (m) return `${m} min ${two(s)} s`;
    return `${s} s`;
  }

  function update(row, run, percentText) {
    row.querySelector(".run-status").textContent = run.status_label;
    const bar = row.querySelector(".run-progress");
    if (bar) bar.value = run.progress;
    const percent = row.querySelector(".run-percent");
    if (percent) percent.textContent = percentText;
    const stage = row.querySelector(".run-stage");
    if (stage && run.stage_label) stage.textContent = run.stage_label;
    const time = row.querySelector(".run-time");
    if (time && run.elapsed_s !== undefined && run.elapsed_s !== null) {
      const left = run.eta_s === null ? "" : ` · about ${duration(run.eta_s)} left`;
      time.textContent = `${duration(run.elapsed_s)} elapsed${left}`;
    }
    const device = row.querySelector(".run-device");
    if (device && run.device) device.textContent = run.device;
    const error = row.querySelector(".run-error");
    if (error) error.textContent = run.error || "";
  }

  async function poll() {
    let data;
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(response.status);
      data = await response.json();
    } catch (err) {
      setTimeout(poll, 5000);
      return;
    }
    let finished = false;
    for (const run of data.training) {
      const row = document.querySelector(`tr[data-run-id='${run.id}']`);
      if (!row) continue;
      update(row, run, `${run.progress} %`);
      if (row.dataset.live === "1" && !run.live) finished = true;
    }
    for (const run of data.prediction) {
      const row = document.querySelector(`tr[data-prediction-id='${run.id}']`);
      if (!row) continue;
      update(row, run, `${run.done} / ${run.total}`);
      if (row.dataset.live === "1" && !run.live) finished = true;
    }
    if (finished) {
      window.location.reload();
      return;
    }
    setTimeout(poll, 1500);
  }
  setTimeout(poll, 1000);
})();
