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
    if (target.id === "results") {
      // On a phone the results are below the editor: bring them into view.
      var card = target.closest(".card") || target;
      if (card.scrollIntoView) card.scrollIntoView({ block: "nearest" });
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

  // The session-renewal page posts itself back at once (its button is the no-script way).
  document.querySelectorAll("form[data-autosubmit]").forEach(function (form) { form.submit(); });

  window.Koan = window.Koan || {};
  function csrfToken() {
    var match = document.cookie.match(/(?:^|;\s*)koan_csrf=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }
  window.Koan.csrfToken = csrfToken;
  // The account this page was shown to: requests it sends say so, and the server refuses them
  // when another account has logged in on this browser since (tabs share the cookies).
  function owner() { return document.body.getAttribute("data-owner") || ""; }
  window.Koan.owner = owner;

  /* ---- The session: renewed before the access token lapses, and again on a 401. ----------
     The access cookie is short-lived; the refresh cookie (sent only under /api/v1/auth) trades
     for a new pair. Renewing in the page, instead of navigating through the resume route, keeps
     everything on it: the code in the editor, a question being typed. */
  var REFRESH_URL = "/api/v1/auth/refresh";
  var EARLY_MS = 60 * 1000;      // renew this long before the access token lapses
  var SHARED_KEY = "koan:session-deadline";
  var deadline = null;           // when the access token lapses (this browser's clock)
  var timer = null;
  var renewing = null;

  function storage() { try { return window.localStorage; } catch (e) { return null; } }

  function schedule(ms) {
    deadline = ms;
    if (timer) clearTimeout(timer);
    if (ms === null) return;
    timer = setTimeout(function () { ensureSession(); }, Math.max(0, ms - EARLY_MS - Date.now()));
  }

  function syncCsrfFields() {
    // A renewal brings a new CSRF cookie: forms already on the page must repeat the new one.
    var token = csrfToken();
    if (!token) return;
    document.querySelectorAll("input[name='csrf_token']").forEach(function (input) { input.value = token; });
  }

  // The one call to the refresh endpoint. Resolves true (renewed), false (the session is over)
  // or null (Koan could not be reached: nothing is known).
  function requestRenewal() {
    return fetch(REFRESH_URL, {
      method: "POST", credentials: "same-origin",
      headers: { "X-CSRF-Token": csrfToken(), Accept: "application/json" }
    }).then(function (response) {
      if (!response.ok) return response.status >= 500 ? null : false;
      return response.json().then(function (body) {
        return body && body.expires_in ? Number(body.expires_in) : 0;
      }, function () { return 0; }).then(function (seconds) {
        if (seconds) {
          schedule(Date.now() + seconds * 1000);
          var shared = storage();
          if (shared) try { shared.setItem(SHARED_KEY, String(deadline)); } catch (e) { /* full */ }
        }
        return true;
      });
    }, function () { return null; });
  }

  function renewSession() {
    if (!renewing) {
      renewing = requestRenewal().then(function (ok) {
        renewing = null;
        syncCsrfFields();
        return ok;
      });
    }
    return renewing;
  }

  // Renew first when the token lapses soon (or another tab already did).
  function ensureSession() {
    if (deadline === null) return Promise.resolve(true);
    var shared = storage();
    var theirs = shared ? Number(shared.getItem(SHARED_KEY) || 0) : 0;
    if (theirs > deadline) schedule(theirs);
    if (Date.now() < deadline - EARLY_MS) return Promise.resolve(true);
    return renewSession();
  }

  function sessionEnded() {
    var flash = document.getElementById("flash");
    if (!flash) return;
    var here = location.pathname + location.search;
    flash.innerHTML = '<div class="alert alert-error" role="alert" data-session="ended"><strong>Your session has ended.</strong> ' +
      'Nothing was sent. <a id="login-again" href="/login?next=' + encodeURIComponent(here).replace(/%2F/g, "/") +
      '">Log in again</a> to carry on: what you wrote is kept.</div>';
    document.dispatchEvent(new CustomEvent("koan:session-ended"));
  }

  function unreachable() {
    var flash = document.getElementById("flash");
    if (flash) flash.innerHTML = '<div class="alert alert-error" role="alert">Koan could not be reached. Check your connection and try again: what you wrote is kept.</div>';
  }

  // fetch for the page's own API calls: the CSRF header from the current cookie, the session
  // renewed before it lapses, and a 401 answered by renewing and sending once more.
  function koanFetch(url, options) {
    function send() {
      var opts = {};
      for (var k in options || {}) opts[k] = options[k];
      var headers = new Headers(opts.headers || {});
      headers.set("X-CSRF-Token", csrfToken());
      if (owner()) headers.set("X-Koan-Owner", owner());
      opts.headers = headers;
      opts.credentials = "same-origin";
      return fetch(url, opts);
    }
    return ensureSession().then(send).then(function (response) {
      if (response.status !== 401) return response;
      return renewSession().then(function (ok) {
        if (ok) return send();
        if (ok === false) sessionEnded();
        return response;
      });
    });
  }

  window.Koan.fetch = koanFetch;
  window.Koan.ensureSession = ensureSession;
  window.Koan.renewSession = renewSession;
  window.Koan.sessionEnded = sessionEnded;

  document.addEventListener("DOMContentLoaded", function () {
    var ttl = document.body.getAttribute("data-session-ttl");
    if (ttl !== null && ttl !== "") schedule(Date.now() + Number(ttl) * 1000);
  });
  // Timers sleep in background tabs and laptops: check again when the page is looked at.
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") ensureSession();
  });
  window.addEventListener("storage", function (event) {
    if (event.key === SHARED_KEY && event.newValue && deadline !== null) {
      schedule(Number(event.newValue));
      syncCsrfFields();
    }
  });

  // HTMX requests: the current CSRF cookie, a renewal first when due, and a 401 renewed and
  // sent once more (the same request, with what the form holds then).
  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRF-Token"] = csrfToken();
    if (owner()) event.detail.headers["X-Koan-Owner"] = owner();
    if (event.detail.parameters && "csrf_token" in event.detail.parameters) {
      event.detail.parameters.csrf_token = csrfToken();
    }
  });
  document.addEventListener("htmx:confirm", function (event) {
    var elt = event.detail.elt;
    elt.koanIssue = event.detail.issueRequest;
    if (deadline === null || Date.now() < deadline - EARLY_MS) return;
    event.preventDefault();
    ensureSession().then(function () { event.detail.issueRequest(true); });
  });
  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail.xhr;
    // The element that made the request (detail.elt is where the answer would land).
    var elt = event.detail.requestConfig && event.detail.requestConfig.elt;
    if (!xhr || xhr.status !== 401 || !elt) { if (elt) elt.koanRetried = false; return; }
    event.detail.shouldSwap = false;
    if (elt.koanRetried || !elt.koanIssue) { elt.koanRetried = false; sessionEnded(); return; }
    renewSession().then(function (ok) {
      if (ok) { elt.koanRetried = true; elt.koanIssue(true); }
      else if (ok === false) sessionEnded();
      else unreachable();
    });
  });
  // A plain form (no HTMX) renews first too, so its post is not bounced through a login.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form || form.hasAttribute("hx-post") || (form.method || "").toLowerCase() !== "post") return;
    if (form.koanRenewed) { form.koanRenewed = false; syncCsrfFields(); return; }
    if (deadline === null || Date.now() < deadline - EARLY_MS) return;
    event.preventDefault();
    var submitter = event.submitter;
    ensureSession().then(function () {
      form.koanRenewed = true;
      if (submitter) form.requestSubmit(submitter); else form.requestSubmit();
    });
  });
})();
