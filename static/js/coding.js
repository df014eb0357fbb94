/* The coder's page: one keystroke per answer, next face shown at once, undo, prefetch;
   "question 2 of 5", Backspace to the previous question, live counts, the codebook (H) and
   a summary of the session at the end. */
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
  const todayEl = document.getElementById("today");
  const availableEl = document.getElementById("available");
  const openEl = document.getElementById("open-count");
  const stepEl = document.getElementById("step");
  const work = document.getElementById("work");
  const codebook = document.getElementById("codebook");
  const codebookClose = document.getElementById("codebook-close");
  const summary = document.getElementById("summary");
  const resume = document.getElementById("resume");
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
  let started = root.dataset.codebookFirst !== "1";  // work is fetched once coding starts
  let stopped = false;     // "Stop for now": the summary is up, keys do nothing
  const session = { start: Date.now(), coded: 0 };
  let sentSeq = 0;         // requests numbered as sent, so an older reply's counts never win
  let countsSeq = 0;

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
    stepEl.textContent = queue.length ? "Question " + (i + 1) + " of " + questions.length : "";
  }

  function labelOf(question, value) {
    const button = root.querySelector(
      'button.choice[data-question="' + CSS.escape(question) + '"][data-value="' + CSS.escape(value) + '"]');
    return button ? button.dataset.label : value;
  }

  function titleOf(question) {
    const section = sections[questions.indexOf(question)];
    return section ? section.dataset.title : question;
  }

  function progress(counts, seq) {
    if (!counts || seq < countsSeq) return;
    countsSeq = seq;
    todayEl.textContent = String(counts.today);
    doneEl.textContent = String(counts.total);
    availableEl.textContent = String(counts.available);
  }

  function duration(ms) {
    const seconds = Math.round(ms / 1000);
    const minutes = Math.floor(seconds / 60);
    return minutes ? minutes + " min " + (seconds % 60) + " s" : seconds + " s";
  }

  function showSummary(early) {
    document.getElementById("summary-count").textContent = String(session.coded);
    document.getElementById("summary-time").textContent = duration(Date.now() - session.start);
    document.getElementById("summary-today").textContent = todayEl.textContent;
    document.getElementById("summary-total").textContent = doneEl.textContent;
    resume.hidden = !early;
    summary.hidden = false;
  }

  function show() {
    answers = {};
    showQuestion(0);
    loading.hidden = true;
    sourceFrame.hidden = true;
    const item = queue[0];
    if (!item) {
      crop.hidden = true;
      stepEl.textContent = "";
      // While votes are in flight the server may still hand out more faces.
      empty.hidden = pending > 0;
      loading.hidden = pending === 0;
      if (pending === 0 && !busy) showSummary(false);
      crop.removeAttribute("src");
      root.dataset.assignment = "";
      return;
    }
    empty.hidden = true;
    if (!stopped) summary.hidden = true;
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
    const seq = ++sentSeq;
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify(body || {}),
    });
    let data = {};
    try { data = await response.json(); } catch (e) { data = { error: "The server answered " + response.status + "." }; }
    return { status: response.status, data: data, seq: seq };
  }

  async function fetchNext() {
    busy = true;
    try {
      const { status, data, seq } = await post(root.dataset.nextUrl);
      if (status === 200) {
        progress(data.progress, seq);
        busy = false;
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
    const { status, data, seq } = result;
    if (status === 200) {
      if (!data.duplicate) session.coded += 1;
      progress(data.progress, seq || 0);
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
    if (stopped || !codebook.hidden || !queue.length || question !== questions[step]) return;
    answers[question] = value;
    const notFace = question === "gender" && value === "not_face";
    if (notFace || step + 1 >= questions.length) submit();
    else showQuestion(step + 1);
  }

  function back() {
    if (stopped || !codebook.hidden || !queue.length) return;
    if (step === 0) {
      say("This is the first question of this face. To change the face before, press U (undo).", "");
      return;
    }
    const previous = questions[step - 1];
    const given = answers[previous];
    delete answers[previous];
    showQuestion(step - 1);
    say("Back to " + titleOf(previous) + (given ? " (you had answered " + labelOf(previous, given) + ")." : "."), "");
  }

  function toggleCodebook() {
    const opening = codebook.hidden;
    codebook.hidden = !opening;
    work.hidden = opening;
    if (!opening) {
      codebookClose.textContent = "Back to coding";
      if (!started) { started = true; fetchNext(); }
    }
  }

  let stopping = null;      // the "Stop for now" request, until the server has answered

  async function releaseLeases() {
    // Let the votes and the next-faces call in flight land first, so no lease they hand out
    // outlives the stop.
    while (pending > 0 || busy) await new Promise((resolve) => setTimeout(resolve, 30));
    try {
      const { status, data, seq } = await post(root.dataset.stopUrl);
      if (status === 200) {
        progress(data.progress, seq);
        queue = [];        // the faces went back to the pool; "Continue coding" takes new ones
        crop.hidden = true;
        crop.removeAttribute("src");
        crop.dataset.assignment = "";
        root.dataset.assignment = "";
        showSummary(true);
      } else {
        say(data.error, "error");
      }
    } catch (e) {
      say("The server could not be reached; your faces go back to the pool when your time on them runs out.", "error");
    }
  }

  function stop() {
    if (stopped) return;
    stopped = true;
    work.hidden = true;
    showSummary(true);
    resume.disabled = true;
    stopping = releaseLeases().finally(() => { stopping = null; resume.disabled = false; });
  }

  async function proceed() {
    if (stopping) await stopping;
    stopped = false;
    summary.hidden = true;
    work.hidden = false;
    if (queue.length) { show(); return; }
    // The faces were given back: "Loading…" until the next call hands faces out again.
    stepEl.textContent = "";
    empty.hidden = true;
    loading.hidden = false;
    fetchNext();
  }

  async function undo() {
    if (busy) return;
    busy = true;
    try {
      // Undo means the newest vote: let the votes in flight land first.
      while (pending > 0) await new Promise((resolve) => setTimeout(resolve, 30));
      const { status, data, seq } = await post(root.dataset.undoUrl);
      if (status === 200) {
        session.coded = Math.max(0, session.coded - 1);
        progress(data.progress, seq);
        sent.delete(data.item.assignment);
        queue = [data.item].concat(queue.filter((i) => i.assignment !== data.item.assignment));
        crop.dataset.assignment = "";
        show();
        const what = (data.undone || []).map((a) => a.question + ": " + a.answer).join(", ");
        say("Undone: " + (what || "your last answer") + ". Label this face again.", "");
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
    if (key === "h") { event.preventDefault(); if (!stopped) toggleCodebook(); return; }
    if (!codebook.hidden) {
      if (key === "escape") { event.preventDefault(); toggleCodebook(); }
      return;
    }
    if (stopped) return;
    if (key === "backspace") { event.preventDefault(); back(); return; }
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
  document.getElementById("back").addEventListener("click", back);
  document.getElementById("codebook-open").addEventListener("click", toggleCodebook);
  codebookClose.addEventListener("click", toggleCodebook);
  document.getElementById("stop").addEventListener("click", stop);
  resume.addEventListener("click", proceed);

  if (started) fetchNext();
})();
