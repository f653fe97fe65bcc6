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

  function Drafts(textarea) {
    this.textarea = textarea;
    this.url = textarea.getAttribute("data-draft-url");
    this.key = "koan:draft:" + this.url;
    this.status = document.getElementById("draft-status");
    this.saved = textarea.value;     // what the server holds
    this.timer = null;
    this.inflight = null;
    this.device = deviceId();
    // How far this device's clock is ahead of the server's (the page's trip included).
    this.skew = Date.now() - Number(textarea.getAttribute("data-server-now") || Date.now());
    var self = this;
    this.restoreLocal(Number(textarea.getAttribute("data-saved-at") || 0));
    textarea.addEventListener("input", function () { self.changed(); });
    // Leaving the page: whatever is not saved yet goes out with a request that outlives it.
    window.addEventListener("pagehide", function () { self.flushOnExit(); });
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "hidden") self.flushOnExit();
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
      if (this.dirty()) shared.setItem(this.key, JSON.stringify({ code: this.textarea.value, at: Date.now() }));
      else shared.removeItem(this.key);
    } catch (e) { /* storage full or refused: the server copy still counts */ }
  };

  // A copy this device could not send (session over, offline) comes back, unless the server
  // holds something newer (written on another device since).
  Drafts.prototype.restoreLocal = function (serverAt) {
    var shared = store();
    var raw = shared && shared.getItem(this.key);
    if (!raw) return;
    var local;
    try { local = JSON.parse(raw); } catch (e) { shared.removeItem(this.key); return; }
    // Both times on the server's clock: the copy's by this device's clock, less its skew.
    if (!local || typeof local.code !== "string" || local.code === this.textarea.value || local.at - this.skew < serverAt) {
      shared.removeItem(this.key);
      return;
    }
    this.textarea.value = local.code;
    this.textarea.dispatchEvent(new Event("input", { bubbles: true }));
    this.show("Restored what you wrote on this device; saving it…");
    this.save();
  };

  Drafts.prototype.changed = function () {
    var self = this;
    this.keepLocal();
    if (!this.dirty()) return;
    this.show("Unsaved changes");
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(function () { self.save(); }, QUIET_MS);
  };

  Drafts.prototype.body = function (code) { return JSON.stringify({ code: code, written_at_ms: Date.now(), device: this.device }); };

  Drafts.prototype.save = function () {
    var self = this;
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
    if (this.inflight) return this.inflight.then(function () { return self.dirty() ? self.save() : true; });
    if (!this.dirty()) return Promise.resolve(true);
    var code = this.textarea.value;
    this.show("Saving…");
    this.inflight = window.Koan.fetch(this.url, {
      method: "PUT", headers: { "Content-Type": "application/json", Accept: "application/json" }, body: this.body(code)
    }).then(function (response) {
      self.inflight = null;
      if (response.ok) {
        self.saved = code;
        self.keepLocal();
        self.show(self.dirty() ? "Unsaved changes" : "Draft saved");
        if (self.dirty()) self.changed();
        return true;
      }
      if (response.status !== 401) self.show("Not saved: " + (response.status === 422 || response.status === 413 ? "the code is too large or not text." : "please try again."));
      return false;
    }, function () {
      self.inflight = null;
      self.show("Not saved yet: Koan could not be reached. It is kept on this device.");
      self.timer = setTimeout(function () { self.save(); }, RETRY_MS);
      return false;
    });
    return this.inflight;
  };

  Drafts.prototype.flushOnExit = function () {
    if (!this.dirty()) return;
    this.keepLocal();
    try {
      fetch(this.url, {
        method: "PUT", keepalive: true, credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": window.Koan.csrfToken() },
        body: this.body(this.textarea.value)
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
    // A run stores the code too; the draft follows so that both agree.
    var runForm = document.getElementById("run-form");
    if (runForm) runForm.addEventListener("submit", function () { if (drafts.dirty()) drafts.save(); });
  });
})();
