// Live progress for training and prediction runs: polls the study's status JSON while any
// run is queued or running, updates the bars in place, reloads once a run finishes.
(function () {
  "use strict";
  const section = document.getElementById("training-runs");
  if (!section) return;
  const url = section.dataset.statusUrl;
  const liveRows = () => document.querySelectorAll("tr[data-live='1']");
  if (!liveRows().length) return;

  function update(row, run, percentText) {
    row.querySelector(".run-status").textContent = run.status_label;
    const bar = row.querySelector(".run-progress");
    if (bar) bar.value = run.progress;
    const percent = row.querySelector(".run-percent");
    if (percent) percent.textContent = percentText;
    const stage = row.querySelector(".run-stage");
    if (stage && run.stage_label) stage.textContent = run.stage_label;
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
