// The page's only script. Without it everything works; it adds:
// - the copy button of the one-time password page (hidden without JavaScript);
// - a form sends once: its button is disabled on submit (the server also answers a second
//   submit of the same create form with the same password).
"use strict";
document.querySelectorAll("button[data-copy]").forEach(function (button) {
  var target = document.getElementById(button.getAttribute("data-copy"));
  var status = document.getElementById(button.getAttribute("data-status"));
  if (!target) {
    return;
  }
  function done() {
    if (status) {
      status.textContent = button.getAttribute("data-copied");
    }
  }
  function selectAndCopy() {
    var range = document.createRange();
    range.selectNodeContents(target);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    try {
      if (document.execCommand("copy")) {
        done();
      }
    } catch (e) {
      // The text stays selected; the user can copy it by hand.
    }
  }
  button.hidden = false;
  button.addEventListener("click", function () {
    var text = target.textContent;
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, selectAndCopy);
    } else {
      selectAndCopy();
    }
  });
});

document.querySelectorAll("form[data-once]").forEach(function (form) {
  form.addEventListener("submit", function () {
    form.querySelectorAll("button[type=submit]").forEach(function (button) {
      button.disabled = true;
      button.setAttribute("aria-disabled", "true");
      var busy = button.getAttribute("data-busy");
      if (busy) {
        button.setAttribute("data-idle", button.textContent);
        button.textContent = busy;
      }
    });
  });
});

// Back to a page from the browser's cache: its buttons work again.
window.addEventListener("pageshow", function () {
  document.querySelectorAll("form[data-once] button[type=submit]").forEach(function (button) {
    button.disabled = false;
    button.removeAttribute("aria-disabled");
    var idle = button.getAttribute("data-idle");
    if (idle) {
      button.textContent = idle;
    }
  });
});
