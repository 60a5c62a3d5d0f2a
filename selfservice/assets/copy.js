// Copy button of the one-time password page. Without JavaScript the button stays hidden and
// the password can be selected by hand.
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
