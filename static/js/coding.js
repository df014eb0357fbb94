/* The coder's page: one keystroke per answer, next face shown at once, undo, prefetch. */
(function () {
  "use strict";
  const root = document.getElementById("coding");
  if (!root) return;
  const csrf = root.querySelector("input[name=csrfmiddlewaretoken]").value;
  const crop = document.getElementById("crop");
  const source = document.getElementById("source");
  const sourceFrame = document.getElementById("source-frame");
  const message = document.getElementById("message");
  const doneEl = document.getElementById("done");
  const openEl = document.getElementById("open-count");
  const loading = document.getElementById("loading");
  const empty = document.getElementById("empty");
  const sections = Array.from(root.querySelectorAll("section.question"));
  const questions = sections.map((s) => s.dataset.question);

  let queue = [];          // live leases, oldest first; queue[0] is on screen
  let sent = new Set();    // assignments whose vote is in flight or recorded
  let answers = {};
  let step = 0;
  let shownAt = performance.now();
  let busy = false;        // a next/undo request is running
  let pending = 0;         // votes sent and not yet answered

  function say(text, kind) {
    message.textContent = text || "";
    message.className = "coding-message" + (kind ? " " + kind : "");
  }

  function prefetch(items) {
    items.forEach((item) => { const img = new Image(); img.src = item.crop; });
  }

  function showQuestion(i) {
    step = i;
    sections.forEach((s, j) => { s.hidden = j !== i; });
  }

  function show() {
    answers = {};
    showQuestion(0);
    loading.hidden = true;
    sourceFrame.hidden = true;
    const item = queue[0];
    if (!item) {
      crop.hidden = true;
      // While votes are in flight the server may still hand out more faces.
      empty.hidden = pending > 0;
      loading.hidden = pending === 0;
      crop.removeAttribute("src");
      root.dataset.assignment = "";
      return;
    }
    empty.hidden = true;
    crop.hidden = false;
    if (crop.dataset.assignment !== String(item.assignment)) {
      crop.src = item.crop;
      crop.dataset.assignment = String(item.assignment);
      shownAt = performance.now();
    }
    root.dataset.assignment = String(item.assignment);
    document.getElementById("toggle-source").disabled = !item.source;
    prefetch(queue.slice(1));
  }

  function accept(items) {
    const fresh = (items || []).filter((item) => !sent.has(item.assignment));
    const current = queue[0];
    queue = fresh;
    if (!current || !queue.length || queue[0].assignment !== current.assignment) show();
    else prefetch(queue.slice(1));
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify(body || {}),
    });
    let data = {};
    try { data = await response.json(); } catch (e) { data = { error: "The server answered " + response.status + "." }; }
    return { status: response.status, data: data };
  }

  async function fetchNext() {
    busy = true;
    try {
      const { status, data } = await post(root.dataset.nextUrl);
      if (status === 200) {
        accept(data.items);
        openEl.textContent = "· faces still open in the study: " + data.open;
      } else {
        say(data.error, "error");
      }
    } catch (e) {
      say("The server could not be reached. Check your connection; your answers are kept on the server.", "error");
    } finally {
      busy = false;
    }
  }

  async function submit() {
    const item = queue.shift();
    if (!item) return;
    const payload = Object.assign({ assignment: item.assignment }, answers);
    payload.seconds = Math.round((performance.now() - shownAt) / 100) / 10;
    sent.add(item.assignment);
    pending += 1;
    show();                // the prefetched next face appears at once
    let result;
    try {
      result = await post(root.dataset.submitUrl, payload);
    } catch (e) {
      result = { status: 0, data: { error: "The server could not be reached. Press the key again to resubmit." } };
    } finally {
      pending -= 1;
    }
    const { status, data } = result;
    if (status === 200) {
      if (!data.duplicate) doneEl.textContent = String(Number(doneEl.textContent) + 1);
      say(data.late ? "Saved (your time on that face had run out, but it still needed you)." : "", "");
      accept(data.items);
    } else if (status === 409) {
      say(data.error, "error");
      accept(data.items);
    } else if (status === 503 || status === 0) {
      // Nothing was saved: put the face back so the coder can answer it again.
      sent.delete(item.assignment);
      queue.unshift(item);
      show();
      say(data.error, "error");
    } else {
      say(data.error || "The answer was refused.", "error");
      if (!queue.length) fetchNext(); else if (!pending) show();
    }
  }

  function answer(question, value) {
    if (!queue.length || question !== questions[step]) return;
    answers[question] = value;
    const notFace = question === "gender" && value === "not_face";
    if (notFace || step + 1 >= questions.length) submit();
    else showQuestion(step + 1);
  }

  async function undo() {
    if (busy) return;
    busy = true;
    try {
      // Undo means the newest vote: let the votes in flight land first.
      while (pending > 0) await new Promise((resolve) => setTimeout(resolve, 30));
      const { status, data } = await post(root.dataset.undoUrl);
      if (status === 200) {
        sent.delete(data.item.assignment);
        queue = [data.item].concat(queue.filter((i) => i.assignment !== data.item.assignment));
        crop.dataset.assignment = "";
        show();
        doneEl.textContent = String(Math.max(0, Number(doneEl.textContent) - 1));
        say("Last answer undone: label this face again.", "");
      } else {
        say(data.error, "error");
      }
    } catch (e) {
      say("The server could not be reached.", "error");
    } finally {
      busy = false;
    }
  }

  function toggleSource() {
    const item = queue[0];
    if (!item || !item.source) return;
    if (sourceFrame.hidden) source.src = item.source;
    sourceFrame.hidden = !sourceFrame.hidden;
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    const key = event.key.toLowerCase();
    if (key === "u") { event.preventDefault(); undo(); return; }
    if (key === "s") { event.preventDefault(); toggleSource(); return; }
    const section = sections[step];
    if (!section) return;
    const button = section.querySelector('button.choice[data-key="' + CSS.escape(key) + '"]');
    if (button) { event.preventDefault(); answer(button.dataset.question, button.dataset.value); }
  });
  root.addEventListener("click", (event) => {
    const button = event.target.closest("button.choice");
    if (button) answer(button.dataset.question, button.dataset.value);
  });
  document.getElementById("undo").addEventListener("click", undo);
  document.getElementById("toggle-source").addEventListener("click", toggleSource);

  fetchNext();
})();
