/* The import form: refuse a too-large upload before sending it, with the server's limit. */
(function () {
  "use strict";
  const form = document.querySelector("form[data-max-bytes]");
  if (!form) return;
  const limit = Number(form.dataset.maxBytes);
  const message = form.querySelector("[data-testid=upload-too-large]");

  form.addEventListener("submit", (event) => {
    let size = 0;
    form.querySelectorAll("input[type=file]").forEach((input) => {
      Array.from(input.files).forEach((file) => { size += file.size; });
    });
    if (size <= limit) { message.hidden = true; return; }
    event.preventDefault();
    message.textContent = "The files are " + size.toLocaleString("en") + " bytes; one upload may be at most "
      + limit.toLocaleString("en") + " bytes. Split the images into several zips.";
    message.hidden = false;
  });
})();
