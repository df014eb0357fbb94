// Polls an import's status endpoint and updates the progress bar; shows the report at the end.
(function () {
  "use strict";
  var box = document.getElementById("import-progress");
  if (!box || box.dataset.finished === "1") return;
  var url = box.dataset.statusUrl;
  var bar = box.querySelector("progress");
  var count = box.querySelector("[data-testid=import-count]");
  var status = box.querySelector("[data-testid=import-status]");
  var error = box.querySelector("[data-testid=import-error]");
  var report = document.getElementById("import-report");

  function cell(text) {
    var td = document.createElement("td");
    td.textContent = text;
    return td;
  }
  function rows(target, items, keys) {
    target.textContent = "";
    (items || []).forEach(function (item) {
      var tr = document.createElement("tr");
      keys.forEach(function (key) { tr.appendChild(cell(String(item[key]))); });
      target.appendChild(tr);
    });
  }
  function showReport(data) {
    var r = data.report || {};
    report.querySelectorAll("[data-key]").forEach(function (dd) {
      dd.textContent = String(r[dd.dataset.key] || 0);
    });
    var files = report.querySelector("[data-list=files]");
    rows(files, (r.rejected_files || []).concat(r.duplicates || []), ["file", "reason"]);
    rows(report.querySelector("[data-list=rows]"), r.rejected_rows, ["line", "file", "reason"]);
    var notes = report.querySelector("[data-list=notes]");
    notes.textContent = "";
    (r.notes || []).forEach(function (note) {
      var li = document.createElement("li");
      li.textContent = note;
      notes.appendChild(li);
    });
    report.hidden = false;
  }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("status " + response.status);
        return response.json();
      })
      .then(function (data) {
        bar.value = data.percent;
        count.textContent = data.done + " / " + data.total;
        status.textContent = data.status_display;
        if (data.error) { error.textContent = data.error; error.hidden = false; }
        if (data.finished) { showReport(data); return; }
        window.setTimeout(poll, 1000);
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  poll();
})();
