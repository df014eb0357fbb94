/* A crowd worker's coding page: when the coding page says no faces are left for them, go to
   the end page, which shows the completion code once their quota is coded. */
(function () {
  "use strict";
  const crowd = document.getElementById("crowd");
  const empty = document.getElementById("empty");
  if (!crowd || !empty) return;
  function check() {
    if (!empty.hidden) window.location.assign(crowd.dataset.doneUrl);
  }
  new MutationObserver(check).observe(empty, { attributes: true, attributeFilter: ["hidden"] });
  check();
})();
