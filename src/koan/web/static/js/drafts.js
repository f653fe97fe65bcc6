/* Drafts: the editor's content is saved on the server while the learner types (debounced) and
   when they leave the page, and kept on this device until the server has it, so a lapsed
   session, a lost connection or a closed tab loses nothing. */
(function () {
  "use strict";
  var QUIET_MS = 2000;         // save this long after the last keystroke
  var RETRY_MS = 10000;        // try again after a failed save

  function store() { try { return window.localStorage; } catch (e) { return null; } }

  // This browser's id, so that the server orders its saves by its clock and those of other
  // devices (whose clocks may be minutes apart) by their arrival.
  function deviceId() {
    var shared = store();
    var id = null;
    try { id = shared && shared.getItem("koan:device"); } catch (e) { id = null; }
    if (id && /^[A-Za-z0-9_-]{1,64}$/.test(id)) return id;
    id = "";
    var bytes = new Uint8Array(12);
    window.crypto.getRandomValues(bytes);
    for (var i = 0; i < bytes.length; i++) id += ("0" + bytes[i].toString(16)).slice(-2);
    try { if (shared) shared.setItem("koan:device", id); } catch (e) { /* an id for this page */ }
    return id;
  }

  function owner() { return document.body.getAttribute("data-owner") || ""; }

  function Drafts(textarea) {
    this.textarea = textarea;
    this.url = textarea.getAttribute("data-draft-url");
    // Kept per learner: on a shared browser, what one left unsaved is theirs alone to get back.
    this.key = "koan:draft:" + owner() + ":" + this.url;
    this.legacyKey = "koan:draft:" + this.url;
    this.status = document.getElementById("draft-status");
    this.saved = textarea.value;     // what the server holds
    this.timer = null;
    this.inflight = null;
    this.device = deviceId();
    // The saved draft this editor builds on (the server's time of it, 0: none): a save over
    // one saved since, in another tab or on another device, is refused and the learner chooses.
    this.base = Number(textarea.getAttribute("data-draft-at") || 0);
    this.conflict = false;
    // How far this device's clock is ahead of the server's (the page's trip included).
    this.skew = Date.now() - Number(textarea.getAttribute("data-server-now") || Date.now());
    var self = this;
    this.restoreLocal(Number(textarea.getAttribute("data-saved-at") || 0));
    textarea.addEventListener("input", function () { self.changed(); });
    // Leaving the page: whatever is not saved yet goes out with a request that outlives it.
    window.addEventListener("pagehide", function () { self.flushOnExit(); });
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "hidden") self.flushOnExit();
      // Back on the page: what could not be saved (the session had ended, say, and the learner
      // has logged in again elsewhere) is tried again; otherwise catch up with other tabs.
      else if (self.dirty() && !self.conflict) self.save();
      else self.refresh();
    });
    window.addEventListener("online", function () { if (self.dirty()) self.save(); });
    document.addEventListener("koan:session-ended", function () { self.show("Not saved: log in again to save it. It is kept on this device."); });
  }

  Drafts.prototype.dirty = function () { return this.textarea.value !== this.saved; };

  Drafts.prototype.show = function (text) { if (this.status) this.status.textContent = text; };

  Drafts.prototype.keepLocal = function () {
    var shared = store();
    if (!shared) return;
    try {
      if (this.dirty()) shared.setItem(this.key, JSON.stringify({ code: this.textarea.value, at: Date.now(), base: this.base }));
      else shared.removeItem(this.key);
    } catch (e) { /* storage full or refused: the server copy still counts */ }
  };

  // A copy this device could not send (session over, offline) comes back, unless the server
  // holds something newer (written on another device since).
  Drafts.prototype.restoreLocal = function (serverAt) {
    var shared = store();
    if (!shared) return;
    var raw = shared.getItem(this.key);
    var legacy = shared.getItem(this.legacyKey);
    if (legacy !== null) {
      // A copy kept before copies were kept per learner: its writer cannot be known, and
      // losing it would lose work, so the first learner to open the page takes it over.
      shared.removeItem(this.legacyKey);
      raw = raw || legacy;
    }
    if (!raw) return;
    var local;
    try { local = JSON.parse(raw); } catch (e) { shared.removeItem(this.key); return; }
    // Both times on the server's clock: the copy's by this device's clock, less its skew.
    if (!local || typeof local.code !== "string" || local.code === this.textarea.value || local.at - this.skew < serverAt) {
      shared.removeItem(this.key);
      return;
    }
    // Saved over only if the draft it grew from is still the saved one.
    if (typeof local.base === "number") this.base = local.base;
    this.textarea.value = local.code;
    this.textarea.dispatchEvent(new Event("input", { bubbles: true }));
    this.show("Restored what you wrote on this device; saving it…");
    this.save();
  };

  Drafts.prototype.changed = function () {
    var self = this;
    this.keepLocal();
    if (!this.dirty() || this.conflict) return;
    this.show("Unsaved changes");
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(function () { self.save(); }, QUIET_MS);
  };

  Drafts.prototype.body = function (code, base) {
    var body = { code: code, written_at_ms: Date.now(), device: this.device };
    if (base !== null) body.base_ms = base;
    return JSON.stringify(body);
  };

  Drafts.prototype.save = function () {
    var self = this;
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
    if (this.inflight) return this.inflight.then(function () { return self.dirty() ? self.save() : true; });
    if (!this.dirty()) return Promise.resolve(true);
    var code = this.textarea.value;
    this.show("Saving…");
    this.inflight = window.Koan.fetch(this.url, {
      method: "PUT", headers: { "Content-Type": "application/json", Accept: "application/json" }, body: this.body(code, this.base)
    }).then(function (response) {
      return response.json().then(function (body) { return { status: response.status, body: body }; },
        function () { return { status: response.status, body: null }; });
    }).then(function (answer) {
      self.inflight = null;
      if (answer.status >= 200 && answer.status < 300) {
        self.saved = code;
        var at = answer.body ? Date.parse(answer.body.updated_at) : NaN;
        if (!isNaN(at)) self.base = at;
        self.keepLocal();
        self.show(self.dirty() ? "Unsaved changes" : "Draft saved");
        if (self.dirty()) self.changed();
        return true;
      }
      if (answer.status === 409 && answer.body && answer.body.error === "DraftConflict") {
        self.conflicted();
        return false;
      }
      if (answer.status === 409 && answer.body && answer.body.error === "OtherAccount") {
        self.show("Not saved: another account has logged in on this browser. It is kept on this device for you.");
        return false;
      }
      if (answer.status >= 500) {
        // Koan restarting, or a proxy in front of it: the same as no answer at all.
        self.show("Not saved yet: Koan is not answering right now. It is kept on this device.");
        self.timer = setTimeout(function () { self.save(); }, RETRY_MS);
        return false;
      }
      if (answer.status !== 401) self.show("Not saved: " + (answer.status === 422 || answer.status === 413 ? "the code is too large or not text." : "please try again."));
      return false;
    }, function () {
      self.inflight = null;
      self.show("Not saved yet: Koan could not be reached. It is kept on this device.");
      self.timer = setTimeout(function () { self.save(); }, RETRY_MS);
      return false;
    });
    return this.inflight;
  };

  // Another tab or device saved this draft since this editor last saw it: nothing is saved
  // over it until the learner says which version to keep (this one stays on this device).
  Drafts.prototype.conflicted = function () {
    var self = this;
    this.conflict = true;
    this.keepLocal();
    if (!this.status) return;
    this.status.textContent = "This code was changed in another tab or on another device since this page opened it. ";
    var newer = document.createElement("button");
    newer.type = "button";
    newer.className = "link-button";
    newer.textContent = "Show the newer version";
    newer.addEventListener("click", function () {
      self.load(function (draft) { self.take(draft); self.show("Showing the newer version."); });
    });
    var mine = document.createElement("button");
    mine.type = "button";
    mine.className = "link-button";
    mine.textContent = "Keep this version";
    mine.addEventListener("click", function () {
      self.conflict = false;
      self.base = null;  // saved over the other, as the learner asked
      self.save();
    });
    this.status.appendChild(newer);
    this.status.appendChild(document.createTextNode(" "));
    this.status.appendChild(mine);
  };

  // The saved draft, handed to `use` (nothing when there is none or Koan cannot be reached).
  Drafts.prototype.load = function (use) {
    window.Koan.fetch(this.url, { headers: { Accept: "application/json" } }).then(function (response) {
      return response.ok ? response.json() : null;
    }).then(function (draft) {
      if (draft && typeof draft.code === "string" && !isNaN(Date.parse(draft.updated_at))) use(draft);
    }, function () { /* unreachable: the editor keeps what it has */ });
  };

  Drafts.prototype.take = function (draft) {
    this.conflict = false;
    this.saved = draft.code;
    this.base = Date.parse(draft.updated_at);
    this.textarea.value = draft.code;
    this.textarea.dispatchEvent(new Event("input", { bubbles: true }));
  };

  // Looked at again: a tab with nothing unsaved catches up with a draft saved elsewhere since,
  // so that the learner does not type on over an older version.
  Drafts.prototype.refresh = function () {
    var self = this;
    if (this.dirty() || this.inflight || this.timer || this.conflict) return;
    this.load(function (draft) {
      if (self.dirty() || self.inflight || self.conflict) return;
      var at = Date.parse(draft.updated_at);
      if (at <= self.base) return;
      if (draft.code === self.textarea.value) { self.base = at; return; }
      self.take(draft);
      self.show("Updated with what was saved in another tab or on another device.");
    });
  };

  Drafts.prototype.flushOnExit = function () {
    if (!this.dirty()) return;
    this.keepLocal();
    if (this.conflict) return;  // kept on this device until the learner chooses
    try {
      fetch(this.url, {
        method: "PUT", keepalive: true, credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": window.Koan.csrfToken(), "X-Koan-Owner": owner() },
        // Behind a save still on its way, the draft it builds on is not known yet: this tab,
        // the one just typed in, is saved over it.
        body: this.body(this.textarea.value, this.inflight ? null : this.base)
      }).catch(function () { /* kept on this device */ });
    } catch (e) { /* too large for keepalive: kept on this device */ }
  };

  Drafts.prototype.reset = function (starter) {
    this.textarea.value = starter;
    this.textarea.dispatchEvent(new Event("input", { bubbles: true }));
    this.textarea.focus();
    this.save();
  };

  document.addEventListener("DOMContentLoaded", function () {
    var textarea = document.querySelector("textarea[data-draft-url]");
    if (!textarea || !window.Koan || !window.Koan.fetch) return;
    var drafts = new Drafts(textarea);
    window.Koan.drafts = drafts;
    var resetForm = document.getElementById("reset-form");
    var starter = document.getElementById("starter-code");
    if (resetForm && starter) {
      resetForm.addEventListener("submit", function (event) {
        event.preventDefault();
        if (window.confirm("Discard your code and start again from the starter code?")) {
          drafts.reset(starter.content ? starter.content.textContent : starter.textContent);
        }
      });
    }
    // Logging out ends the session before the page's exit save would reach the server: what
    // is not saved yet goes first (kept on this device if it cannot).
    document.addEventListener("submit", function (event) {
      var form = event.target;
      if (!form || !form.hasAttribute || !form.hasAttribute("data-log-out")) return;
      if (form.koanDraftSaved || !drafts.dirty() || drafts.conflict) return;
      event.preventDefault();
      event.stopPropagation();
      function logOut() { form.koanDraftSaved = true; form.requestSubmit(); }
      drafts.save().then(logOut, logOut);
    }, true);
    // A run stores the code too; the draft follows so that both agree.
    var runForm = document.getElementById("run-form");
    if (runForm) runForm.addEventListener("submit", function () { if (drafts.dirty()) drafts.save(); });
  });
})();
