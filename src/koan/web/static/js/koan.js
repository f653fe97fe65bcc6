/* Koan's page behaviour: small, no framework. Everything works without it; this adds polish. */
(function () {
  "use strict";

  function highlight(root) {
    if (!window.Prism) return;
    root.querySelectorAll(".prose pre code[class*='language-'], pre code.hl").forEach(function (el) {
      window.Prism.highlightElement(el);
    });
  }

  function detectTimezones(root) {
    var zone;
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
    if (!zone) return;
    root.querySelectorAll("select[data-detect-timezone='true']").forEach(function (select) {
      for (var i = 0; i < select.options.length; i++) {
        if (select.options[i].value === zone || select.options[i].text === zone) {
          select.selectedIndex = i;
          break;
        }
      }
    });
  }

  function focusFirstProblem(root) {
    var invalid = root.querySelector("[aria-invalid='true'], .alert-error, .error[role='alert']");
    if (!invalid) return false;
    if (!invalid.hasAttribute("tabindex") && !/^(INPUT|SELECT|TEXTAREA|BUTTON|A)$/.test(invalid.tagName)) {
      invalid.setAttribute("tabindex", "-1");
    }
    invalid.focus();
    return true;
  }

  function init(root) {
    highlight(root);
    detectTimezones(root);
  }

  document.addEventListener("DOMContentLoaded", function () {
    init(document);
    var main = document.getElementById("main");
    // A page shown again with errors puts the keyboard on the first one.
    if (main && document.querySelector("[aria-invalid='true']")) focusFirstProblem(main);
  });

  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail.target;
    if (!target) return;
    init(target);
    if (target.id === "hints-panel" || target.closest && target.closest("#hints-panel")) {
      var panel = document.getElementById("hints-panel");
      var items = panel ? panel.querySelectorAll(".hint-item") : [];
      var last = items.length ? items[items.length - 1] : panel && panel.querySelector(".error");
      if (last) { last.setAttribute("tabindex", "-1"); last.focus(); }
      return;
    }
    if (target.tagName === "MAIN" || target.id === "main") {
      // An outerHTML swap replaced the element: work on the new one.
      var main = document.getElementById("main");
      if (main && !focusFirstProblem(main)) main.focus();
    }
    if (target.querySelector(".celebration")) {
      document.dispatchEvent(new CustomEvent("koan:celebrate"));
    }
  });

  // A network failure (server down) gets a readable message instead of silence.
  document.addEventListener("htmx:sendError", function () {
    var flash = document.getElementById("flash");
    if (flash) flash.innerHTML = '<div class="alert alert-error" role="alert">Koan could not be reached. Check your connection and try again.</div>';
  });

  window.Koan = window.Koan || {};
  window.Koan.csrfToken = function () {
    var match = document.cookie.match(/(?:^|;\s*)koan_csrf=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  };
})();
