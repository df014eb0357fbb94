// Gallery filters: the group list offers only the values of the chosen attribute, and
// picking a group first chooses its attribute. Without this script both lists show every
// value and the server says when a group lacks its attribute.
(function () {
  "use strict";
  const form = document.querySelector("form[data-testid='gallery-filters']");
  if (!form) return;
  const attribute = form.querySelector("select[name=attribute]");
  const group = form.querySelector("select[name=group]");
  if (!attribute || !group) return;

  function narrow() {
    const chosen = attribute.value;
    for (const optgroup of group.querySelectorAll("optgroup")) {
      const other = chosen !== "" && optgroup.dataset.attribute !== chosen;
      optgroup.hidden = other;
      optgroup.disabled = other;
    }
  }

  attribute.addEventListener("change", function () {
    const selected = group.selectedOptions[0];
    const parent = selected ? selected.parentElement : null;
    // a group of another attribute (or any group, once the attribute is cleared) no longer fits
    if (!attribute.value || (parent && parent.tagName === "OPTGROUP" && parent.dataset.attribute !== attribute.value)) {
      group.value = "";
    }
    narrow();
  });

  group.addEventListener("change", function () {
    const selected = group.selectedOptions[0];
    const parent = selected ? selected.parentElement : null;
    if (parent && parent.tagName === "OPTGROUP" && parent.dataset.attribute !== attribute.value) {
      attribute.value = parent.dataset.attribute;
      narrow();
    }
  });

  narrow();
})();
