// Progressive enhancement only: every page works without this script.
// - a form with data-confirm asks before it is sent (freeze, revoke, delete, disable);
// - a button with data-copy copies the text of the element it names (a new secret).
(function () {
  'use strict';
  document.addEventListener('submit', function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute('data-confirm');
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });
  document.addEventListener('click', function (event) {
    var button = event.target.closest ? event.target.closest('button[data-copy]') : null;
    if (!button || !navigator.clipboard) {
      return;
    }
    var source = document.getElementById(button.getAttribute('data-copy'));
    if (source) {
      navigator.clipboard.writeText(source.textContent.trim());
    }
  });
})();
